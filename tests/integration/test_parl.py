"""The PARL suite's image, built and run for real: DQN (parl.algorithms.DQN) on gymnasium's
CartPole-v1, no dataset. One step = Global.env_steps environment steps + one learn step; the loss
is the TD loss, throughput in env steps/s. `--data` is an error (DQN needs no dataset); checkpoints
resume; two CPU workers train synchronous data-parallel DQN."""
from __future__ import annotations

import json
import math

import pytest

from .helpers import docker, image, invoke, training

pytestmark = pytest.mark.docker
MODEL = "dqn"
IMAGE = image(MODEL)
# Small and quick: 2 env steps and a minibatch of 8 per step, a 16-transition warm-up.
SHORT = ["-o", "Global.env_steps=2", "--batch-size", "8", "-o", "Replay.warmup_size=16"]


@pytest.fixture(scope="module")
def built(build):
    build(MODEL)


def finite(steps) -> bool:
    return bool(steps) and all(math.isfinite(loss) and abs(loss) < 1e6 for _, _, loss in steps)


def test_dqn_trains_two_steps_on_cartpole_without_network(built):
    result = docker("run", "--rm", "--network", "none", IMAGE, "--steps", "2")
    steps, summary = training(result.stdout)
    assert [(s, total) for s, total, _ in steps] == [(1, 2), (2, 2)] and finite(steps)
    assert summary["model"] == MODEL and summary["loss_finite"] and summary["unit"] == "env steps/s"
    assert summary["batch_size"] == 5 and summary["throughput"] > 0   # env steps per trainer step
    assert summary["data"].startswith("CartPole-v1 episodes (no dataset): 5 env steps + 1 learn step "
                                      "on 64 replayed transitions per step")
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr


def test_recipe_overrides_reach_the_trainer(built):
    result = docker("run", "--rm", "--network", "none", IMAGE, "--steps", "2", *SHORT)
    steps, summary = training(result.stdout)
    assert finite(steps) and summary["batch_size"] == 2
    assert "2 env steps + 1 learn step on 8 replayed transitions" in summary["data"]


def test_a_dataset_is_refused_because_dqn_needs_none(built, tmp_path):
    """The "dataset" check of this suite: any --data exits 2 before training, in one line."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train_list.txt").write_text("anything 0\n")
    result = invoke("run", MODEL, "--data", str(data), "--", "--steps", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "error: --data /data: DQN needs no dataset" in output and "Traceback" not in output
    assert " step 1/" not in output


def test_an_unknown_environment_is_a_one_line_error(built):
    result = docker("run", "--rm", "--network", "none", IMAGE, "--steps", "1", "-o", "Global.env=CartPole-v9",
                    check=False)
    assert result.returncode == 2
    assert "Global.env='CartPole-v9'" in result.stderr and "CartPole-v1" in result.stderr
    assert "Traceback" not in result.stderr


def test_saves_model_target_optimizer_and_replay_and_resumes_at_step_3(built, tmp_path):
    out = tmp_path / "out"
    first = invoke("run", MODEL, "--output", str(out), "--", "--steps", "2", *SHORT)
    steps, _ = training(first.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    ckpt = out / "ckpt-000002"
    assert {p.name for p in ckpt.iterdir()} == {"model.pdparams", "target.pdparams", "model.pdopt", "replay.bin",
                                                "agent.json", "state.json"}
    agent = json.loads((ckpt / "agent.json").read_text())
    assert agent["env"] == "CartPole-v1" and agent["learn_steps"] == 2 and agent["env_steps"] == 16 + 2 * 2

    resumed = invoke("run", MODEL, "--output", str(out), "--", "--steps", "3", "--resume", *SHORT)
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000002 (step 2)" in resumed.stdout
    assert [s for s, _, _ in steps] == [3] and summary["first_step"] == 3 and finite(steps)
    agent = json.loads((out / "ckpt-000003" / "agent.json").read_text())
    assert agent["learn_steps"] == 3 and agent["env_steps"] == 16 + 3 * 2   # counters carried over


def test_two_cpu_workers_train_data_parallel_dqn(built):
    """Each worker acts in its own CartPole with its own replay memory; gradients are averaged.
    Rank 0 logs; the summary counts both workers' env steps. With --network none, as `invoke run`
    starts it: the workers find each other over loopback."""
    result = docker("run", "--rm", "--network", "none", IMAGE, "--devices", "2", "--steps", "2", *SHORT)
    steps, summary = training(result.stdout)
    assert "launching 2 data-parallel worker" in result.stdout
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["workers"] == 2 and summary["loss_finite"] and summary["batch_size"] == 4
    assert summary["device"].endswith(", 2 workers")
