"""Multi-node benchmark (the multi-node issue), written to bench/results/multinode.json: one job of
2 ranks (`invoke run MODEL --nodes 2`, two containers on one Docker host) against 1 rank, with the
same per-rank work (batch 2, 1 thread each), in one run:

  throughput   images/s of the whole job, 2 ranks vs 1 (ideal: 2x on 2 free cores)
  overhead     per step, 2-rank step time minus 1-rank step time: the gradient all-reduce over gloo
               plus whatever the two ranks cost each other on a shared 2-core machine

Run from the repository root: `.venv/bin/python bench/multinode.py [--model resnet50] [--steps 6]`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/multinode.json"
SUMMARY = re.compile(r'^(?:\[rank (\d)\] )?(\{"event": "(?:rank )?summary".*)$')


def run(args: list[str]) -> dict[int, dict]:
    out = subprocess.run([sys.executable, "-m", "invoke", "run", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"invoke run {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    found = {}
    for line in out.stdout.splitlines():
        match = SUMMARY.match(line)
        if match:
            found[int(match[1] or 0)] = json.loads(match[2])
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet50")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--size", type=int, default=128, help="input size (Global.image_size)")
    a = p.parse_args()
    common = ["--", "--steps", str(a.steps), "--batch-size", "2", "--threads", "1", "-o", f"Global.image_size={a.size}"]
    one = run([a.model, *common])[0]
    two = run([a.model, "--nodes", "2", *common])
    job = two[0]
    result = {"machine": {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")},
              "model": a.model, "image_size": a.size, "steps": a.steps, "per_rank_batch": 2, "threads_per_rank": 1,
              "one_rank": {"step_s": one["mean_step_seconds"], "throughput": one["throughput"]},
              "two_ranks": {"step_s": job["mean_step_seconds"], "throughput": job["throughput"],
                            "per_rank_step_s": {r: s["mean_step_seconds"] for r, s in sorted(two.items())}},
              "unit": one["unit"]}
    result["speedup"] = round(job["throughput"] / one["throughput"], 3)
    result["overhead_per_step_s"] = round(job["mean_step_seconds"] - one["mean_step_seconds"], 3)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
