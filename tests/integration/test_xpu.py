"""The XPU path on a real Docker daemon, with STAND-INS for what only Kunlun hosts have:

- "cards": character devices made with mknod carrying /dev/null's numbers (1, 3), mapped into real
  containers as /dev/xpu0, /dev/xpu1 and /dev/xpuctrl;
- an XRE runtime archive built here (an `xpu_smi` script that says it is a stand-in, placeholder
  libraries) served over loopback HTTP;
- a paddlepaddle-xpu wheel built here: it installs a module named paddle_xpu_standin, no Paddle.

What is real: the matrix, lock, fetch, render and build code, the device mapping and the
entrypoint's device check, exactly as a Kunlun host runs them."""
from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from kunlun_bundle import matrix, naming
from kunlun_bundle.images import build, chain, lock, render
from kunlun_bundle.training import devices, run
from kunlun_bundle.errors import HashMismatchError

from .helpers import ROOT, docker, image, invoke

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mknod and device mapping need root")
FLAVOUR = "xpu-standin"


def stand_in_cards(root: Path, cards=(0, 1)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"xpu{i}" for i in cards] + ["xpuctrl"]:
        os.mknod(root / name, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chmod(root / name, 0o666)
    return root


@pytest.fixture(scope="module")
def resnet50(build) -> str:
    build("resnet50")
    return image("resnet50")


@pytest.fixture
def cards(tmp_path, monkeypatch) -> Path:
    root = stand_in_cards(tmp_path / "dev", cards=(0, 1, 2))
    monkeypatch.setenv("KUNLUN_DEV_ROOT", str(root))
    return root


# --- devices in a real container --------------------------------------------------------------

def test_the_container_sees_exactly_the_cards_asked_and_can_open_them(cards, resnet50):
    options = devices.container_options(devices.Cards.discover(cards), [0, 2])
    args = ["run", "--rm", "--network", "none", "--user", "1000:1000", "--entrypoint", "sh"]
    for d in options["devices"]:
        args += ["--device", d]
    for key, value in options["environment"].items():
        args += ["-e", f"{key}={value}"]
    script = ("ls /dev | grep '^xpu' | tr '\\n' ' '; echo; echo $XPU_VISIBLE_DEVICES $FLAGS_selected_xpus; "
              "for n in /dev/xpu0 /dev/xpu2 /dev/xpuctrl; do : < $n && : > $n && echo opened $n; done; id -u")
    out = docker(*args, resnet50, "-c", script).stdout.splitlines()
    assert out[0].split() == ["xpu0", "xpu2", "xpuctrl"]       # not xpu1
    assert out[1] == "0,2 0,1"
    assert out[2:5] == ["opened /dev/xpu0", "opened /dev/xpu2", "opened /dev/xpuctrl"]
    assert out[5] == "1000"                                   # as the non-root user


def test_invoke_run_maps_cards_unprivileged_and_a_cpu_image_refuses_them(cards, resnet50):
    """`invoke run --xpus`: the CPU image sees the stand-in cards and stops with the fix."""
    result = invoke("run", "resnet50", "--xpus", "0,1", "--", "--steps", "1", check=False,
                    env={"KUNLUN_DEV_ROOT": str(cards)})
    output = result.stdout + result.stderr        # the container's output is streamed to ours
    assert result.returncode == 2, output
    assert "2 Kunlun XPU(s) visible (ids 0,1) but this image is the 'cpu' flavour" in output
    assert "--flavour xpu" in output and "Traceback" not in output


def test_a_card_that_is_not_there_is_named_with_the_ones_that_are(cards, resnet50):
    result = invoke("run", "resnet50", "--xpus", "5", check=False, env={"KUNLUN_DEV_ROOT": str(cards)})
    assert result.returncode == 3
    assert "no card xpu5 on this host" in result.stderr and "cards present: xpu0, xpu1, xpu2" in result.stderr


def test_the_run_options_never_ask_for_privileges(cards, matrix):
    layer = chain.select(matrix, ["resnet50"], None, [matrix.arch_registry.native()])[0]
    options = run.container_options(layer, None, None, [], xpus="all")
    assert "privileged" not in options and "cap_add" not in options
    assert len(options["devices"]) == 4


def test_without_cards_the_cpu_image_trains_with_a_notice(resnet50):
    result = docker("run", "--rm", "--network", "none", resnet50, "--steps", "1",
                    "-o", "Global.image_size=64")
    assert "[resnet50] no Kunlun XPU visible: training on CPU" in result.stdout
    fails = docker("run", "--rm", "--network", "none", resnet50, "--steps", "1", "--require-xpu", check=False)
    assert fails.returncode == 2 and "--require-xpu: no Kunlun XPU visible" in fails.stderr


# --- the xpu flavour's framework layer from stand-in inputs ------------------------------------

def stand_in_runtime(directory: Path) -> Path:
    """An XRE-shaped archive: one top directory with bin/xpu_smi and so/ libraries (placeholders)."""
    path = directory / "xre-standin_x86_64.tar.gz"
    files = {"xre-standin/bin/xpu_smi": (b"#!/bin/sh\necho 'STAND-IN xpu_smi (not a Kunlun runtime)'\n", 0o755),
             "xre-standin/so/libxpurt.so": (b"stand-in library\n", 0o644),
             "xre-standin/version.txt": (b"4.31.0-standin\n", 0o644)}
    with tarfile.open(path, "w:gz") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return path


def stand_in_wheel(directory: Path) -> Path:
    """paddlepaddle-xpu 3.2.2 by name only: it installs the module paddle_xpu_standin."""
    path = directory / "paddlepaddle_xpu-3.2.2-py3-none-any.whl"
    dist = "paddlepaddle_xpu-3.2.2.dist-info"
    files = {"paddle_xpu_standin/__init__.py": "STAND_IN = True  # not Paddle; see tests/integration/test_xpu.py\n",
             f"{dist}/METADATA": "Metadata-Version: 2.1\nName: paddlepaddle-xpu\nVersion: 3.2.2\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: kunlun-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{n},,\n" for n in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in {**files, f"{dist}/RECORD": record}.items():
            z.writestr(zipfile.ZipInfo(name, (2023, 11, 14, 0, 0, 0)), text)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A loopback HTTP server publishing the stand-in runtime archive and wheel."""
    served = tmp_path_factory.mktemp("published")
    stand_in_runtime(served), stand_in_wheel(served)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def xpu_repo(tmp_path: Path, served: Path, url: str, archive_sha: str | None = None) -> tuple[matrix.Matrix, Path]:
    """A copy of the repository whose matrix has a ready stand-in XPU flavour, rendered and locked."""
    repo = tmp_path / "repo"
    for name in ("templates", "dockerfiles", "locks", "patches", "entrypoints"):
        shutil.copytree(ROOT / name, repo / name)
    data = yaml.safe_load((ROOT / "matrix.yaml").read_text())
    runtime, wheel = served / "xre-standin_x86_64.tar.gz", served / "paddlepaddle_xpu-3.2.2-py3-none-any.whl"
    data["runtimes"]["standin"] = {"description": "STAND-IN runtime built by tests/integration/test_xpu.py",
                                   "chips": ["R200"], "version": "4.31.0", "archives": {
                                       "x86_64": {"url": f"{url}/{runtime.name}", "sha256": archive_sha or sha256(runtime)}}}
    flavour = copy.deepcopy(data["flavours"]["xpu"])
    flavour.update(status="ready", reason=None, runtime="standin", index=None, dependencies_of="paddlepaddle",
                   description="STAND-IN xpu flavour (tests)", paddle={"x86_64": "paddlepaddle-xpu==3.2.2"},
                   wheels={"x86_64": {"url": f"{url}/{wheel.name}", "sha256": sha256(wheel)}})
    data["flavours"] = {"cpu": data["flavours"]["cpu"], FLAVOUR: {k: v for k, v in flavour.items() if v is not None}}
    (repo / "matrix.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    m = matrix.load(repo / "matrix.yaml")
    render.write(render.render_all(m, repo), repo)
    layer = paddle_layer(m)
    (repo / layer.lock).parent.mkdir(parents=True, exist_ok=True)
    (repo / layer.lock).write_text(lock.resolve(m, layer, repo).text())
    return m, repo


def paddle_layer(m: matrix.Matrix) -> chain.Layer:
    return chain.model_layer(m, "resnet50", FLAVOUR, m.arch_registry["x86_64"]).parent.parent


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private cache holding the real cache's wheels (links) but none of the stand-in inputs."""
    from kunlun_bundle.host import cache
    real = cache.wheels()
    private = tmp_path / "cache"
    (private / "wheels").mkdir(parents=True)
    for path in real.glob("*.whl"):
        (private / "wheels" / path.name).symlink_to(path)
    monkeypatch.setenv("KUNLUN_CACHE", str(private))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return private


def test_the_xpu_framework_layer_installs_the_runtime_and_wheel(server, tmp_path, cache_dir):
    served, url = server
    m, repo = xpu_repo(tmp_path, served, url)
    layer = paddle_layer(m)
    assert "paddlepaddle-xpu==3.2.2" in (repo / layer.lock).read_text()
    results = build.build_layers(m, layer.ancestry(), repo)
    assert results[layer.image].status == "built", results[layer.image].error
    assert (cache_dir / "downloads" / "xre-standin_x86_64.tar.gz").is_file()   # downloaded and verified

    labels = json.loads(docker("image", "inspect", layer.image).stdout)[0]["Config"]["Labels"]
    assert labels["io.kunlun.xpu.runtime.version"] == "4.31.0" and labels["io.kunlun.flavour"] == FLAVOUR
    assert labels["io.kunlun.xpu.chips"] == "R200" and labels["io.kunlun.paddle.version"] == "3.2.2"
    script = ("xpu_smi; readlink /usr/local/xpu; echo $LD_LIBRARY_PATH $KUNLUN_FLAVOUR; "
              "python -c 'import paddle_xpu_standin, importlib.metadata as m; print(m.version(\"paddlepaddle-xpu\"))'")
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", layer.image, "-c", script).stdout.splitlines()
    assert out == ["STAND-IN xpu_smi (not a Kunlun runtime)", "/usr/local/xpu-4.31.0", f"/usr/local/xpu/so {FLAVOUR}",
                   "3.2.2"]
    assert naming.paddle_image(m, FLAVOUR, "x86_64") == layer.image


def test_a_runtime_archive_with_the_wrong_sha256_fails_naming_the_file(server, tmp_path, cache_dir):
    served, url = server
    m, repo = xpu_repo(tmp_path, served, url, archive_sha="0" * 64)
    with pytest.raises(HashMismatchError) as info:
        build.build_layers(m, paddle_layer(m).ancestry(), repo)
    assert "xre-standin_x86_64.tar.gz: sha256 mismatch" in info.value.message
    assert not (cache_dir / "downloads" / "xre-standin_x86_64.tar.gz").exists()


def test_an_air_gapped_host_takes_the_inputs_from_a_local_directory(server, tmp_path, cache_dir):
    """The URL is dead (port 9); the files come from a directory listed in the user config, verified
    into the cache: the step of a build that would otherwise download. (What a build does with the
    cached inputs is the test above's: the same layer, built from the same files.)"""
    served, _ = server
    m, repo = xpu_repo(tmp_path, served, "http://127.0.0.1:9")
    disk = tmp_path / "usb"
    shutil.copytree(served, disk)
    (tmp_path / "config/kunlun-bundle").mkdir(parents=True)
    (tmp_path / "config/kunlun-bundle/config.yaml").write_text(f"sources: [{disk}]\n")
    layer = paddle_layer(m)
    build.fetch_inputs(m, layer.ancestry(), repo)
    for name, where in (("xre-standin_x86_64.tar.gz", "downloads"), ("paddlepaddle_xpu-3.2.2-py3-none-any.whl", "wheels")):
        cached = cache_dir / where / name
        assert cached.is_file() and not cached.is_symlink(), name
        assert cached.read_bytes() == (disk / name).read_bytes(), name
