"""`docker stop` on a training container: seconds from the stop to the container's exit, its exit
code, and steps lost (steps logged but not in the checkpoint; target 0), for one worker and for two
(`--devices 2`). Writes results/stop.json; README.md has the write-up.

Run from the repository root with the image built: `.venv/bin/python bench/stop.py [--model mobilenetv3]`."""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from kunlun_bundle import matrix, naming  # noqa: E402

RESULTS = ROOT / "bench/results/stop.json"
STEP = re.compile(r"^\[[^\]]+\] step (\d+)/")


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def one(image: str, devices: int, stop_after: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        out.chmod(0o777)
        args = ["--steps", "500", "--output", "/output", "-o", "Global.image_size=64"]
        args += ["--devices", str(devices)] if devices > 1 else []
        name = f"kunlun-stop-bench-{devices}"
        docker("rm", "-f", name)
        started = docker("run", "-d", "--name", name, "--network", "none", "-v", f"{out}:/output", image, *args)
        if started.returncode:
            raise SystemExit(started.stderr)
        while True:   # wait until stop_after steps were logged
            logs = docker("logs", name).stdout
            steps = [int(m.group(1)) for line in logs.splitlines() if (m := STEP.match(line))]
            if steps and max(steps) >= stop_after:
                break
            time.sleep(0.2)
        t0 = time.monotonic()
        docker("stop", name)                 # SIGTERM, then SIGKILL after Docker's default 10 s
        seconds = time.monotonic() - t0
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip())
        logs = docker("logs", name).stdout
        docker("rm", "-f", name)
        logged = max(int(m.group(1)) for line in logs.splitlines() if (m := STEP.match(line)))
        saved = sorted(int(p.name.split("-")[1]) for p in out.glob("ckpt-*"))
        return {"devices": devices, "stop_to_exit_s": round(seconds, 2), "exit_code": code,
                "last_step_logged": logged, "checkpoint_step": saved[-1] if saved else None,
                "steps_lost": max(0, logged - (saved[-1] if saved else 0))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mobilenetv3")
    p.add_argument("--after", type=int, default=5, help="stop once this many steps were logged")
    a = p.parse_args()
    image = naming.model_latest(matrix.load(ROOT / "matrix.yaml"), a.model)
    results = {"when": time.strftime("%Y-%m-%d %H:%M"), "model": a.model, "image_size": 64,
               "runs": [one(image, 1, a.after), one(image, 2, a.after)]}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
