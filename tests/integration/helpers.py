"""What every image test uses: the bundle's tasks and docker as subprocesses (a multi-node job in the
background: start_job; a training run that exports: learn), and the parser for the step lines and JSON
summary every model prints in the same format, and a served export (serving) with its client (post)."""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

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


# No single `invoke` of the tests takes 10 minutes on a 2-core machine; one past this has hung (a deadlock
# under emulation, say): it fails with what it printed instead of using up CI's time silently.
INVOKE_TIMEOUT = 1500


def invoke(*args, env=None, check=True, timeout: float = INVOKE_TIMEOUT):
    proc = subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()                  # SIGTERM: `run` stops its containers, as on Ctrl-C
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"invoke {' '.join(args)} still running after {timeout:.0f} s, stopped:\n{stdout}\n{stderr}")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        pytest.fail(f"invoke {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def start_job(*args: str, until: str, timeout: float = 300) -> tuple[subprocess.Popen, str, list[str]]:
    """`invoke ARGS` (a multi-node `run`) in the background, its output read until the job has said
    its name and a line containing `until` (e.g. a step) has appeared: (the process, the job, the lines read)."""
    proc = subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen, job = [], None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if job is None and line.startswith("job "):
            job = line.split()[1].rstrip(":")
        if job and until in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    return proc, job, seen


def learn(model: str, data: Path, tmp_path_factory, args: list[str]) -> tuple[Path, Path, str]:
    """`invoke run MODEL` on `data` with `args`, exported for Paddle Inference at the end: (data, out, output).
    `out` is a subdirectory: pytest's own are private to root, `invoke run` creates it for the container's user."""
    out = tmp_path_factory.mktemp("learned") / "out"
    result = invoke("run", model, "--data", str(data), "--output", str(out), "--", *args, "--export", "/output/inference")
    return data, out, result.stdout


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


def package(model: str, export: Path, arch: str | None = None) -> str:
    """`invoke package MODEL --export DIR`: the serving image's tag (what the task prints to run)."""
    result = invoke("package", model, "--export", str(export), *(["--arch", arch] if arch else []))
    assert "0 failed, 0 skipped" in result.stderr, result.stderr
    [tag] = re.findall(r"docker run --rm -p 8000:8000 (\S+)", result.stderr)
    return tag


def distributions(image_tag: str) -> set[str]:
    """The Python distributions an image holds (canonical names), as importlib.metadata lists them."""
    listed = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image_tag, "-c",
                    "import importlib.metadata as m; print(*{d.metadata['Name'] for d in m.distributions()})").stdout
    return {canonicalize_name(name) for name in listed.split()}


@contextlib.contextmanager
def serving(image_tag: str, out_dir: Path | None, *args: str, timeout: float = 180):
    """`serve` of the export in out_dir/inference by the image (read-only root, non-root, OUT mounted
    read-only at /output; out_dir None: a serving image's own model), on a loopback port of this host,
    once ready: yields (url, port). Stopped
    with SIGTERM at the end, and it must then have exited 0. One math thread: compare with `predict
    --threads 1`, since another thread count changes the last digits (Mask R-CNN's scores in the 5th
    decimal, measured), not the code path."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = f"kunlun-serve-test-{port}"
    mounts = ["-v", f"{out_dir}:/output:ro"] if out_dir is not None else []
    if "--max-batch-size" not in args:   # the server warms every batch size up to it before ready: 2 here, not 8
        args = ("--max-batch-size", "2", *args)
    docker("run", "-d", "--name", name, "--read-only", "-p", f"127.0.0.1:{port}:8000", *mounts,
           image_tag, "serve", "--threads", "1", *args)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or docker("inspect", "--format", "{{.State.Running}}", name,
                                                     check=False).stdout.strip() == "false":
                logs = docker("logs", name, check=False)
                pytest.fail(f"serve did not become ready:\n{logs.stdout}\n{logs.stderr}")
            time.sleep(1)
        yield url, port
    finally:
        docker("stop", "--time", "30", name, check=False)
        logs = docker("logs", name, check=False)
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", name, check=False).stdout.strip()
        docker("rm", name, check=False)
    assert exit_code == "0", logs.stdout + logs.stderr


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    """POST body: (status, the JSON answer), error statuses included."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
