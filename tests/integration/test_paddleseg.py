"""PaddleSeg's DeepLabV3+ (ResNet50_vd, output stride 8) and UNet in their images: synthetic data, an
optic_disc_seg-style dataset, a malformed one, checkpoints and two data-parallel workers. Small
inputs (-o Global.image_size=64) keep each run to seconds. Slow (builds images); marked `docker`."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.sample_data import segmentation as sample

from .helpers import docker, image, invoke, training

pytestmark = pytest.mark.docker
MODELS = ["deeplabv3", "unet"]
SMALL = ["-o", "Global.image_size=64"]


@pytest.fixture(scope="module")
def built(build):
    build("deeplabv3", "unet")


@pytest.fixture
def optic(tmp_path) -> Path:
    """4 images with 2-class masks (plus a 255 ignore border) in optic_disc_seg layout."""
    return sample.write(tmp_path / "optic", images=4, size=40, classes=2)


def finite(steps) -> bool:
    return all(loss == loss and abs(loss) < 1e6 for _, _, loss in steps)


def test_the_suite_layer_carries_the_reviewed_patch(built):
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "grep", image("unet"),
                    "-c", "ones_like(label, dtype='float32')",
                    "/opt/kunlun/suites/paddleseg/paddleseg/models/losses/cross_entropy_loss.py")
    assert result.stdout.strip() == "1"


@pytest.mark.parametrize("model", MODELS)
def test_trains_on_synthetic_data(built, model):
    result = docker("run", "--rm", "--network", "none", image(model), "--steps", "2", *SMALL)
    steps, summary = training(result.stdout)
    assert [(s, total) for s, total, _ in steps] == [(1, 2), (2, 2)] and finite(steps)
    assert summary["loss_finite"] and summary["data"] == "synthetic" and summary["unit"] == "images/s"
    assert summary["batch_size"] == 2 and summary["throughput"] > 0
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("model", MODELS)
def test_trains_on_an_optic_disc_seg_dataset(built, model, optic):
    result = invoke("run", model, "--data", str(optic), "--", "--steps", "2", *SMALL)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["data"] == "4 images with label masks from a list file"


def test_a_malformed_list_exits_2_naming_file_and_line(built, optic):
    (optic / "train_list.txt").write_text("JPEGImages/N0001.png Annotations/N0001.png\nJPEGImages/N0002.png\n")
    result = invoke("run", "unet", "--data", str(optic), "--", "--steps", "1", *SMALL, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train_list.txt:2: expected '<image path> <label mask path>'" in out
    assert "Traceback" not in out


def test_a_missing_mask_exits_2_before_training(built, optic):
    (optic / "Annotations/N0003.png").unlink()
    result = invoke("run", "deeplabv3", "--data", str(optic), "--", "--steps", "1", *SMALL, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train_list.txt:3: label mask Annotations/N0003.png not found" in out
    assert "step 1/1" not in out and "Traceback" not in out


def test_mask_ids_beyond_the_classes_exit_2_naming_the_mask(built, tmp_path):
    three = sample.write(tmp_path / "three", images=2, size=40, classes=3)
    result = invoke("run", "unet", "--data", str(three), "--", "--steps", "1", *SMALL, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train_list.txt:2: label mask /data/Annotations/N0002.png has class ids 2 outside 0..1" in out
    assert "-o Arch.num_classes=N" in out and "Traceback" not in out
    ok = invoke("run", "unet", "--data", str(three), "--", "--steps", "1", *SMALL, "-o", "Arch.num_classes=3")
    assert training(ok.stdout)[1]["loss_finite"]


def test_saves_and_resumes(built, optic, tmp_path):
    out = tmp_path / "out"
    first = invoke("run", "unet", "--data", str(optic), "--output", str(out), "--", "--steps", "2", *SMALL)
    assert [s for s, _, _ in training(first.stdout)[0]] == [1, 2]
    assert (out / "ckpt-000002" / "model.pdparams").is_file() and (out / "ckpt-000002" / "model.pdopt").is_file()

    resumed = invoke("run", "unet", "--data", str(optic), "--output", str(out),
                     "--", "--steps", "3", "--resume", *SMALL)
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000002 (step 2)" in resumed.stdout
    assert [s for s, _, _ in steps] == [3] and summary["first_step"] == 3 and finite(steps)
    assert (out / "ckpt-000003" / "state.json").is_file()


def test_two_data_parallel_workers(built):
    # With --network none, as invoke run starts it: single-node workers talk over loopback.
    result = docker("run", "--rm", "--network", "none", image("deeplabv3"),
                    "--steps", "2", "--devices", "2", *SMALL)
    steps, summary = training(result.stdout)
    assert summary["workers"] == 2 and summary["loss_finite"] and finite(steps)
    assert summary["batch_size"] == 4 and [s for s, _, _ in steps] == [1, 2]
