"""The training engine's costs, measured in the built images (build them first: `./kunlun build
--model resnet50 --model mobilenetv3`). Writes results/engine.json; README.md has the write-up.

  pipeline   step time on real-format data (PNG files through the DataLoader's workers and PaddleClas's
             operators) against synthetic data at the same batch and input size, default workers;
             and the input pipeline alone (images/s with 1 and 2 workers) against what the model consumes
  learning   steps and wall time until the learnable test set passes 0.9 top-1 (the integration test's
             configuration, evaluated every 5 steps), and the cost of one evaluation pass

Run from the repository root: `.venv/bin/python bench/engine.py [--rounds 3]`."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from kunlun_bundle import matrix, naming  # noqa: E402
from tests.sample_data.classification import learnable  # noqa: E402

RESULTS = ROOT / "bench/results/engine.json"
M = matrix.load(ROOT / "matrix.yaml")


def image(model: str) -> str:
    return naming.model_latest(M, model)


def docker_run(*args: str, volumes: dict[str, str] | None = None, entrypoint: str | None = None) -> str:
    cmd = ["docker", "run", "--rm", "--network", "none", "--shm-size", "1g"]
    for src, dst in (volumes or {}).items():
        cmd += ["-v", f"{src}:{dst}"]
    cmd += ["--entrypoint", entrypoint] if entrypoint else []
    result = subprocess.run([*cmd, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd + list(args))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def summary(output: str) -> dict:
    return json.loads(next(line for line in output.splitlines() if line.startswith('{"event": "summary"')))


def pipeline(data: Path, rounds: int, batch: int, size: int, steps: int) -> dict:
    """Real-format vs synthetic step time (interleaved rounds, medians), ResNet50."""
    common = ["--steps", str(steps), "--batch-size", str(batch), "-o", f"Global.image_size={size}", "-o", "Arch.class_num=4"]
    real, synthetic = [], []
    for _ in range(rounds):
        real.append(summary(docker_run(image("resnet50"), "--data", "/data", "--eval-every", "0", *common,
                                       volumes={str(data): "/data:ro"}))["mean_step_seconds"])
        synthetic.append(summary(docker_run(image("resnet50"), *common))["mean_step_seconds"])
    loader = PIPELINE_SCRIPT.format(batch=batch, size=size)
    alone = {}
    for workers in (1, 2):
        out = docker_run(image("resnet50"), "-c", loader, str(workers), volumes={str(data): "/data:ro"}, entrypoint="python")
        alone[workers] = json.loads(out.strip().splitlines()[-1])
    step = statistics.median(real)
    return {"model": "resnet50", "batch": batch, "image_size": size, "steps": steps, "rounds": rounds,
            "real_step_s": [round(x, 4) for x in real], "synthetic_step_s": [round(x, 4) for x in synthetic],
            "real_vs_synthetic": round(step / statistics.median(synthetic), 3),
            "model_consumes_images_per_s": round(batch / step, 2),
            "pipeline_alone": {f"{w} worker(s)": v for w, v in alone.items()}}


# The input pipeline alone: the classification task's dataset through the engine's DataLoader.
PIPELINE_SCRIPT = """
import json, sys, time
from kunlun_train import parallel, recipe as recipes
from kunlun_train.engine import Engine
from kunlun_train.options import RunOptions
from kunlun_train.tasks.classification.adapter import Task
found = recipes.load("/opt/kunlun/recipe.json")
name, r = found.select(None)
r["Global"].update(image_size={size})
r["Arch"]["class_num"] = 4
r["DataLoader"]["batch_size"] = {batch}
workers = int(sys.argv[1])
options = RunOptions(command="train", model=found.bundle.get("model", "model"), task="classification",
                     recipe=name, data="/data", workers=workers, threads=2)
task = Task(r, "/data", parallel.World(), options)
engine = Engine(task, r, options, parallel.World(), "cpu", lambda text: None)
train, _ = task.datasets()
loader = engine.loader(train, train=True)
count, start = 0, None
for epoch in range(3):
    loader.batch_sampler.set_epoch(epoch)
    for batch in loader:
        if start is None:
            start = time.perf_counter()   # after the workers started and the first batch arrived
            continue
        count += len(batch[0])
seconds = time.perf_counter() - start
print(json.dumps({{"workers": workers, "images_per_s": round(count / seconds, 1),
                  "per_worker": round(count / seconds / workers, 1)}}))
"""


def learning(data: Path, out: Path) -> dict:
    """The integration test's configuration (tests/integration/test_paddleclas.py LEARN), evaluated every 5 steps."""
    args = ["--recipe", "flowers102-finetune", "--steps", "80", "--batch-size", "16", "--eval-every", "5",
            "-o", "Global.image_size=32", "-o", "Arch.class_num=4", "-o", "Optimizer.lr.learning_rate=0.04",
            "-o", "Optimizer.lr.warmup_epoch=0"]
    started = time.monotonic()
    docker_run(image("mobilenetv3"), "--data", "/data", "--output", "/output", *args,
               volumes={str(data): "/data:ro", str(out): "/output"})
    wall = time.monotonic() - started
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    first = next((e for e in evals if e["top1"] >= 0.9), None)
    steps = [e for e in events if e["event"] == "train"]
    return {"model": "mobilenetv3", "config": " ".join(args), "docker_run_wall_s": round(wall, 1),
            "top1_by_step": [(e["step"], e["top1"]) for e in evals],
            "threshold": 0.9, "chance": 0.25,
            "first_step_at_threshold": first["step"] if first else None,
            "seconds_to_threshold": first["time"] if first else None,
            "mean_step_s": round((steps[-1]["time"] - steps[0]["time"]) / (len(steps) - 1), 3),
            "eval_pass_s": round(statistics.median(e["seconds"] for e in evals), 3),
            "eval_images": evals[0]["samples"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=6)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = learnable(Path(tmp) / "data", train_per_class=32, val_per_class=8, size=256)
        out = Path(tmp) / "out"
        out.mkdir()
        out.chmod(0o777)
        results = {"when": time.strftime("%Y-%m-%d %H:%M"),
                   "pipeline": pipeline(data, a.rounds, a.batch, a.size, a.steps),
                   "learning": learning(learnable(Path(tmp) / "small"), out)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
