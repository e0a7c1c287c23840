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

from kunlun_bundle import host, matrix, naming

ROOT = Path(__file__).resolve().parents[2]
MATRIX = matrix.load(ROOT / "matrix.yaml")
# Where test_publish.py tags the images it publishes (a matrix copy of its own).
PUBLISH_NAMESPACE = f"{MATRIX.namespace}pubtest"
# [resnet50] step 3/10 | epoch 1 | loss 6.912345 | lr 0.1 | 4.05 images/s | 0.494 s/step | cpu x2
# (epoch and lr optional: StepLog prints them only when given, as every task on the engine does)
STEP = re.compile(r"^\[(?P<model>[a-z0-9._-]+)\] step (?P<step>\d+)/(?P<total>\d+)(?: \| epoch (?P<epoch>\d+))? "
                  r"\| loss (?P<loss>\S+)(?: \| lr (?P<lr>\S+))? \| "
                  r"(?P<rate>\S+) (?P<unit>[a-z /]+/s) \| (?P<seconds>\S+) s/step \| (?P<device>.+)$")
EVAL = re.compile(r"^\[(?P<model>[a-z0-9._-]+)\] eval step (?P<step>\d+) \| (?P<metrics>.+) \| (?P<count>\d+) \S+ \| \S+ s$")


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


def evaluations(output: str) -> list[tuple[int, dict[str, float]]]:
    """(step, {metric: value}) of every eval line: `[model] eval step 20 | top1 0.7500 | top5 1.0000 | 32 images | 0.9 s`."""
    found = []
    for line in output.splitlines():
        match = EVAL.match(line)
        if match:
            pairs = [part.split() for part in match["metrics"].split(" | ")]
            found.append((int(match["step"]), {k: float(v) for k, v in pairs}))
    return found


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


def image(model: str, arch: str | None = None) -> str:
    """A model image's local tag: `latest` (the host arch), or the arch's own tag."""
    if arch is None:
        return naming.model_latest(MATRIX, model)
    return naming.model_image(MATRIX, model, naming.default_flavour(MATRIX), arch)


def require_emulation(arch_name: str) -> None:
    """Skip (or, under KUNLUN_TEST_REQUIRE_ALL, fail) when this host cannot run `arch_name` binaries."""
    arch, native = MATRIX.arch_registry[arch_name], MATRIX.arch_registry.native()
    ok, why = host.binfmt_status(arch, native)
    if ok:
        return
    message = (f"this {native.name} host cannot run {arch.name} binaries ({why}); enable emulation with "
               f"`{host.binfmt_fix(arch)}` (or run .ci/run), see `./kunlun doctor`")
    if os.environ.get("KUNLUN_TEST_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)
