"""Offline bundles and image archives without Docker: the manifest, verification of every member, and
that a corrupt, truncated or padded archive is refused naming the member with nothing put in the cache."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from kunlun_bundle.errors import HashMismatchError, InputError
from kunlun_bundle.host import archive, cache
from kunlun_bundle.images import bundle


@pytest.fixture
def files(tmp_path):
    made = {}
    for name, data in (("cache/wheels/a-1.0-py3-none-any.whl", b"wheel" * 500),
                       ("cache/debs/tini_0.19.0-1_amd64.deb", b"deb" * 700),
                       ("locks/x86_64/base-bookworm.txt", b"# lock\n")):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made[name] = path
    return made


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KUNLUN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def flip(path, member_name):
    with tarfile.open(path) as tar:
        member = tar.getmember(member_name)
    data = bytearray(path.read_bytes())
    data[member.offset_data + 3] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_manifest_lists_every_member_and_the_same_files_give_the_same_bytes(files, tmp_path):
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    manifest = archive.write(one, "bundle", files, {"commit": "abc"})
    archive.write(two, "bundle", dict(reversed(list(files.items()))), {"commit": "abc"})
    assert one.read_bytes() == two.read_bytes()
    assert set(manifest["files"]) == set(files) and manifest["commit"] == "abc"
    with tarfile.open(one) as tar:
        assert tar.getnames()[0] == archive.MANIFEST
        assert json.loads(tar.extractfile(archive.MANIFEST).read())["files"] == manifest["files"]
    with archive.verified(one, "bundle", tmp_path) as v:
        assert {n: p.read_bytes() for n, p in v.files.items()} == {n: p.read_bytes() for n, p in files.items()}
        staged = next(iter(v.files.values()))
    assert not staged.exists()


def test_a_flipped_byte_is_refused_naming_the_member(files, tmp_path):
    path = tmp_path / "b.tar"
    archive.write(path, "bundle", files, {})
    flip(path, "cache/debs/tini_0.19.0-1_amd64.deb")
    with pytest.raises(HashMismatchError, match="member cache/debs/tini_0.19.0-1_amd64.deb is corrupt"):
        with archive.verified(path, "bundle", tmp_path):
            pass
    assert [p for p in tmp_path.iterdir() if p.name.startswith("bundle-")] == []   # staging removed


def test_a_truncated_or_padded_archive_or_another_kind_is_refused(files, tmp_path):
    path = tmp_path / "b.tar"
    archive.write(path, "bundle", files, {})
    data = path.read_bytes()
    short = tmp_path / "short.tar"
    short.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="damaged|missing|corrupt"):
        with archive.verified(short, "bundle", tmp_path):
            pass
    extra = tmp_path / "extra.tar"
    with tarfile.open(path) as src, tarfile.open(extra, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        info = tarfile.TarInfo("cache/wheels/evil.whl")
        info.size = 3
        dst.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(InputError, match="member cache/wheels/evil.whl is not in the manifest"):
        with archive.verified(extra, "bundle", tmp_path):
            pass
    with pytest.raises(InputError, match="not a images manifest|is damaged or is not a images"):
        with archive.verified(path, "images", tmp_path):
            pass


def test_member_names_cannot_escape():
    with pytest.raises(InputError):
        archive.write(__import__("pathlib").Path("/nonexistent.tar"), "bundle", {"../x": None}, {})


def test_import_fills_the_cache_only_from_a_verified_bundle(files, tmp_path, fresh_cache, root):
    good = tmp_path / "good.tar"
    archive.write(good, "bundle", files, {"commit": "abc", "cells": []})
    bad = tmp_path / "bad.tar"
    bad.write_bytes(good.read_bytes())
    flip(bad, "cache/wheels/a-1.0-py3-none-any.whl")
    with pytest.raises(HashMismatchError, match="a-1.0-py3-none-any.whl"):
        bundle.import_(bad, root)
    assert [p for p in fresh_cache.rglob("*") if p.is_file()] == []
    manifest = bundle.import_(good, root)
    assert (cache.wheels() / "a-1.0-py3-none-any.whl").read_bytes() == b"wheel" * 500
    assert (cache.debs() / "tini_0.19.0-1_amd64.deb").read_bytes() == b"deb" * 700
    assert manifest["placed"] == 2 and manifest["differing"] == ["locks/x86_64/base-bookworm.txt"]
    assert [p for p in cache.scratch().iterdir()] == []


def test_the_tasks_give_messages_not_tracebacks(invoke, tmp_path):
    result = invoke("bundle", "unpack", str(tmp_path / "b.tar"))
    assert result.returncode == 3 and "unknown bundle action 'unpack'" in result.stderr
    result = invoke("bundle", "import", str(tmp_path / "missing.tar"), env={"KUNLUN_CACHE": str(tmp_path)})
    assert result.returncode == 5 and "missing.tar: no such file" in result.stderr and "Traceback" not in result.stderr
    not_ours = tmp_path / "other.tar"
    with tarfile.open(not_ours, "w") as tar:
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    result = invoke("bundle", "import", str(not_ours), env={"KUNLUN_CACHE": str(tmp_path)})
    assert result.returncode == 5 and "not a kunlun bundle archive" in result.stderr
