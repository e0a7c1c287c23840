"""Air-gapped hosts, for real: a bundle exported here is imported into an empty cache, and the base and
framework are built from it by a process whose network namespace has only loopback (`unshare --net`,
not a flag), without Docker's build cache, to the same image ids as the chain built here with the
network (so this is also the reproducibility check of those two layers: another cache, another time, no
network; test_repro.py rebuilds the layers above them); a corrupt bundle is refused naming the member, with
nothing put in the cache. Image archives: save -> untag -> load gives the same image ids; a corrupt archive is
refused before `docker load`.

The images are built under a namespace of their own (<namespace>offline), whose tags the test removes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from kunlun_bundle import naming
from kunlun_bundle.host import archive

from .helpers import MATRIX, ROOT, docker, invoke

NAMESPACE = f"{MATRIX.namespace}offline"
ARCH = MATRIX.arch_registry.native().name
BASE = naming.base_image(MATRIX, "bookworm", ARCH).replace(f"{MATRIX.namespace}/", f"{NAMESPACE}/", 1)
PADDLE = naming.paddle_image(MATRIX, "cpu", ARCH).replace(f"{MATRIX.namespace}/", f"{NAMESPACE}/", 1)
BUILD_PADDLE = """
import sys
from kunlun_bundle import matrix
from kunlun_bundle.images import build, chain
m = matrix.load("matrix.yaml")
[top] = chain.select(m, ["resnet50"], None, m.arch_registry.resolve("native"))
results = build.build_layers(m, top.ancestry()[:2], no_cache=True)
build.summarise(list(results.values()))
"""


def corrupt(bundle: Path, out: Path, member_prefix: str) -> str:
    """A copy of the archive with one byte of a member's data flipped; returns that member's name."""
    shutil.copyfile(bundle, out)
    with tarfile.open(out) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith(member_prefix) and m.size > 1000)
    with open(out, "r+b") as f:
        f.seek(member.offset_data + member.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    return member.name


def untag() -> None:
    """Remove every tag of the test's namespace (images other tags name stay: only tags go)."""
    refs = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    present = [r for r in refs if r.startswith(f"{NAMESPACE}/")]
    if present:
        docker("image", "rm", "--no-prune", *present)


@pytest.fixture(scope="module")
def exported(build, tmp_path_factory):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root for a network namespace")
    build("resnet50")              # the chain whose base and framework the offline build must reproduce
    directory = tmp_path_factory.mktemp("offline")
    bundle = directory / "bundle.tar"
    started = time.monotonic()
    result = invoke("bundle", "export", str(bundle), "--model", "resnet50", "--arch", ARCH)
    print(f"\nbundle export (ResNet50 chain, {ARCH}): {bundle.stat().st_size / 1e6:.0f} MB in "
          f"{time.monotonic() - started:.1f} s")
    assert "wrote" in result.stderr
    return bundle


@pytest.fixture(scope="module")
def offline_env(exported, tmp_path_factory):
    """An empty cache filled by `bundle import`; the environment of a build from it."""
    cache = tmp_path_factory.mktemp("cache")
    env = {"KUNLUN_CACHE": str(cache), "KUNLUN_NAMESPACE": NAMESPACE, "KUNLUN_SOURCES": "",
           "XDG_CONFIG_HOME": str(cache / "no-config")}
    started = time.monotonic()
    result = invoke("bundle", "import", str(exported), env=env)
    print(f"\nbundle import: {time.monotonic() - started:.1f} s")
    assert "verified" in result.stderr and "differ" not in result.stderr
    untag()
    yield env
    untag()


def test_the_bundle_carries_every_input_and_the_sources(exported):
    with tarfile.open(exported) as tar:
        names = tar.getnames()
    assert names[0] == archive.MANIFEST and "source.tar" in names
    assert f"locks/{ARCH}/base-bookworm.txt" in names and f"locks/{ARCH}/cpu/paddleclas.txt" in names
    # and the serving layer's (`invoke package` on the air-gapped host), whose wheels the suite's include
    assert f"locks/{ARCH}/cpu/paddleclas-serving.txt" in names
    assert any(n.startswith("cache/debs/tini_") for n in names)
    assert any(n.startswith("cache/wheels/paddlepaddle-") for n in names)
    assert any(n.startswith("host/wheels/invoke-") for n in names)     # ./kunlun's .venv, offline
    assert not any(n.startswith("cache/rootfs") for n in names)


def test_a_corrupt_bundle_is_refused_naming_the_member_and_the_cache_stays_empty(exported, tmp_path):
    for prefix in ("cache/debs/", "cache/wheels/", "source.tar"):
        bad = tmp_path / "bad.tar"
        member = corrupt(exported, bad, prefix)
        cache = tmp_path / f"cache-{prefix.replace('/', '-')}"
        result = invoke("bundle", "import", str(bad), env={"KUNLUN_CACHE": str(cache)}, check=False)
        assert result.returncode == 6, result.stderr
        assert f"member {member} is corrupt" in result.stderr and "Traceback" not in result.stderr
        assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_the_network_namespace_really_has_no_network():
    probe = "import socket; socket.create_connection(('deb.debian.org', 80), timeout=5)"
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode != 0 and ("gaierror" in result.stderr or "unreachable" in result.stderr), result.stderr


def test_the_base_and_framework_build_from_the_imported_bundle_without_network(offline_env):
    started = time.monotonic()
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", BUILD_PADDLE], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, **offline_env})
    seconds = time.monotonic() - started
    print(f"\noffline build of the base and framework from the imported cache: {seconds:.0f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed, 0 skipped" in result.stderr and "bootstrap Debian bookworm rootfs" in result.stderr
    # the rootfs is the same bytes as one bootstrapped from the mirror with the same lock, where there is one
    rootfs = list(Path(offline_env["KUNLUN_CACHE"], "rootfs").glob("bookworm-*.tar"))
    assert len(rootfs) == 1
    ambient = Path(os.environ.get("KUNLUN_CACHE") or Path.home() / ".cache/kunlun-bundle") / "rootfs" / rootfs[0].name
    if ambient.is_file():
        assert archive.sha256_of(ambient) == archive.sha256_of(rootfs[0])
    release = docker("run", "--rm", "--network", "none", PADDLE, "python3", "-c", "import paddle; print(paddle.__version__)")
    assert release.stdout.strip() == "3.2.2"
    # the same bytes as the chain built here with the network (`build` above), layer for layer
    for online, offline in ((naming.base_image(MATRIX, "bookworm", ARCH), BASE),
                            (naming.paddle_image(MATRIX, "cpu", ARCH), PADDLE)):
        assert image_id(offline) == image_id(online), f"{offline} is not {online}"


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def test_save_untag_load_gives_the_same_ids_and_a_corrupt_archive_is_refused(offline_env, tmp_path):
    env = {"KUNLUN_NAMESPACE": NAMESPACE}
    ids = {tag: image_id(tag) for tag in (BASE, PADDLE)}
    saved = tmp_path / "images.tar"
    script = ("from pathlib import Path; from kunlun_bundle.containers import images_archive; "
              f"images_archive.save({[BASE, PADDLE]!r}, Path({str(saved)!r}))")
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, env={**os.environ, **env})
    print(f"\nsave of base + framework: {saved.stat().st_size / 1e6:.0f} MB in {time.monotonic() - started:.1f} s")
    untag()
    bad = tmp_path / "bad.tar"
    assert corrupt(saved, bad, "images.tar") == "images.tar"
    result = invoke("load", str(bad), env=env, check=False)
    assert result.returncode == 6 and "member images.tar is corrupt" in result.stderr
    assert docker("image", "inspect", BASE, check=False).returncode != 0     # nothing was loaded
    started = time.monotonic()
    result = invoke("load", str(saved), env=env)
    print(f"load: {time.monotonic() - started:.1f} s")
    assert "2 image(s) verified and loaded" in result.stderr
    assert {tag: image_id(tag) for tag in ids} == ids
