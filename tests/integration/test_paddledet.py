"""PaddleDetection's YOLOv3 (DarkNet53, MobileNetV1) and Mask R-CNN R50-FPN on the training engine in
their images: synthetic data, a roadsign-style VOC dataset and a cocome-style COCO dataset, malformed
ones, checkpoints and two data-parallel workers; then a detector learns (VOC mAP from an untrained
model's level to >= 0.25), exports and predicts, and Mask R-CNN evaluates (COCO bbox and segm AP),
exports and predicts masks; served, both exports' predict routes answer what predict saved. Small inputs (the resize operators' target_size, -o) keep the YOLO runs
to seconds; Mask R-CNN's cost is mostly its RoI heads (512 sampled RoIs per image), so its runs take
about a minute. Slow (builds images); marked `docker`."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.sample_data import coco as coco_sample
from tests.sample_data import voc as voc_sample

from .helpers import distributions, docker, evaluations, image, invoke, learn, package, post, serving, training

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


# --- the engine: a detector learns, evaluates, exports and predicts -----------------------------
# The smallest configuration that shows learning: YOLOv3-MobileNetV1 (of the two YOLOs, the one a
# CPU trains in minutes) at 96 px on one red square a picture in grey noise (32 training images,
# 16 for validation, one class), the VOC recipe's reader, optimizer and schedule shape, except a
# rate for a run this short: base 0.006 as written (no linear scaling from the 64-image reference
# batch), 120 steps of 8 that the recipe's 270 epochs of 4 steps are fitted to (decays x0.1 at steps
# 96 and 108), a warm-up of 24 steps (the recipe's 1000 would be cut to half of this short run).
LEARN = ["--steps", "120", "--eval-every", "60", "-o", "Global.image_size=96", "-o", "Global.seed=42",
         "-o", "Train.batch_transforms.BatchRandomResize.target_size=[96]",
         "-o", "Optimizer.lr.reference_batch=null", "-o", "Optimizer.lr.learning_rate=0.006",
         "-o", "Optimizer.lr.warmup_steps=24"]


@pytest.fixture(scope="module")
def learned(built, tmp_path_factory):
    """YOLOv3-MobileNetV1 trained on the square set, its final weights exported at the end."""
    # Subdirectories: pytest's own are private to root, the container's user must read and write these.
    data = voc_sample.learnable(tmp_path_factory.mktemp("squares") / "squares")
    return learn("yolov3-mobilenetv1", data, tmp_path_factory, LEARN)


def test_a_detector_learns_to_a_voc_map_of_at_least_0_25(learned):
    """VOC mAP@0.5 (11-point, PaddleDetection's VOCMetric) on valid.txt after 120 steps >= 0.25.
    Why 0.25: an untrained YOLOv3-MobileNetV1 scores 0.001-0.02 on this set (seeds 42, 1, 2: its
    random boxes rarely overlap the square by IoU 0.5); this run (seed 42, pinned: the initial weights,
    the shuffling and the augmentation are the same every time) reaches 0.34 at step 60 and 0.41 at step
    120, the same in every run here. 0.25 is over ten times the untrained model's best and leaves room
    below 0.41. Not every seed is that quick: seed 1 was at 0.04 and 0.08 after 60 and 120 steps (YOLOv3
    from scratch on 32 images is slow to start; docs/detection.md has the measurements), so the seed is
    part of the configuration, as the input size and the steps are."""
    data, out, output = learned
    steps, summary = training(output)
    assert [s for s, _, _ in steps] == list(range(1, 121))
    evals = evaluations(output)
    assert [s for s, _ in evals] == [60, 120]
    print(f"\nmAP by step: {[(s, m['mAP']) for s, m in evals]}")
    assert summary["best"]["metric"] == "mAP" and summary["best"]["value"] >= 0.25, output
    assert set(summary["metric"]) == {"mAP", "samples", "seconds"} and summary["metric"]["samples"] == 16
    assert steps[-1][2] < steps[0][2] / 4                                     # the loss fell
    assert "schedule: Piecewise 0.006 over 120 steps, then 0.0006 from step 96, 6e-05 from step 108, " \
           "linear warm-up from 0 over 24 steps" in output
    assert sorted(p.name for p in out.iterdir()) == ["best", "ckpt-000120", "inference", "metrics.jsonl", "vdl"]


def test_the_export_is_paddledetections_inference_model_with_its_infer_cfg(learned):
    _, out, _ = learned
    files = sorted(p.name for p in (out / "inference").iterdir())
    assert files == ["inference.json", "inference.pdiparams", "inference.yml", "label_list.txt"]
    config = json.loads((out / "inference/inference.yml").read_text())
    assert config["arch"] == "YOLO" and config["metric"] == "VOC" and config["label_list"] == ["square"]
    assert [p["type"] for p in config["Preprocess"]] == ["Resize", "NormalizeImage", "Permute"]
    assert config["Preprocess"][0]["target_size"] == [96, 96]


def test_eval_and_predict_find_the_squares(learned):
    """`eval` of the best weights gives the best evaluation's mAP; `predict` with the exported model
    (Paddle Inference, the model's own NMS inside) at the evaluation's score floor (0.01: YOLOv3's
    confidence is still low after 120 steps, though its ranking is what mAP measures) has, for most
    validation images, a `square` box overlapping the true square by IoU >= 0.5, and often it is the
    top-scoring box (measured: 16 and 10 of 16 at mAP 0.41)."""
    data, out, output = learned
    best = training(output)[1]["best"]
    evaluated = invoke("run", "yolov3-mobilenetv1", "--data", str(data), "--output", str(out),
                       "--", "eval", "--weights", "/output/best", *LEARN[4:6])
    summary = json.loads(next(line for line in evaluated.stdout.splitlines() if '"event": "eval summary"' in line))
    assert summary["metric"]["mAP"] == pytest.approx(best["value"], abs=1e-6)

    predicted = invoke("run", "yolov3-mobilenetv1", "--data", str(data), "--output", str(out),
                       "--", "predict", "--input", "/data/images", "--threshold", "0.01",
                       "--save", "/output/predict.jsonl")
    assert "[yolov3-mobilenetv1] predict /data/images/valid_000.png | " in predicted.stdout
    results = {Path(r["input"]).name: r for r in map(json.loads, (out / "predict.jsonl").read_text().splitlines())}
    assert len(results) == 48
    found = top = 0
    for line in (data / "valid.txt").read_text().splitlines():
        image, xml = line.split()
        text = (data / xml).read_text()
        truth = [float(text.split(f"<{k}>")[1].split("<")[0]) for k in ("xmin", "ymin", "xmax", "ymax")]
        boxes = [b for b in results[Path(image).name]["boxes"] if b["name"] == "square"]
        found += any(iou(b["box"], truth) >= 0.5 for b in boxes)
        top += bool(boxes) and iou(max(boxes, key=lambda b: b["score"])["box"], truth) >= 0.5
    assert found >= 12 and top >= 5, f"a box on {found}, the top box on {top} of 16 validation squares"


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


@pytest.fixture(scope="module")
def mask_rcnn(built, tmp_path_factory):
    """Mask R-CNN, two steps on cocome with its validation split, exported at the end: (data, out, output)."""
    # Subdirectories: pytest's own are private to root, the container's user must read and write these.
    data = coco_sample.coco(tmp_path_factory.mktemp("cocome") / "cocome", images=4, val=True)
    out = tmp_path_factory.mktemp("mask-rcnn") / "out"
    result = invoke("run", "mask-rcnn", "--data", str(data), "--output", str(out),
                    "--", "--steps", "2", "--eval-every", "2", "--export", "/output/inference", *MASK_SMALL)
    return data, out, result.stdout


def test_mask_rcnn_evaluates_coco_ap_exports_and_predicts_masks(mask_rcnn):
    """Two steps on cocome with its validation split: COCO bbox and segm AP from pycocotools (through
    ppdet's coco_utils), the export with its PadStride preprocessing, and `predict` writing a mask PNG
    per image (no learning asked of Mask R-CNN here: it is the costliest model to train on a CPU)."""
    data, out, output = mask_rcnn
    summary = training(output)[1]
    assert summary["data"] == "4 images, 6 instances, 2 classes from COCO instances_train.json; 4 for validation"
    assert set(summary["metric"]) == {"bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50", "samples", "seconds"}
    assert summary["best"]["metric"] == "bbox_AP" and "loading annotations" not in output
    config = json.loads((out / "inference/inference.yml").read_text())
    assert config["arch"] == "MaskRCNN" and config["Preprocess"][-1] == {"type": "PadStride", "stride": 32}
    predicted = invoke("run", "mask-rcnn", "--data", str(data), "--output", str(out),
                       "--", "predict", "--input", "/data/val", "--save", "/output/predict.jsonl")
    assert "[mask-rcnn] predict /data/val/000000.png | " in predicted.stdout
    results = [json.loads(line) for line in (out / "predict.jsonl").read_text().splitlines()]
    assert len(results) == 4 and all(r["mask"].startswith("/output/masks/") for r in results)
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:06d}.png" for i in range(4)]


# --- serving what was trained -------------------------------------------------------------------

def saved(out: Path, name: str) -> dict[str, dict]:
    return {Path(r["input"]).relative_to("/data").as_posix(): r
            for r in map(json.loads, (out / name).read_text().splitlines())}


def bad_input_then_served(url: str, good: bytes) -> None:
    status, answer = post(url, b"not an image", "image/png")
    assert status == 400 and "the request body: cannot read it as an image" in answer["error"]
    status, answer = post(url, json.dumps({"image": base64.b64encode(good).decode(), "threshold": "low"}).encode(),
                          "application/json")
    assert status == 400 and '"threshold": expected a float' in answer["error"]
    assert post(url, good, "image/png")[0] == 200


@pytest.fixture(scope="module")
def predicted_on_one_thread(learned) -> dict[str, dict]:
    """`predict --threshold 0.01` of the training image on one math thread, as the servers under test run."""
    data, out, _ = learned
    invoke("run", "yolov3-mobilenetv1", "--data", str(data), "--output", str(out),
           "--", "predict", "--input", "/data/images", "--threshold", "0.01", "--threads", "1", "--save", "/output/predict-served.jsonl")
    return saved(out, "predict-served.jsonl")


def test_the_yolov3_predict_route_answers_what_predict_saves(learned, predicted_on_one_thread):
    """`serve` of the detector's export: for validation images the boxes (class, name, score, box) of
    `predict --threshold 0.01` when the JSON body asks for that threshold, and at the export's
    draw_threshold (0.5) those of them scoring >= 0.5 when the body is the image's bytes."""
    data, out, _ = learned
    by_predict = predicted_on_one_thread
    names = [line.split()[0] for line in (data / "valid.txt").read_text().splitlines()][:4]
    with serving(image("yolov3-mobilenetv1"), out) as (url, _):
        route = f"{url}/v2/models/yolov3-mobilenetv1/predict"
        for name in names:
            body = (data / name).read_bytes()
            status, answer = post(route, json.dumps({"image": base64.b64encode(body).decode(), "threshold": 0.01}).encode(),
                                  "application/json")
            assert status == 200, answer
            assert answer == {"boxes": by_predict[name]["boxes"]}
            status, answer = post(route, body, "image/png")
            assert status == 200 and answer["boxes"] == [b for b in by_predict[name]["boxes"] if b["score"] >= 0.5]
        bad_input_then_served(route, (data / names[0]).read_bytes())


def test_the_yolov3_serving_image_answers_what_predict_saves_without_detections_training_packages(
        learned, predicted_on_one_thread):
    """`invoke package` of the detector's export: served from the serving image (PaddleDetection's
    operators imported without ppdet's init), the same boxes as the training image's `predict`; and
    none of what only ppdet's training and metrics import is in it."""
    data, out, _ = learned
    tag = package("yolov3-mobilenetv1", out / "inference")
    assert {"pycocotools", "matplotlib", "pandas", "scikit-learn", "scipy"} & distributions(tag) == set()
    names = [line.split()[0] for line in (data / "valid.txt").read_text().splitlines()][:3]
    with serving(tag, None) as (url, _):
        for name in names:
            body = base64.b64encode((data / name).read_bytes()).decode()
            status, answer = post(f"{url}/v2/models/yolov3-mobilenetv1/predict",
                                  json.dumps({"image": body, "threshold": 0.01}).encode(), "application/json")
            assert status == 200, answer
            assert answer == {"boxes": predicted_on_one_thread[name]["boxes"]}


def test_the_mask_rcnn_predict_route_answers_boxes_and_the_instance_mask_png(mask_rcnn):
    """`serve` of Mask R-CNN's export: predict's boxes (with each one's mask pixels), and under
    "mask_png" the instance-id PNG (pixel n = the n-th box, 0 = background) predict wrote, in base64."""
    data, out, _ = mask_rcnn
    invoke("run", "mask-rcnn", "--data", str(data), "--output", str(out), "--", "predict", "--input", "/data/val",
           "--threshold", "0.01", "--masks", "/output/masks-served", "--threads", "1", "--save", "/output/predict-served.jsonl")
    by_predict = saved(out, "predict-served.jsonl")
    with serving(image("mask-rcnn"), out, "--max-batch-size", "1") as (url, _):
        route = f"{url}/v2/models/mask-rcnn/predict"
        for name in sorted(by_predict)[:2]:
            body = json.dumps({"image": base64.b64encode((data / name).read_bytes()).decode(), "threshold": 0.01})
            status, answer = post(route, body.encode(), "application/json")
            assert status == 200, answer
            assert answer["boxes"] == by_predict[name]["boxes"]
            png = out / Path(by_predict[name]["mask"]).relative_to("/output")
            assert base64.b64decode(answer["mask_png"]) == png.read_bytes()
        bad_input_then_served(route, (data / sorted(by_predict)[0]).read_bytes())
