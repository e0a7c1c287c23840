"""The aarch64 (Phytium) chain from the same matrix and templates: on an x86_64 host it is
bootstrapped, built and run under qemu-user emulation (slow: minutes cold, mostly the bootstrap)."""
from __future__ import annotations

import json
import platform

import pytest

from kunlun_bundle import matrix, naming

from .helpers import ROOT, docker, invoke, package, post, serving, training


pytestmark = pytest.mark.emulated
M = matrix.load(ROOT / "matrix.yaml")
BASE = naming.base_image(M, "bookworm", "aarch64")
PADDLE = naming.paddle_image(M, "cpu", "aarch64")
IMAGE = naming.model_image(M, "resnet50", "cpu", "aarch64")


@pytest.fixture(scope="module")
def built(build):
    """`invoke build --arch arm` (an alias) for ResNet50: base, Paddle, PaddleClas and model layers
    (built in the background since the run began: conftest.py)."""
    build("resnet50", arch="arm")


@pytest.mark.parametrize("image", [BASE, PADDLE, IMAGE])
def test_every_layer_is_labelled_arm64(built, image):
    info = json.loads(docker("image", "inspect", image).stdout)[0]
    assert (info["Os"], info["Architecture"]) == ("linux", "arm64")


def test_the_container_is_an_aarch64_userland(built):
    result = docker("run", "--rm", "--network", "none", "--platform", "linux/arm64", "--entrypoint", "uname",
                    IMAGE, "-m")
    assert result.stdout.strip() == "aarch64"


@pytest.fixture(scope="module")
def trained(built, tmp_path_factory):
    """ResNet50 trained one step on aarch64 and exported: (the run's output, OUT). One run for both tests
    below: under emulation a run is most of a minute."""
    out = tmp_path_factory.mktemp("arm") / "out"
    result = invoke("run", "resnet50", "--arch", "arm", "--output", str(out),
                    "--", "--steps", "1", "-o", "Global.image_size=64", "--export", "/output/inference")
    return result.stdout, out


def test_resnet50_trains_one_step_on_aarch64(trained):
    """Emulated on an x86_64 host, native on an ARM one; the same image either way."""
    steps, summary = training(trained[0])
    assert [(s, total) for s, total, _ in steps] == [(1, 1)]
    assert summary["loss_finite"] and summary["paddle"] == "3.2.2"
    assert summary["machine"] == "aarch64"   # under qemu on this x86_64 host


def test_the_host_default_is_unchanged_by_the_arm_build(build, built):
    """`latest` stays the host's own arch: an arm build never retags the x86_64 image."""
    if platform.machine() != "x86_64":
        pytest.skip("checks the x86_64 host's latest tag")
    build("resnet50")            # the host's own (once per test run), then the arm build again
    invoke("build", "--arch", "arm", "--model", "resnet50")
    latest = naming.model_latest(M, "resnet50")
    info = json.loads(docker("image", "inspect", latest).stdout)[0]
    assert info["Architecture"] == "amd64"


def test_resnet50_trained_on_aarch64_is_packaged_and_served_there(trained):
    """The step's export packaged for aarch64 (`invoke package --arch arm`: the serving layer built
    under emulation) and served from it (the Open Inference Protocol server; no oneDNN in the aarch64
    wheel): one V2 request answered, all aarch64 under emulation; stopped with SIGTERM, exit 0.
    The training image's `serve` runs the same code (the x86_64 tests serve from both kinds of image)."""
    _, out = trained
    tag = package("resnet50", out / "inference", arch="arm")
    info = json.loads(docker("image", "inspect", tag).stdout)[0]
    assert tag.endswith("-cpu-aarch64") and info["Architecture"] == "arm64"
    body = {"inputs": [{"name": "x", "shape": [1, 3, 64, 64], "datatype": "FP32", "data": [0.0] * (3 * 64 * 64)}]}
    with serving(tag, None, "--max-batch-size", "1", timeout=600) as (url, _):   # qemu: Paddle's import is slow
        status, answer = post(f"{url}/v2/models/resnet50/infer", json.dumps(body).encode(), "application/json")
    assert status == 200, answer
    [output] = answer["outputs"]
    assert output["shape"] == [1, 1000] and abs(sum(output["data"]) - 1) < 1e-3   # the exported softmax
