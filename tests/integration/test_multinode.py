"""Multi-node training on one Docker host (`invoke run MODEL --nodes 2`): two containers on a private
network form one 2-rank job through Paddle's launcher (gloo on CPU). The ranks must agree, a dead
rank must end the job with a clear error, and nothing may be left running afterwards."""
from __future__ import annotations

import json
import re

import pytest

from .helpers import docker, invoke, start_job

RANKED = re.compile(r"^\[rank (\d)\] \[([a-z0-9.-]+)(?: rank (\d))?\] step (\d+)/(\d+)(?: \| epoch \d+)? \| loss (\S+) \|")
SMALL = {"resnet50": ["-o", "Global.image_size=64"], "mobilenetv3": ["-o", "Global.image_size=64"],
         "yolov3-mobilenetv1": ["-o", "Global.image_size=64"]}


@pytest.fixture(scope="module")
def built(build):
    build("resnet50", "mobilenetv3", "yolov3-mobilenetv1")


def steps_by_rank(output: str) -> dict[int, list[tuple[int, float]]]:
    """{container rank: [(step, loss)]} from the prefixed output of every node."""
    found: dict[int, list[tuple[int, float]]] = {}
    for line in output.splitlines():
        match = RANKED.match(line)
        if match:
            found.setdefault(int(match[1]), []).append((int(match[4]), float(match[6])))
    return found


def leftovers(job_prefix: str) -> list[str]:
    names = docker("ps", "-a", "--filter", "label=io.kunlun.job", "--format", "{{.Names}}").stdout.split()
    networks = docker("network", "ls", "--filter", "label=io.kunlun.job", "--format", "{{.Name}}").stdout.split()
    return [n for n in names + networks if n.startswith(job_prefix)]


@pytest.mark.parametrize("model", ["resnet50", "yolov3-mobilenetv1"])   # a classification and a detection model
def test_two_nodes_train_as_one_job(built, model, tmp_path):
    out = tmp_path / "out"
    result = invoke("run", model, "--nodes", "2", "--output", str(out), "--", "--steps", "2", *SMALL[model])
    ranks = steps_by_rank(result.stdout)
    assert sorted(ranks) == [0, 1], result.stdout
    assert [s for s, _ in ranks[0]] == [s for s, _ in ranks[1]] == [1, 2]       # the same steps
    assert [loss for _, loss in ranks[0]] == [loss for _, loss in ranks[1]]     # the same (averaged) loss
    assert all(loss == loss and abs(loss) < 1e6 for _, loss in ranks[0])
    summary = json.loads(next(line.split("] ", 1)[1] for line in result.stdout.splitlines()
                              if line.startswith('[rank 0] {"event": "summary"')))
    assert summary["workers"] == 2 and summary["batch_size"] == 4
    assert (out / "ckpt-000002" / "state.json").is_file()
    assert json.loads((out / "ckpt-000002" / "state.json").read_text())["workers"] == 2
    assert leftovers(f"kunlun-{model}-") == []

    # The whole job restarted: both ranks resume from the shared output and go on at step 3.
    again = invoke("run", model, "--nodes", "2", "--output", str(out), "--", "--steps", "3", "--resume", *SMALL[model])
    ranks = steps_by_rank(again.stdout)
    assert [s for s, _ in ranks[0]] == [s for s, _ in ranks[1]] == [3]


def test_a_killed_rank_ends_the_job_and_leaves_nothing_running(built):
    proc, job, seen = start_job("run", "mobilenetv3", "--nodes", "2", "--", "--steps", "500", *SMALL["mobilenetv3"],
                                until="] step 1/500")
    docker("kill", f"{job}-1")
    rest = proc.stdout.read()
    code = proc.wait(timeout=120)
    output = "".join(seen) + rest
    assert code == 137, output
    assert f"rank 1 ({job}-1) exited with code 137; stopping the other 1 rank(s) of {job}" in output
    assert "Traceback" not in rest.split("exited with code 137")[-1]
    assert leftovers(job) == []
