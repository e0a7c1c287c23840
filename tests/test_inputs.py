"""Build inputs: lock files (format, staleness, cross-arch resolution), fetching with sha256
verification (over a real loopback HTTP server), and normalised build-context tarballs."""
import functools
import hashlib
import http.server
import io
import json
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from kunlun_bundle.images import chain, fetch, lock
from kunlun_bundle.images.context import BuildContext
from kunlun_bundle.errors import HashMismatchError, InputError

# --- lock files ---------------------------------------------------------------------------


def test_committed_locks_are_current(matrix, root):
    for layer in chain.unique_layers(chain.all_ready(matrix)):
        if layer.lock:
            assert lock.is_current(matrix, layer, root), f"{layer.lock} is stale: run `invoke lock`"


def test_lock_files_round_trip(root):
    path = root / "locks/x86_64/cpu/paddle.txt"
    parsed = lock.LockFile.read(path)
    assert parsed.text() == path.read_text()
    assert {w.name for w in parsed.wheels} >= {"paddlepaddle", "numpy"}


def test_every_locked_wheel_fits_its_arch(root, matrix):
    """Cross-arch resolution: aarch64 locks (resolved on an x86_64 host) name only aarch64 or pure wheels,
    or the sdist of a package a suite installs without dependencies (`no_deps`, built in the image)."""
    no_deps = {lock.canonicalize_name(r.split("==")[0]) for s in matrix.suites.values() for r in s.no_deps}
    for arch, other in (("aarch64", "x86_64"), ("x86_64", "aarch64")):
        for path in (root / "locks" / arch).rglob("*/*.txt"):   # locks/<arch>/<flavour>/: the wheels
            for wheel in lock.LockFile.read(path).wheels:
                if wheel.is_sdist and wheel.name in no_deps:
                    assert wheel.filename.endswith((".tar.gz", ".zip")), wheel.filename
                    continue
                assert wheel.filename.endswith(".whl"), wheel.filename
                assert other not in wheel.filename, f"{path}: {wheel.filename}"
                assert arch in wheel.filename or "-none-any" in wheel.filename, f"{path}: {wheel.filename}"


def test_a_matrix_change_makes_the_lock_stale(matrix, repo_copy):
    layer = next(l for l in chain.unique_layers(chain.all_ready(matrix)) if l.kind == "suite")
    assert lock.is_current(matrix, layer, repo_copy)
    suite = matrix.suites[layer.name].model_copy(update={"requirements": ["pillow"]})
    changed = matrix.model_copy(update={"suites": {**matrix.suites, layer.name: suite}})
    assert not lock.is_current(changed, layer, repo_copy)


def test_a_hand_edited_lock_line_is_rejected(tmp_path, root):
    path = tmp_path / "paddle.txt"
    path.write_text((root / "locks/x86_64/cpu/paddle.txt").read_text() + "requests>=2\n")
    with pytest.raises(InputError, match=r"paddle.txt:\d+: not a lock line: 'requests>=2'"):
        lock.LockFile.read(path)


def test_target_platform_tags_cover_older_manylinux():
    tags = lock.Target("manylinux_2_36_aarch64", "3.11").platform_tags()
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert not any("x86_64" in t or "manylinux1" in t for t in tags)
    assert "manylinux1_x86_64" in lock.Target("manylinux_2_36_x86_64", "3.11").platform_tags()


def test_the_resolver_reads_pips_report(monkeypatch):
    """pip_resolve runs pip for the target platform and turns its JSON report into wheels."""
    seen = {}

    def fake_pip(cmd, capture_output, text):
        seen["cmd"] = cmd
        report = Path(cmd[cmd.index("--report") + 1])
        report.write_text(json.dumps({"install": [{
            "metadata": {"name": "Opt_Einsum", "version": "3.3.0"},
            "download_info": {"url": "https://files.example/opt_einsum-3.3.0-py3-none-any.whl",
                              "archive_info": {"hashes": {"sha256": "ab" * 32}}}}]}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(lock.subprocess, "run", fake_pip)
    wheels = lock.pip_resolve(["opt-einsum"], lock.Target("manylinux_2_36_aarch64", "3.11"))
    assert wheels == [lock.Wheel("opt-einsum", "3.3.0", "ab" * 32, "https://files.example/opt_einsum-3.3.0-py3-none-any.whl")]
    assert "--platform=manylinux2014_aarch64" in seen["cmd"] and "--only-binary=:all:" in seen["cmd"]
    assert seen["cmd"][seen["cmd"].index("--python-version") + 1] == "3.11"


# --- fetching -----------------------------------------------------------------------------

@pytest.fixture
def wheel_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a directory of (stand-in) wheel files."""
    served = tmp_path / "served"
    served.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def stand_in_wheel(directory: Path, name: str, content: bytes) -> lock.Wheel:
    (directory / name).write_bytes(content)
    return lock.Wheel("demo", "1.0", hashlib.sha256(content).hexdigest(), f"http://unused/{name}")


def test_fetch_downloads_and_verifies(wheel_server, tmp_path):
    served, url = wheel_server
    wheel = stand_in_wheel(served, "demo-1.0-py3-none-any.whl", b"stand-in wheel")
    wheel = lock.Wheel(wheel.name, wheel.version, wheel.sha256, f"{url}/{wheel.filename}")
    cache = tmp_path / "cache"
    cache.mkdir()
    [path] = fetch.fetch([wheel], directory=cache)
    assert path.read_bytes() == b"stand-in wheel"
    assert fetch.fetch([wheel], directory=cache) == [path]    # second time: verified, not downloaded


def test_a_download_with_the_wrong_hash_is_rejected_and_not_kept(wheel_server, tmp_path):
    served, url = wheel_server
    (served / "demo-1.0-py3-none-any.whl").write_bytes(b"tampered")
    wheel = lock.Wheel("demo", "1.0", hashlib.sha256(b"original").hexdigest(), f"{url}/demo-1.0-py3-none-any.whl")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(HashMismatchError, match=r"demo-1.0-py3-none-any.whl: sha256 mismatch"):
        fetch.fetch([wheel], directory=cache)
    assert list(cache.iterdir()) == []


def test_a_tampered_cached_wheel_is_caught(tmp_path):
    wheel = stand_in_wheel(tmp_path, "demo-1.0-py3-none-any.whl", b"original")
    (tmp_path / wheel.filename).write_bytes(b"changed after download")
    with pytest.raises(HashMismatchError, match="demo-1.0-py3-none-any.whl"):
        fetch.fetch([wheel], directory=tmp_path)


def test_air_gapped_source_directory(tmp_path):
    source, cache = tmp_path / "usb", tmp_path / "cache"
    source.mkdir(), cache.mkdir()
    wheel = stand_in_wheel(source, "demo-1.0-py3-none-any.whl", b"from the usb stick")
    assert fetch.fetch([wheel], source=source, directory=cache)[0].read_bytes() == b"from the usb stick"
    missing = lock.Wheel("other", "2.0", "00" * 32, "https://files.example/other-2.0-py3-none-any.whl")
    with pytest.raises(InputError, match="other-2.0-py3-none-any.whl is not in .*usb"):
        fetch.fetch([missing], source=source, directory=cache)


def test_an_unreachable_index_says_what_to_do(tmp_path):
    wheel = lock.Wheel("demo", "1.0", "00" * 32, "http://127.0.0.1:9/demo-1.0-py3-none-any.whl")
    with pytest.raises(InputError) as info:
        fetch.fetch([wheel], directory=tmp_path)
    assert "could not download" in info.value.message and "--source DIR" in info.value.hint


# --- build contexts -----------------------------------------------------------------------

def make_context(tmp_path: Path, mtime=1700000000) -> BuildContext:
    (tmp_path / "src/pkg").mkdir(parents=True, exist_ok=True)
    (tmp_path / "src/pkg/b.py").write_text("b = 1\n")
    (tmp_path / "src/pkg/a.py").write_text("a = 1\n")
    (tmp_path / "src/pkg/__pycache__").mkdir(exist_ok=True)
    (tmp_path / "src/pkg/__pycache__/a.cpython-311.pyc").write_bytes(b"junk")
    ctx = BuildContext(mtime)
    ctx.add_bytes("Dockerfile", b"FROM scratch\n")
    ctx.add_tree("entrypoints", tmp_path / "src")
    return ctx


def tar_bytes(ctx: BuildContext) -> bytes:
    buf = io.BytesIO()
    ctx.write(buf)
    return buf.getvalue()


def test_contexts_are_byte_identical_and_normalised(tmp_path):
    first = tar_bytes(make_context(tmp_path))
    (tmp_path / "src/pkg/a.py").touch()                      # a new mtime changes nothing
    assert tar_bytes(make_context(tmp_path)) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["Dockerfile", "entrypoints", "entrypoints/pkg",
                                         "entrypoints/pkg/a.py", "entrypoints/pkg/b.py"]
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(1700000000, 0, 0, "root")}
    assert {m.mode for m in members if m.isfile()} == {0o644}


def test_a_file_that_does_not_match_its_pin_fails_the_context(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"tampered")
    ctx = BuildContext(0)
    ctx.add_file("wheels/demo-1.0-py3-none-any.whl", wheel, sha256=hashlib.sha256(b"original").hexdigest())
    with pytest.raises(HashMismatchError, match="demo-1.0-py3-none-any.whl: sha256 mismatch"):
        tar_bytes(ctx)


def test_build_time_labels_are_one_label_instruction(tmp_path):
    """One LABEL step (the legacy builder commits one layer per instruction), values quoted, `$` kept literal."""
    from kunlun_bundle.images.build import dockerfile_with_labels
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    text = dockerfile_with_labels(tmp_path / "Dockerfile", {"b.price": 'costs $5 "now"', "a.x": "1"}).decode()
    assert text.count("LABEL") == 1 and text.startswith("FROM scratch\n")
    assert 'LABEL a.x="1" \\\n      b.price="costs \\$5 \\"now\\""' in text
    assert dockerfile_with_labels(tmp_path / "Dockerfile", {}) == b"FROM scratch\n"
