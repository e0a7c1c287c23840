"""Every PaddleClas model trains in its own image, on synthetic data and on a flowers-format
dataset, and one of them data-parallel with two CPU workers (`--devices 2`). Then the engine's
promise: a classifier learns a learnable set well past chance, evaluates, exports for Paddle
Inference and predicts what it evaluated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sample_data.classification import LEARNABLE, flowers, learnable

from .helpers import docker, evaluations, image, invoke, learn, training

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
    result = invoke("run", model, "--data", str(data), "--", "--steps", "2", "--batch-size", "2", "-o", "Arch.class_num=3",
                    "-o", size(model))
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
    assert sorted(p.name for p in out.iterdir()) == ["ckpt-000002", "metrics.jsonl", "vdl"]   # one writer, no clash

    resumed = invoke("run", "mobilenetv3", "--output", str(out), "--", "--steps", "3", "--resume",
                     "-o", "Global.image_size=64")
    assert [s for s, _, _ in training(resumed.stdout)[0]] == [3]


def test_a_bad_list_fails_before_any_worker_starts(built, tmp_path):
    data = flowers(tmp_path / "flowers")
    (data / "train_list.txt").write_text("jpg/image_00001.png 0\njpg/missing.png 1\n")
    result = invoke("run", "mobilenetv3", "--devices", "2", "--data", str(data), "--", "--steps", "1", check=False)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "/data/train_list.txt:2: image jpg/missing.png not found" in output
    assert "launching" not in output and "Traceback" not in output


def test_a_failing_worker_stops_the_job_with_its_error(built, tmp_path):
    """A corrupt image is found only when a worker decodes it: that worker fails, the job stops."""
    data = flowers(tmp_path / "flowers")
    (data / "jpg/image_00002.png").write_bytes(b"not a png")
    result = invoke("run", "mobilenetv3", "--devices", "2", "--data", str(data), "--", "--steps", "2",
                    "--batch-size", "1", "--workers", "0", "-o", "Arch.class_num=3", "-o", "Global.image_size=32", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "/data/train_list.txt:2: cannot read image" in output
    assert "a data-parallel worker failed" in output


# --- the engine: a classifier learns, evaluates, exports and predicts --------------------------
# The smallest configuration that shows learning: MobileNetV3 at 32 px on 4 colour classes (64
# training images, 32 for validation), the flowers102 recipe's cosine schedule at a from-scratch
# learning rate, 80 steps of 16 (over three seeds it passed 0.9 by step 60, and 0.25 at step 20 is chance).
LEARN = ["--recipe", "flowers102-finetune", "--steps", "80", "--batch-size", "16", "--eval-every", "20",
         "-o", "Global.image_size=32", "-o", "Arch.class_num=4", "-o", "Optimizer.lr.learning_rate=0.04",
         "-o", "Optimizer.lr.warmup_epoch=0"]


@pytest.fixture(scope="module")
def learned(built, tmp_path_factory):
    """MobileNetV3 trained on the learnable set, with its best checkpoint exported at the end."""
    data = learnable(tmp_path_factory.mktemp("colours") / "data")   # mktemp's own directory is private (0700)
    return learn("mobilenetv3", data, tmp_path_factory, LEARN)


def test_a_classifier_learns_from_chance_to_over_90_percent(learned):
    data, out, output = learned
    chance = 1 / len(LEARNABLE)
    steps, summary = training(output)
    assert [s for s, _, _ in steps] == list(range(1, 81))
    assert summary["metric"]["top1"] >= 0.9, output                      # chance is 0.25
    assert summary["best"]["metric"] == "top1" and summary["best"]["value"] >= 0.9
    evals = evaluations(output)
    assert [s for s, _ in evals] == [20, 40, 60, 80]
    print(f"\ntop-1 by step (chance {chance}): {[(s, m['top1']) for s, m in evals]}")
    assert steps[-1][2] < steps[0][2] / 2                                 # the loss fell
    assert "schedule: Cosine" in output
    assert sorted(p.name for p in out.iterdir()) == ["best", "ckpt-000080", "inference", "metrics.jsonl", "vdl"]


def test_the_metrics_log_has_every_step_and_evaluation_and_visualdl_has_them_too(learned):
    _, out, _ = learned
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train"]
    assert [e["step"] for e in train] == list(range(1, 81))
    assert train[0]["lr"] > train[-1]["lr"] > 0                          # the cosine decays
    assert [e["step"] for e in events if e["event"] == "eval"] == [20, 40, 60, 80]
    assert list((out / "vdl").glob("vdlrecords.*.log"))


def test_eval_and_the_exported_model_predict_the_same(learned):
    """`eval` on the validation split and `predict` with the exported model through Paddle
    Inference give every validation image the same class."""
    data, out, _ = learned
    evaluated = invoke("run", "mobilenetv3", "--data", str(data), "--output", str(out),
                       "--", "eval", "--predictions", "/output/eval.jsonl")
    assert '"event": "eval summary"' in evaluated.stdout
    invoke("run", "mobilenetv3", "--data", str(data), "--output", str(out),
           "--", "predict", "--input", "/data/jpg", "--labels", "/data/label_list.txt", "--save", "/output/predict.jsonl")
    by_eval = {r["input"]: r["class_ids"][0] for r in map(json.loads, (out / "eval.jsonl").read_text().splitlines())}
    by_predict = {Path(r["input"]).relative_to("/data").as_posix(): r["class_ids"][0]
                  for r in map(json.loads, (out / "predict.jsonl").read_text().splitlines())}
    assert len(by_eval) == 32 and {k: by_predict[k] for k in by_eval} == by_eval
    names = {r["label_names"][0] for r in map(json.loads, (out / "predict.jsonl").read_text().splitlines())}
    assert names <= {"red", "green", "blue", "yellow"}
    accuracy = sum(by_eval[k] == int(k.split("_")[1]) for k in by_eval) / len(by_eval)
    assert accuracy >= 0.9


def test_two_workers_evaluate_the_whole_split_to_the_same_metric(learned):
    data, out, _ = learned
    one = invoke("run", "mobilenetv3", "--data", str(data), "--output", str(out), "--", "eval")
    two = invoke("run", "mobilenetv3", "--data", str(data), "--output", str(out), "--devices", "2", "--", "eval")
    assert "launching 2 data-parallel worker(s)" in two.stdout
    assert evaluations(one.stdout) == evaluations(two.stdout)
    assert [line for line in two.stdout.splitlines() if " eval step " in line].__len__() == 1   # printed once


def test_pretrained_weights_of_another_class_count_load_all_but_the_head(learned):
    _, out, _ = learned
    result = docker("run", "--rm", "--network", "none", "-v", f"{out}:/weights:ro", image("mobilenetv3"),
                    "--steps", "1", "--pretrained", "/weights/best", "-o", "Global.image_size=32", "-o", "Arch.class_num=7")
    line = next(line for line in result.stdout.splitlines() if "weights from /weights/best" in line)
    assert "loaded 268 of 270 tensors; skipped (shape differs): fc.weight [1280, 4]->[1280, 7], fc.bias [4]->[7]" in line
    missing = docker("run", "--rm", "--network", "none", image("mobilenetv3"), "--steps", "1",
                     "--pretrained", "/nowhere/w.pdparams", check=False)
    assert missing.returncode == 2 and "/nowhere/w.pdparams: no such weights file" in missing.stderr
