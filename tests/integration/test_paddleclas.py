"""Every PaddleClas model trains in its own image, on synthetic data and on a flowers-format
dataset, and one of them data-parallel with two CPU workers (`--devices 2`)."""
from __future__ import annotations

import pytest

from tests.sample_data.classification import flowers

from .helpers import docker, image, invoke, training

pytestmark = pytest.mark.docker
MODELS = ["resnet50", "vgg16", "vgg19", "mobilenetv3", "hrnet"]
# VGG's classifier expects 7x7 feature maps, i.e. 224 px inputs; the others take small ones.
SIZE = {"vgg16": 224, "vgg19": 224}


@pytest.fixture(scope="module")
def built(build):
    build(*MODELS)


def size(model: str) -> str:
    return f"Global.image_size={SIZE.get(model, 64)}"


@pytest.mark.parametrize("model", MODELS)
def test_trains_two_steps_on_synthetic_data(built, model):
    result = docker("run", "--rm", "--network", "none", image(model), "--steps", "2", "-o", size(model))
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2]
    assert summary["model"] == model and summary["loss_finite"] and summary["unit"] == "images/s"


@pytest.mark.parametrize("model", MODELS)
def test_trains_two_steps_on_a_flowers_dataset(built, model, tmp_path):
    data = flowers(tmp_path / "flowers")
    result = invoke("run", model, "--data", str(data), "--", "--steps", "2", "-o", "Arch.class_num=3", "-o", size(model))
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and summary["loss_finite"]
    assert summary["data"] == "4 images from a list file"


def test_two_cpu_workers_train_data_parallel(built, tmp_path):
    """Two gloo workers through paddle.distributed.launch: the global batch doubles, rank 0 logs
    and saves, and the checkpoint resumes in a single-worker run."""
    out = tmp_path / "out"
    result = invoke("run", "mobilenetv3", "--devices", "2", "--output", str(out),
                    "--", "--steps", "2", "--batch-size", "2", "-o", "Global.image_size=64")
    steps, summary = training(result.stdout)
    assert "launching 2 data-parallel worker(s)" in result.stdout
    assert [s for s, _, _ in steps] == [1, 2]
    assert summary["workers"] == 2 and summary["batch_size"] == 4 and summary["loss_finite"]
    assert summary["device"].endswith(", 2 workers")
    assert sorted(p.name for p in out.iterdir()) == ["ckpt-000002"]   # one writer, no clash

    resumed = invoke("run", "mobilenetv3", "--output", str(out), "--", "--steps", "3", "--resume",
                     "-o", "Global.image_size=64")
    assert [s for s, _, _ in training(resumed.stdout)[0]] == [3]


def test_a_failing_worker_stops_the_job_with_its_error(built, tmp_path):
    data = flowers(tmp_path / "flowers")
    (data / "train_list.txt").write_text("jpg/image_00001.png 0\njpg/missing.png 1\n")
    result = invoke("run", "mobilenetv3", "--devices", "2", "--data", str(data), "--", "--steps", "1", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "/data/train_list.txt:2: image jpg/missing.png not found" in output
    assert "a data-parallel worker failed" in output
