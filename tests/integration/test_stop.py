"""Preemption: `docker stop` (Kubernetes does the same) sends SIGTERM and waits 10 s before SIGKILL.
A training container finishes the step in progress, writes a checkpoint and exits 143 within that
grace, with one worker, with two (`--devices 2`) and in a 2-node job; `--resume` then continues at the
next step, so no completed step is lost. Also: `docker run --read-only` works with no extra flags."""
from __future__ import annotations

import re
import time

import pytest

from .helpers import docker, image, invoke, start_job, training

MODEL = "mobilenetv3"
SMALL = ["-o", "Global.image_size=32"]
STEP = re.compile(r"\] step (\d+)/(\d+)")
STOPPED = re.compile(r"stopped by SIGTERM after step (\d+)")
GRACE = 10      # docker stop's default
REQUESTED = 20


@pytest.fixture(scope="module")
def built(build):
    build(MODEL)


def logged_steps(text: str) -> list[int]:
    return [int(m.group(1)) for m in STEP.finditer(text)]


def wait_for_step(name: str, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not any(s >= step for s in logged_steps(docker("logs", name, check=False).stdout)):
        assert time.monotonic() < deadline, docker("logs", name, check=False).stdout
        time.sleep(0.3)


@pytest.mark.parametrize("devices", [1, 2])
def test_docker_stop_checkpoints_the_last_step_and_resume_loses_none(built, devices, tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    name = f"kunlun-test-stop-{devices}"
    docker("rm", "-f", name, check=False)
    extra = ["--devices", str(devices)] if devices > 1 else []
    docker("run", "-d", "--name", name, "--network", "none", "-v", f"{out}:/output", image(MODEL),
           "--steps", str(REQUESTED), "--output", "/output", *SMALL, *extra)
    try:
        wait_for_step(name, 3)
        started = time.monotonic()
        docker("stop", name)
        seconds = time.monotonic() - started
        state = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name).stdout
    finally:
        docker("rm", "-f", name, check=False)
    assert state == "143", logs                               # SIGTERM handled, not SIGKILLed (137)
    assert seconds < GRACE
    # The step the run says it stopped after; with two workers the launcher's echo of the step lines
    # lags the workers by a step or two, so that line (read from rank 0's log) is the reference.
    stopped = STOPPED.search(logs)
    assert stopped, logs
    last = int(stopped.group(1))
    assert last >= max(logged_steps(logs))
    print(f"\n{devices} worker(s): stopped after step {last} in {seconds:.1f} s")
    assert sorted(p.name for p in out.glob("ckpt-*")) == [f"ckpt-{last:06d}"]
    resumed = invoke("run", MODEL, "--output", str(out), "--", "--steps", str(REQUESTED), "--resume", *SMALL, *extra)
    steps, _ = training(resumed.stdout)
    assert [s for s, _, _ in steps] == list(range(last + 1, REQUESTED + 1))   # together: every step asked for, once


def test_a_stopped_rank_of_a_two_node_job_stops_both_at_the_same_step(built, tmp_path):
    out = tmp_path / "out"
    proc, job, seen = start_job("run", MODEL, "--nodes", "2", "--output", str(out), "--", "--steps", "40", *SMALL,
                                until="] step 2/40")
    docker("kill", "--signal", "TERM", f"{job}-1")
    output = "".join(seen) + proc.stdout.read()
    proc.wait(timeout=120)
    stops = STOPPED.findall(output)
    assert stops and len(set(stops)) == 1, output             # rank 0 learned of it in the step's all-reduce
    last = int(stops[0])
    assert (out / f"ckpt-{last:06d}" / "state.json").is_file()
    again = invoke("run", MODEL, "--nodes", "2", "--output", str(out), "--", "--steps", str(last + 1), "--resume", *SMALL)
    assert f"resumed from /output/ckpt-{last:06d} (step {last})" in again.stdout


def test_a_read_only_root_filesystem_needs_no_extra_flags(built):
    result = docker("run", "--rm", "--network", "none", "--read-only", image(MODEL), "--steps", "1", *SMALL)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == [1] and summary["loss_finite"]
    assert "read-only root filesystem: temporary files and caches go to /dev/shm/kunlun" in result.stdout
