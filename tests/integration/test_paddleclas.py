"""Every PaddleClas model trains in its own image, on synthetic data and on a flowers-format
dataset, and one of them data-parallel with two CPU workers (`--devices 2`). Then the engine's
promise: a classifier learns a learnable set well past chance, evaluates, exports for Paddle
Inference and predicts what it evaluated."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.sample_data.classification import LEARNABLE, flowers, learnable
from tests.sample_data.digits import digits

from kunlun_bundle.images.lock import LockFile

from .helpers import (ROOT, distributions, docker, evaluations, image, invoke, learn, package, post, serving,
                      training)

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


# --- the engine against a plain loop, on real data ----------------------------------------------
# scikit-learn's handwritten digits (tests/sample_data/digits.py): 898 training images, 14 batches of
# 64 and 2 left over, the case where the engine once ended every epoch on a step of 2 images and learnt
# far worse than a plain loop. Both sides here: MobileNetV3 at 32 px, the imagenet recipe's rate for
# batch 64 (0.65 x 64/1024), Momentum 0.9, L2 2e-5, label smoothing 0.1, horizontal flips, 1 warm-up
# epoch then a cosine to 0 over 8 epochs (the curve has flattened by then: at 5 it is still climbing
# steeply and seeds disagree by 0.1), seed 0, evaluated at the end. The digits are centred and fill the
# image, so nothing is cropped (crop scale and ratio 1, eval crop ratio 1).
DIGITS_EPOCHS, DIGITS_SEED, DIGITS_TOLERANCE = 8, 0, 0.08
DIGITS = ["--epochs", str(DIGITS_EPOCHS), "--batch-size", "64", "--eval-every", str(DIGITS_EPOCHS * 14),
          "-o", "Global.image_size=32", "-o", "Train.crop_scale=[1.0,1.0]", "-o", "Train.crop_ratio=[1.0,1.0]",
          "-o", "Eval.crop_ratio=1.0", "-o", "Optimizer.lr.warmup_epoch=1", "-o", f"Global.seed={DIGITS_SEED}"]
REFERENCE = Path(__file__).parent / "reference"


def test_the_engine_learns_real_digits_as_well_as_a_plain_paddle_loop(built, tmp_path):
    """Same model, data, rate, schedule and seed; the engine's top-1 at most DIGITS_TOLERANCE below the
    plain loop's (tests/integration/reference/classification.py), and both far from chance (0.1):
    above 0.75. Measured on two CPUs each, one after the other: seed 0 engine 0.859, loop 0.891; seed 1
    engine 0.849, loop 0.835; the engine before the fix (a last step on 2 images every epoch), seed 0:
    0.338. Side by side on one CPU each (as here; 3 min 33 s where one after the other took about 8): seed
    0 engine 0.878, loop 0.833. docs/classification.md has the runs."""
    data = digits(tmp_path / "digits")
    # The loop runs beside the engine, one CPU each: at 32 px a step is mostly Python and small kernels,
    # so the two take about as long side by side as one alone on two CPUs (the wall time of this test).
    plain = subprocess.Popen(
        ["docker", "run", "--rm", "--network", "none", "--cpus", "1", "-e", "OMP_NUM_THREADS=1", "-v", f"{data}:/data:ro",
         "-v", f"{REFERENCE}:/ref:ro", "--entrypoint", "/opt/kunlun/venv/bin/python", image("mobilenetv3"),
         "/ref/classification.py", "/data", "MobileNetV3_large_x1_0", str(DIGITS_EPOCHS), "64", "0.040625", "1",
         "0.00002", "0.1", str(DIGITS_SEED), str(DIGITS_EPOCHS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        engine = invoke("run", "mobilenetv3", "--data", str(data), "--cpus", "1", "--", *DIGITS)
    finally:
        plain_out, plain_err = plain.communicate(timeout=1800)
    assert plain.returncode == 0, plain_err
    assert "10 classes, from the data" in engine.stdout                      # no -o Arch.class_num
    assert f"({DIGITS_EPOCHS} epochs of 14 steps)" in engine.stdout          # whole batches: 898 // 64
    [(_, metric)] = evaluations(engine.stdout)
    [reference] = [json.loads(line)["top1"] for line in plain_out.splitlines() if line.startswith('{"epoch"')]
    print(f"\nval top-1 after {DIGITS_EPOCHS} epochs: engine {metric['top1']:.4f}, plain loop {reference:.4f}")
    assert min(metric["top1"], reference) > 0.75
    assert metric["top1"] >= reference - DIGITS_TOLERANCE


# --- serving what was trained -------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(learned):
    """The learned model's export served by the image (`serve`, read-only root, non-root), on a
    loopback port of this host; stopped with SIGTERM at the end."""
    _, out, _ = learned
    with serving(image("mobilenetv3"), out) as (url, port):
        yield url, port


def test_the_served_model_answers_a_standard_v2_client(served):
    import tritonclient.http as triton
    _, port = served
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mobilenetv3")
    metadata = client.get_model_metadata("mobilenetv3")
    assert metadata["inputs"][0]["shape"] == [-1, 3, 32, 32]
    tensor = triton.InferInput("x", [2, 3, 32, 32], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 3, 32, 32), "float32"))
    output = client.infer("mobilenetv3", [tensor]).as_numpy(metadata["outputs"][0]["name"])
    assert output.shape == (2, 4) and np.allclose(output.sum(axis=1), 1, atol=1e-5)   # the exported softmax


def predicted(learned) -> dict[str, dict]:
    """What `predict` of the training image saved for each image (run here if no test has yet)."""
    data, out, _ = learned
    if not (out / "predict.jsonl").is_file():
        invoke("run", "mobilenetv3", "--data", str(data), "--output", str(out),
               "--", "predict", "--input", "/data/jpg", "--save", "/output/predict.jsonl")
    return {Path(r["input"]).relative_to("/data").as_posix(): r
            for r in map(json.loads, (out / "predict.jsonl").read_text().splitlines())}


def test_the_predict_route_answers_what_predict_prints_for_the_same_image(served, learned):
    """For every validation image: the same classes and scores as `predict` (test above) wrote."""
    data, out, _ = learned
    url, _ = served
    by_predict = predicted(learned)
    val = [line.split()[0] for line in (data / "val_list.txt").read_text().splitlines()]
    for name in val[:8]:
        status, answer = post(f"{url}/v2/models/mobilenetv3/predict", (data / name).read_bytes(), "image/png")
        assert status == 200, answer
        assert (answer["class_ids"], answer["scores"]) == (by_predict[name]["class_ids"], by_predict[name]["scores"])
    encoded = base64.b64encode((data / val[0]).read_bytes()).decode()
    status, answer = post(f"{url}/v2/models/mobilenetv3/predict", json.dumps({"image": encoded}).encode(),
                          "application/json")
    assert status == 200 and answer["class_ids"] == by_predict[val[0]]["class_ids"]


def test_bad_input_is_the_clients_error_and_the_next_request_is_served(served, learned):
    data, _, _ = learned
    url, _ = served
    status, answer = post(f"{url}/v2/models/mobilenetv3/predict", b"not an image", "image/png")
    assert status == 400 and "the request body: cannot read it as an image" in answer["error"]
    status, answer = post(f"{url}/v2/models/nope/infer", b"{}", "application/json")
    assert status == 404 and "unknown model 'nope'" in answer["error"]
    status, answer = post(f"{url}/v2/models/mobilenetv3/infer", b"{not json", "application/json")
    assert status == 400
    image_file = next((data / "jpg").iterdir())
    assert post(f"{url}/v2/models/mobilenetv3/predict", image_file.read_bytes(), "image/png")[0] == 200


# --- a serving image of what was trained (`invoke package`) --------------------------------------

@pytest.fixture(scope="module")
def packaged(learned):
    """The learned export packaged: the serving image's tag."""
    _, out, _ = learned
    return package("mobilenetv3", out / "inference")


def test_the_serving_image_answers_what_the_training_images_predict_saved(packaged, learned):
    """The model baked in (no mount), served by the serving image's own environment: the same classes
    and scores as the training image's `predict`."""
    data, _, _ = learned
    by_predict = predicted(learned)
    val = [line.split()[0] for line in (data / "val_list.txt").read_text().splitlines()]
    with serving(packaged, None) as (url, _):
        for name in val[:6]:
            status, answer = post(f"{url}/v2/models/mobilenetv3/predict", (data / name).read_bytes(), "image/png")
            assert status == 200, answer
            assert (answer["class_ids"], answer["scores"]) == (by_predict[name]["class_ids"], by_predict[name]["scores"])


def test_the_serving_images_labels_name_the_export_and_the_checkpoint_it_came_from(packaged, learned):
    _, out, _ = learned
    labels = json.loads(docker("image", "inspect", packaged).stdout)[0]["Config"]["Labels"]
    files = {p.relative_to(out / "inference").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((out / "inference").rglob("*")) if p.is_file()}
    assert json.loads(labels["io.kunlun.model.files"]) == files
    assert packaged.split(":")[1] == f"{labels['io.kunlun.model.digest'][:12]}-cpu-x86_64"
    trained = json.loads(labels["io.kunlun.model.trained"])   # the run's last checkpoint, exported at the end
    assert (trained["checkpoint"], trained["step"], trained["workers"]) == ("ckpt-000080", 80, 1)
    assert trained["best"]["metric"] == "top1"
    assert labels["io.kunlun.layer"] == "package" and labels["io.kunlun.model"] == "mobilenetv3"
    assert labels["org.opencontainers.image.revision"]


def test_the_serving_image_holds_no_training_only_package_and_is_smaller(packaged, learned):
    """Listed in the image: none of the packages PaddleClas's lock adds for training (scikit-learn, SciPy,
    faiss, requests, ...), and it is smaller than the training image."""
    locks = ROOT / "locks" / "x86_64" / "cpu"
    training_only = ({w.name for w in LockFile.read(locks / "paddleclas.txt").wheels}
                     - {w.name for w in LockFile.read(locks / "paddleclas-serving.txt").wheels})
    assert {"scikit-learn", "scipy", "faiss-cpu", "requests", "tqdm", "prettytable"} <= training_only
    held = distributions(packaged)
    assert {"paddlepaddle", "paddleclas", "opencv-python-headless", "six", "uvicorn", "starlette"} <= held
    assert held & training_only == set()
    size = {tag: json.loads(docker("image", "inspect", tag).stdout)[0]["Size"] for tag in (packaged, image("mobilenetv3"))}
    print(f"\nserving image {size[packaged] / 1e6:.0f} MB, training image {size[image('mobilenetv3')] / 1e6:.0f} MB")
    assert size[packaged] < size[image("mobilenetv3")]


def test_the_same_export_on_the_same_commit_builds_the_same_serving_image(packaged, learned):
    """`invoke repro --export`: the package layer built again from scratch (own cache, no Docker cache)
    is the image `invoke package` made, id for id. (`--start serving` builds the serving layer again
    too: 2.5 min here, measured identical; the suite layers' repro test covers that kind of layer.)"""
    _, out, _ = learned
    result = invoke("repro", "--model", "mobilenetv3", "--export", str(out / "inference"), "--against-built",
                    "--start", "package")
    assert "reproducible: 4 image(s) identical" in result.stderr, result.stderr

