"""Segmentation on the training engine (issue 12), written to bench/results/segmentation.json:

  input     per model: mean step time on a real-format dataset (PNG images and masks through PaddleSeg's
            cityscapes transforms: ResizeStepScaling, RandomPaddingCrop, flip, RandomDistort, Normalize;
            the default DataLoader workers) vs synthetic arrays, same batch and crop; their ratio
  eval      per model: one evaluation pass over the validation split (whole images, Normalize only)
  pipeline  the input pipeline alone: the cityscapes train transforms on 2048x1024 PNGs (Cityscapes'
            size) into 1024x512 crops, images/s with 0 and 1 DataLoader workers
  learn     UNet on the learnable disc set (the integration test's configuration): a 10-step run
            evaluated after every step (where it crosses mIoU 0.7), then the shortest run (its
            schedule fitted to its length) that ends at mIoU >= 0.7, timed

Runs on the host with the locked wheels (bench/models.py's host venv, the image's environment):
`.venv/bin/python bench/segmentation.py [--steps 8] [--rounds 2] [--learn-only]`. Measurements on a shared machine
are as noisy as its load; rounds are interleaved so drift hits both sides alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from kunlun_bundle import matrix  # noqa: E402
from kunlun_bundle.host import cache  # noqa: E402
from kunlun_bundle.images import chain, kinds  # noqa: E402
from models import host_venv  # noqa: E402
from tests.sample_data import segmentation as sample  # noqa: E402

RESULTS = ROOT / "bench/results/segmentation.json"
THRESHOLD = 0.7
PIPELINE = """
import json, sys, time
from pathlib import Path
import cv2, numpy as np, paddle
from kunlun_train import parallel, recipe as recipes
from kunlun_train.options import RunOptions
from kunlun_train.tasks.segmentation.adapter import Task
root, rng, lines = Path(sys.argv[2]), np.random.default_rng(0), []
for i in range(8):
    (root / "img").mkdir(parents=True, exist_ok=True); (root / "ann").mkdir(exist_ok=True)
    cv2.imwrite(str(root / f"img/{i}.png"), rng.integers(0, 255, (1024, 2048, 3), dtype=np.uint8))
    cv2.imwrite(str(root / f"ann/{i}.png"), rng.integers(0, 19, (1024, 2048), dtype=np.uint8))
    lines.append(f"img/{i}.png ann/{i}.png")
(root / "train_list.txt").write_text("\\n".join(lines) + "\\n")
name, r = recipes.load(sys.argv[1]).select("cityscapes")
task = Task(r, str(root), parallel.World(), RunOptions(command="train", model="model", task="segmentation", recipe=name))
train, _ = task.datasets()
for workers in (0, 1):
    loader = paddle.io.DataLoader(train, batch_size=2, shuffle=True, num_workers=workers, collate_fn=task.collate_fn())
    start, n = time.perf_counter(), 0
    for _ in range(2):
        for batch in loader:
            n += len(batch[0])
    print(json.dumps({"workers": workers, "images_per_s": round(n / (time.perf_counter() - start), 2)}))
"""


def run(m, model: str, args: list[str], python: list[str] | None = None) -> tuple[float, str]:
    venv = host_venv(m, chain.model_layer(m, model, "cpu", m.arch_registry.native()))
    recipe = cache.scratch() / f"bench-seg-{model}.json"
    recipe.write_bytes(kinds.recipe_json(m, model))
    home = cache.scratch() / "bench-seg-home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "entrypoints"), KUNLUN_MODEL=model, KUNLUN_RECIPE=str(recipe),
               HOME=str(home), KUNLUN_FLAVOUR="cpu")
    start = time.monotonic()
    result = subprocess.run([str(venv / "bin/python"), *(python or ["-m", "kunlun_train"]), *args], env=env,
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{model} {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - start, result.stdout


def summary(stdout: str, event: str = "summary") -> dict:
    return json.loads(next(line for line in stdout.splitlines() if line.startswith(f'{{"event": "{event}"')))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", choices=["deeplabv3", "unet"])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--size", type=int, default=128, help="training crop (Global.image_size)")
    p.add_argument("--learn-only", action="store_true", help="measure learning only; keep the other results")
    a = p.parse_args()
    m = matrix.load(ROOT / "matrix.yaml")
    work = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    real = sample.learnable(work / "real", train=16, val=8, size=2 * a.size)
    small = sample.learnable(work / "small", size=32)
    out = {"machine": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                       "load_average_at_start": os.getloadavg()[0]},
           "config": {"steps": a.steps, "rounds": a.rounds, "crop": a.size, "batch": 2,
                      "real_images": f"{2 * a.size}x{2 * a.size} PNG", "recipe": "cityscapes"}, "models": {}}
    common = ["--steps", str(a.steps), "--batch-size", "2", "-o", f"Global.image_size={a.size}"]
    if a.learn_only and RESULTS.exists():
        out = {**json.loads(RESULTS.read_text()), "learn": None}
    for model in [] if a.learn_only else a.model or ["deeplabv3", "unet"]:
        synthetic, dataset = [], []
        for _ in range(a.rounds):
            synthetic.append(summary(run(m, model, common)[1])["mean_step_seconds"])
            trained = run(m, model, ["--data", str(real), "--eval-every", "0", *common])[1]
            dataset.append(summary(trained)["mean_step_seconds"])
        weights = work / f"{model}-out"
        run(m, model, ["--data", str(real), "--output", str(weights), "--steps", "1", "--batch-size", "2",
                       "-o", f"Global.image_size={a.size}"])
        _, evaluated = run(m, model, ["eval", "--data", str(real), "--weights", str(weights / "ckpt-000001")])
        s, r = statistics.median(synthetic), statistics.median(dataset)
        out["models"][model] = {"synthetic_step_s": s, "real_step_s": r, "real_vs_synthetic": round(r / s, 3),
                                "runs": {"synthetic": synthetic, "real": dataset},
                                "eval_pass_s": summary(evaluated, "eval summary")["metric"]["seconds"],
                                "eval_images": f"8 of {2 * a.size}x{2 * a.size}"}
        print(json.dumps({model: out["models"][model]}), flush=True)
    if not a.learn_only:
        _, stdout = run(m, "deeplabv3", [str(cache.scratch() / "bench-seg-deeplabv3.json"), str(work / "pipeline")],
                        python=["-c", PIPELINE])
        out["pipeline"] = {"input": "2048x1024 PNG -> 1024x512 crops, cityscapes train transforms",
                           "runs": [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]}
        print(json.dumps({"pipeline": out["pipeline"]}), flush=True)
    learn = ["--data", str(small), "--recipe", "optic-disc", "-o", "Global.image_size=32"]
    _, stdout = run(m, "unet", [*learn, "--steps", "10", "--eval-every", "1"])
    curve = [(int(line.split()[3]), float(line.split()[6])) for line in stdout.splitlines() if " eval step " in line]
    first = next((step for step, miou in curve if miou >= THRESHOLD), None)
    shortest = {}
    for steps in range(first or 10, 11):   # a shorter run decays its learning rate sooner
        seconds, stdout = run(m, "unet", [*learn, "--steps", str(steps), "--eval-every", str(steps)])
        shortest = {"steps": steps, "wall_s": round(seconds, 1), "metric": summary(stdout)["metric"]}
        if shortest["metric"]["mIoU"] >= THRESHOLD:
            break
    out["learn"] = {"model": "unet", "config": "optic-disc recipe, 32 px, batch 4, 32 train / 16 val discs",
                    "miou_by_step_of_10": curve, "threshold": THRESHOLD, "crossed_at_step_of_10": first,
                    "shortest_run_to_threshold": shortest, "load_average_at_end": os.getloadavg()[0]}
    print(json.dumps({"learn": out["learn"]}), flush=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
