"""What every image test uses: the bundle's tasks and docker as subprocesses, and the parser for
the step lines and JSON summary every model prints in the same format."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEP = re.compile(r"^\[(?P<model>[a-z0-9._-]+)\] step (?P<step>\d+)/(?P<total>\d+) \| loss (?P<loss>\S+) \| "
                  r"(?P<rate>\S+) (?P<unit>[a-z /]+/s) \| (?P<seconds>\S+) s/step \| (?P<device>.+)$")


def invoke(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        pytest.fail(f"invoke {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def docker(*args, check=True):
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def training(output: str) -> tuple[list[tuple[int, int, float]], dict]:
    """(step, total, loss) of every step line, and the JSON summary."""
    steps, summary = [], None
    for line in output.splitlines():
        match = STEP.match(line)
        if match:
            steps.append((int(match["step"]), int(match["total"]), float(match["loss"])))
        elif line.startswith('{"event": "summary"'):
            summary = json.loads(line)
    assert summary is not None, f"no summary line in:\n{output}"
    return steps, summary
