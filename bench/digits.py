"""The engine against a plain Paddle loop on a small real dataset: scikit-learn's handwritten digits
(898 training, 899 validation images, 10 classes, 32 px; tests/sample_data/digits.py), MobileNetV3
with the imagenet recipe at batch 64 (its rate 0.65 x 64/1024, 5 warm-up epochs, cosine, L2 2e-5,
label smoothing 0.1, flips; no crop: the digits fill the image). Published result for this split:
scikit-learn's SVC, 0.97.

Each engine is the image's entrypoint package at a git commit (`--at`, mounted over the image's own),
so the engine before and after a change runs in the same image; the plain loop is
tests/integration/reference/classification.py with the warm-up each engine used.

  python bench/digits.py --epochs 15 --at fdca041 --at HEAD      -> results/digits.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "entrypoints")]

from tests.sample_data.digits import PUBLISHED, TRAIN, digits  # noqa: E402

IMAGE = "kunlun/mobilenetv3"
RATE, BATCH = 0.65 * 64 / 1024, 64


def engine_args(epochs: int, seed: int) -> list[str]:
    return ["--data", "/data", "--epochs", str(epochs), "--batch-size", str(BATCH), "--eval-every", "1e",
            "-o", "Global.image_size=32", "-o", "Train.crop_scale=[1.0,1.0]", "-o", "Train.crop_ratio=[1.0,1.0]",
            "-o", "Eval.crop_ratio=1.0", "-o", "Arch.class_num=10", "-o", f"Global.seed={seed}"]


def run_engine(data: Path, commit: str, epochs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {ROOT} archive {commit} entrypoints | tar -x -C {tmp}", shell=True, check=True)
        subprocess.run(["chmod", "-R", "a+rX", tmp], check=True)
        started = time.monotonic()
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{data}:/data:ro",
                              "-v", f"{tmp}/entrypoints:/opt/kunlun/entrypoints:ro", IMAGE, *engine_args(epochs, seed)],
                             capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    schedule = next(line.split("schedule: ", 1)[1] for line in lines if "schedule: " in line)
    warmup = int(schedule.split("over ")[-1].split(" steps")[0]) if "warm-up" in schedule else 0
    per_epoch = int(next(line for line in lines if "training steps" in line).split(" epochs of ")[1].split()[0])
    top1 = [float(line.split("top1 ")[1].split()[0]) for line in lines if " eval step " in line]
    return {"commit": commit, "schedule": schedule, "steps_per_epoch": per_epoch, "warmup_steps": warmup,
            "top1": top1, "seconds": round(time.monotonic() - started, 1)}


def run_reference(data: Path, epochs: int, warmup_epochs: float, seed: int) -> dict:
    started = time.monotonic()
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{data}:/data:ro",
                          "-v", f"{ROOT / 'tests/integration/reference'}:/ref:ro", "--entrypoint",
                          "/opt/kunlun/venv/bin/python", IMAGE, "/ref/classification.py", "/data",
                          "MobileNetV3_large_x1_0", str(epochs), str(BATCH), str(RATE), str(warmup_epochs),
                          "0.00002", "0.1", str(seed)], capture_output=True, text=True, check=True).stdout
    top1 = [json.loads(line)["top1"] for line in out.splitlines() if line.startswith('{"epoch"')]
    return {"warmup_epochs": warmup_epochs, "top1": top1, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--at", action="append", default=[], help="engine commit(s) to run (default: HEAD)")
    p.add_argument("--out", default=str(ROOT / "bench/results/digits.json"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = digits(Path(tmp) / "digits")
        subprocess.run(["chmod", "-R", "a+rX", tmp], check=True)
        results = {"dataset": "scikit-learn digits, 898 train / 899 val, 32 px", "published": {"SVC": PUBLISHED},
                   "epochs": args.epochs, "seed": args.seed, "runs": []}
        for commit in args.at or ["HEAD"]:
            engine = run_engine(data, commit, args.epochs, args.seed)
            # the same warm-up in steps; the plain loop's epoch is TRAIN // BATCH whole batches
            reference = run_reference(data, args.epochs, engine["warmup_steps"] / (TRAIN // BATCH), args.seed)
            results["runs"].append({"engine": engine, "plain_loop": reference})
            print(json.dumps(results["runs"][-1]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
