"""PaddleDetection's YOLOv3 (DarkNet53, MobileNetV1) and Mask R-CNN R50-FPN on the training engine in
their images: synthetic data, a roadsign-style VOC dataset and a cocome-style COCO dataset, malformed
ones, checkpoints and two data-parallel workers; then a detector learns (VOC mAP from an untrained
model's level to >= 0.25), exports and predicts, and Mask R-CNN evaluates (COCO bbox and segm AP),
exports and predicts masks. Small inputs (the resize operators' target_size, -o) keep the YOLO runs
to seconds; Mask R-CNN's cost is mostly its RoI heads (512 sampled RoIs per image), so its runs take
about a minute. Slow (builds images); marked `docker`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sample_data import coco as coco_sample
from tests.sample_data import voc as voc_sample

from .helpers import docker, evaluations, image, invoke, training

pytestmark = pytest.mark.docker
YOLO = ["yolov3-mobilenetv1", "yolov3-darknet53"]
MODELS = [*YOLO, "mask-rcnn"]
# The recipes' resize operators at 64 px (upstream: multi-scale 320-608 for YOLOv3, short side 640-800 for Mask R-CNN).
YOLO_SMALL = ["-o", "Global.image_size=64", "-o", "Train.batch_transforms.BatchRandomResize.target_size=[64]"]
MASK_SMALL = ["-o", "Train.sample_transforms.RandomResize.target_size=[[64, 96]]",
              "-o", "Eval.sample_transforms.Resize.target_size=[64, 96]"]


def small(model: str) -> list[str]:
    return MASK_SMALL if model == "mask-rcnn" else YOLO_SMALL


@pytest.fixture(scope="module")
def built(build):
    build(*MODELS)


@pytest.fixture
def roadsign(tmp_path) -> Path:
    return voc_sample.voc(tmp_path / "roadsign", images=4)


@pytest.fixture
def cocome(tmp_path) -> Path:
    return coco_sample.coco(tmp_path / "cocome", images=4)


def finite(steps) -> bool:
    return all(loss == loss and abs(loss) < 1e6 for _, _, loss in steps)


def test_the_suite_layer_carries_the_reviewed_patches(built):
    suite = "/opt/kunlun/suites/paddledet/ppdet/modeling"
    for pattern, file, count in ((r"num.*append(paddle.shape(.*)\[0:1\])", "proposal_generator/target.py", "3"),
                                 ("paddle.framework.in_pir_mode()", "ops.py", "1"),
                                 (r"bbox_num_i = bbox_num\[i:i + 1\]", "post_process.py", "1")):
        result = docker("run", "--rm", "--network", "none", "--entrypoint", "grep", image("mask-rcnn"), "-c",
                        pattern, f"{suite}/{file}")
        assert result.stdout.strip() == count, file


@pytest.mark.parametrize("model", MODELS)
def test_trains_on_synthetic_data(built, model):
    result = docker("run", "--rm", "--network", "none", image(model), "--steps", "2", *small(model))
    steps, summary = training(result.stdout)
    assert [(s, total) for s, total, _ in steps] == [(1, 2), (2, 2)] and finite(steps)
    assert summary["loss_finite"] and summary["data"] == "synthetic" and summary["unit"] == "images/s"
    assert summary["batch_size"] == 2 and summary["throughput"] > 0
    assert "Traceback" not in result.stderr and "Unable to use" not in result.stdout


@pytest.mark.parametrize("model", YOLO)
def test_yolov3_trains_on_a_voc_dataset(built, model, roadsign):
    result = invoke("run", model, "--data", str(roadsign), "--", "--steps", "2", *YOLO_SMALL)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["data"] == "4 images, 6 boxes, 4 classes from a VOC list file"


def test_mask_rcnn_trains_on_a_coco_dataset(built, cocome):
    result = invoke("run", "mask-rcnn", "--data", str(cocome), "--", "--steps", "2", *MASK_SMALL)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["data"] == "4 images, 6 instances, 2 classes from COCO instances_train.json"


def test_a_malformed_voc_annotation_exits_2_naming_file_and_line(built, roadsign):
    xml = roadsign / "annotations/road1.xml"
    xml.write_text(xml.read_text().replace("<name>trafficlight</name>", "<name>traffic light</name>"))
    result = invoke("run", "yolov3-darknet53", "--data", str(roadsign), "--", "--steps", "1", *YOLO_SMALL,
                    check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/annotations/road1.xml:20: object 2: class 'traffic light' is not in label_list.txt" in out
    assert "step 1/1" not in out and "Traceback" not in out


def test_a_malformed_voc_list_exits_2_naming_the_line(built, roadsign):
    (roadsign / "train.txt").write_text("images/road0.png annotations/road0.xml\nimages/road1.png\n")
    result = invoke("run", "yolov3-mobilenetv1", "--data", str(roadsign), "--", "--steps", "1", check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train.txt:2: expected '<image path> <annotation path>'" in out and "Traceback" not in out


def test_a_malformed_coco_file_exits_2_naming_the_annotation(built, cocome):
    doc = coco_sample.document(images=4)
    doc["annotations"][2]["category_id"] = 9
    coco_sample.write_json(cocome, doc)
    result = invoke("run", "mask-rcnn", "--data", str(cocome), "--", "--steps", "1", *MASK_SMALL, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/annotations/instances_train.json: annotation id 3: category_id 9 is not in 'categories'" in out
    assert "Traceback" not in out


def test_saves_and_resumes(built, roadsign, tmp_path):
    out = tmp_path / "out"
    first = invoke("run", "yolov3-mobilenetv1", "--data", str(roadsign), "--output", str(out),
                   "--", "--steps", "2", *YOLO_SMALL)
    assert [s for s, _, _ in training(first.stdout)[0]] == [1, 2]
    assert (out / "ckpt-000002" / "model.pdparams").is_file() and (out / "ckpt-000002" / "model.pdopt").is_file()

    resumed = invoke("run", "yolov3-mobilenetv1", "--data", str(roadsign), "--output", str(out),
                     "--", "--steps", "3", "--resume", *YOLO_SMALL)
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000002 (step 2)" in resumed.stdout
    assert [s for s, _, _ in steps] == [3] and summary["first_step"] == 3 and finite(steps)
    assert (out / "ckpt-000003" / "state.json").is_file()


def test_two_data_parallel_workers(built):
    # With --network none, as invoke run starts it: single-node workers talk over loopback.
    result = docker("run", "--rm", "--network", "none", image("yolov3-mobilenetv1"),
                    "--steps", "2", "--devices", "2", *YOLO_SMALL)
    steps, summary = training(result.stdout)
    assert summary["workers"] == 2 and summary["loss_finite"] and finite(steps)
    assert summary["batch_size"] == 4 and [s for s, _, _ in steps] == [1, 2]
