"""PaddleSeg's DeepLabV3+ (ResNet50_vd, output stride 8) and UNet in their images: synthetic data, an
optic_disc_seg-style dataset, a malformed one, checkpoints and two data-parallel workers. Then the
engine's promise: UNet learns a learnable set from chance to mIoU >= 0.7, two workers evaluate it to
the same metric, and the exported model predicts the masks that were evaluated; served, its predict
route answers what predict saved, the mask as PNG in base64. Small inputs
(-o Global.image_size=32) keep each run to seconds. Slow (builds images); marked `docker`."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.sample_data import segmentation as sample
from tests.sample_data.images import read_png

from .helpers import distributions, docker, evaluations, image, invoke, learn, package, post, serving, training

MODELS = ["deeplabv3", "unet"]
SMALL = ["-o", "Global.image_size=32"]


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


def test_trains_data_parallel_on_an_optic_disc_seg_dataset(built, optic):
    """DeepLabV3+ on two workers, each on its shard (UNet trains on the same dataset in
    test_saves_and_resumes). As `invoke run` starts it: --network none, workers talk over loopback."""
    result = invoke("run", "deeplabv3", "--data", str(optic), "--devices", "2", "--", "--steps", "2", *SMALL)
    steps, summary = training(result.stdout)
    assert "launching 2 data-parallel worker(s)" in result.stdout
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["workers"] == 2 and summary["batch_size"] == 4 and summary["loss_finite"]
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
    optic = ["--recipe", "optic-disc", "--steps", "1", *SMALL]            # 2 classes, as optic_disc_seg
    result = invoke("run", "unet", "--data", str(three), "--", *optic, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "/data/train_list.txt:2: label mask /data/Annotations/N0002.png has class ids 2 outside 0..1" in out
    assert "-o Arch.num_classes=N" in out and "Traceback" not in out
    ok = invoke("run", "unet", "--data", str(three), "--", *optic, "-o", "Arch.num_classes=3")
    assert training(ok.stdout)[1]["loss_finite"]


def test_a_corrupt_image_stops_training_with_its_list_line(built, optic):
    (optic / "JPEGImages/N0002.png").write_bytes(b"not a png")
    result = invoke("run", "unet", "--data", str(optic), "--", "--steps", "4", *SMALL, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "error: /data/train_list.txt:2: cannot read image /data/JPEGImages/N0002.png" in out
    assert "Traceback" not in out


def test_saves_and_resumes(built, optic, tmp_path):
    out = tmp_path / "out"
    first = invoke("run", "unet", "--data", str(optic), "--output", str(out), "--", "--steps", "2", *SMALL)
    steps, summary = training(first.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["data"] == "4 images with label masks from a list file"
    assert (out / "ckpt-000002" / "model.pdparams").is_file() and (out / "ckpt-000002" / "model.pdopt").is_file()

    resumed = invoke("run", "unet", "--data", str(optic), "--output", str(out),
                     "--", "--steps", "3", "--resume", *SMALL)
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000002 (step 2)" in resumed.stdout
    assert [s for s, _, _ in steps] == [3] and summary["first_step"] == 3 and finite(steps)
    assert (out / "ckpt-000003" / "state.json").is_file()


# --- the engine: a segmenter learns, evaluates, exports and predicts ---------------------------
# The smallest configuration that shows learning: UNet (of the two, the one that learns from scratch
# in a few steps; DeepLabV3+ is slower per step and still at the all-background level after 6) at
# 32 px on red discs in grey noise (32 training images, 16 for validation), the optic-disc quick
# start's recipe as upstream (momentum SGD, Polynomial 0.01 power 0.9, batch 4), 10 steps.
LEARN = ["--recipe", "optic-disc", "--steps", "10", "--eval-every", "5", "-o", "Global.image_size=32"]


@pytest.fixture(scope="module")
def learned(built, tmp_path_factory):
    """UNet trained on the disc set, its final weights exported at the end."""
    # Subdirectories: pytest's own are private to root, the container's user must read and write these.
    data = sample.learnable(tmp_path_factory.mktemp("discs") / "discs", size=32)
    return learn("unet", data, tmp_path_factory, LEARN)


def masks(data: Path, split: str) -> dict[str, list[list[int]]]:
    pairs = [line.split() for line in (data / f"{split}_list.txt").read_text().splitlines()]
    return {image: read_png(data / mask)[2] for image, mask in pairs}


def test_a_segmenter_learns_from_chance_to_over_0_7_miou(learned):
    data, out, output = learned
    chance = sample.constant_miou(list(masks(data, "val").values()))   # all background: about 0.44
    steps, summary = training(output)
    assert [s for s, _, _ in steps] == list(range(1, 11))
    evals = evaluations(output)
    assert [s for s, _ in evals] == [5, 10]
    print(f"\nmIoU by step (chance {chance:.3f}): {[(s, m['mIoU']) for s, m in evals]}")
    assert chance < 0.5 and summary["metric"]["mIoU"] >= 0.7, output
    assert set(summary["metric"]) == {"mIoU", "acc", "kappa", "samples", "seconds"}
    assert summary["best"]["metric"] == "mIoU" and summary["best"]["value"] >= 0.7
    assert steps[-1][2] < steps[0][2] / 2                                 # the loss fell
    assert "schedule: Polynomial 0.01 over 10 steps, power 0.9" in output
    assert sorted(p.name for p in out.iterdir()) == ["best", "ckpt-000010", "inference", "metrics.jsonl", "vdl"]


def test_the_export_is_paddlesegs_dynamic_argmax_model_with_its_deploy_config(learned):
    _, out, _ = learned
    config = json.loads((out / "inference/inference.yml").read_text())
    assert config["Deploy"] == {"model": "inference.json", "params": "inference.pdiparams",
                                "transforms": [{"type": "Resize", "target_size": [32, 32]}, {"type": "Normalize"}],
                                "input_shape": [None, 3, None, None], "output_op": "argmax",
                                "output_dtype": "int32", "num_classes": 2}


def test_two_workers_evaluate_to_the_training_metric_and_predict_gives_the_evaluated_masks(learned):
    """`eval` of the final weights on two workers (each evaluating half of the split, the areas
    summed) gives exactly the metric of the training's last evaluation; `predict` with the exported
    model through Paddle Inference writes, for every validation image, a mask PNG with the class
    counts `eval` saw, and the mIoU of those masks against the ground truth is the evaluated one."""
    data, out, output = learned
    final = training(output)[1]["metric"]
    evaluated = invoke("run", "unet", "--data", str(data), "--output", str(out), "--devices", "2",
                       "--", "eval", "--weights", "/output/ckpt-000010", "--predictions", "/output/eval.jsonl")
    assert "launching 2 data-parallel worker(s)" in evaluated.stdout
    summary = json.loads(next(line for line in evaluated.stdout.splitlines() if '"event": "eval summary"' in line))
    names = ("mIoU", "acc", "kappa")
    assert {k: summary["metric"][k] for k in names} == {k: final[k] for k in names}

    predicted = invoke("run", "unet", "--data", str(data), "--output", str(out),
                       "--", "predict", "--input", "/data/JPEGImages", "--save", "/output/predict.jsonl")
    assert "[unet] predict /data/JPEGImages/val_000.png | mask /output/masks/val_000.png | 32x32 | classes 0 " \
        in predicted.stdout
    by_eval = {r["input"]: r["pixels"] for r in map(json.loads, (out / "eval.jsonl").read_text().splitlines())}
    results = {Path(r["input"]).relative_to("/data").as_posix(): r
               for r in map(json.loads, (out / "predict.jsonl").read_text().splitlines())}
    assert len(by_eval) == 16 and len(results) == 48
    assert {k: results[k]["pixels"] for k in by_eval} == by_eval

    truth = masks(data, "val")
    intersect, pred, label = [0, 0], [0, 0], [0, 0]
    for name, expected in truth.items():
        mask = read_png(out / Path(results[name]["mask"]).relative_to("/output"))[2]
        for p_row, t_row in zip(mask, expected):
            for p, t in zip(p_row, t_row):
                pred[p] += 1
                label[t] += 1
                intersect[p] += p == t
    miou = sum(i / (p + t - i) for i, p, t in zip(intersect, pred, label)) / 2
    assert miou == pytest.approx(final["mIoU"], abs=1e-12)


def test_the_predict_route_answers_what_predict_saves_with_the_mask_in_base64(learned):
    """`serve` of the export (the training image, then its serving image): for validation images the route's class counts and size are predict's,
    and its "mask_png" is the very PNG predict wrote; a body that is no image is a 400 naming it, and
    the next request is served."""
    data, out, _ = learned
    saved = out / "predict-served.jsonl"
    invoke("run", "unet", "--data", str(data), "--output", str(out), "--", "predict", "--input", "/data/JPEGImages",
           "--masks", "/output/masks-served", "--threads", "1", "--save", "/output/predict-served.jsonl")
    by_predict = {Path(r["input"]).relative_to("/data").as_posix(): r for r in map(json.loads, saved.read_text().splitlines())}
    names = [line.split()[0] for line in (data / "val_list.txt").read_text().splitlines()][:4]
    with serving(image("unet"), out) as (url, _):
        for name in names:
            status, answer = post(f"{url}/v2/models/unet/predict", (data / name).read_bytes(), "image/png")
            assert status == 200, answer
            expected = by_predict[name]
            assert (answer["shape"], answer["pixels"]) == (expected["shape"], expected["pixels"])
            assert base64.b64decode(answer["mask_png"]) == (out / Path(expected["mask"]).relative_to("/output")).read_bytes()
        encoded = base64.b64encode((data / names[0]).read_bytes()).decode()
        status, answer = post(f"{url}/v2/models/unet/predict", json.dumps({"image": encoded}).encode(), "application/json")
        assert status == 200 and answer["pixels"] == by_predict[names[0]]["pixels"]
        status, answer = post(f"{url}/v2/models/unet/predict", b"not an image", "image/png")
        assert status == 400 and "the request body: cannot read it as an image" in answer["error"]
        assert post(f"{url}/v2/models/unet/predict", (data / names[1]).read_bytes(), "image/png")[0] == 200
    # and the serving image of the same export (`invoke package`: no SciPy, scikit-learn or requests in it)
    # answers the same masks, byte for byte
    tag = package("unet", out / "inference")
    assert {"scipy", "scikit-learn", "requests"} & distributions(tag) == set()
    with serving(tag, None) as (url, _):
        for name in names[:2]:
            status, answer = post(f"{url}/v2/models/unet/predict", (data / name).read_bytes(), "image/png")
            assert status == 200, answer
            assert base64.b64decode(answer["mask_png"]) == \
                (out / Path(by_predict[name]["mask"]).relative_to("/output")).read_bytes()
