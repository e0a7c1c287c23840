"""The PARL suite's image, built and run for real: DQN (parl.algorithms.DQN) on the training engine, PARL's
examples/DQN recipe (train on CartPole-v0, evaluate greedy episodes of CartPole-v1), no dataset. One
step = Global.env_steps environment steps + one agent.learn; the loss is the TD loss, throughput in env
steps/s, the metric the mean return of the evaluation episodes. `--data` is an error; checkpoints
resume with the replay memory; two CPU workers train synchronous data-parallel DQN. Then the proof: it
learns from an untrained policy's return to >= 150 within a bounded number of environment steps, and the
exported Q network picks, through Paddle Inference, the actions the evaluation took; served, its predict
route answers an observation with predict's action and Q values."""
from __future__ import annotations

import json
import math
import time

import pytest

from .helpers import docker, evaluations, image, invoke, post, serving, training

MODEL = "dqn"
IMAGE = image(MODEL)
# Small and quick: 2 env steps and a minibatch of 8 per step, a 16-transition warm-up.
SHORT = ["-o", "Global.env_steps=2", "--batch-size", "8", "-o", "Replay.warmup_size=16"]


@pytest.fixture(scope="module")
def built(build):
    build(MODEL)


def finite(steps) -> bool:
    return bool(steps) and all(math.isfinite(loss) and abs(loss) < 1e6 for _, _, loss in steps)


def test_the_default_run_is_a_ten_step_smoke_with_one_evaluation(built):
    result = docker("run", "--rm", "--network", "none", IMAGE)
    steps, summary = training(result.stdout)
    assert [s for s, _, _ in steps] == list(range(1, 11)) and finite(steps)
    assert summary["model"] == MODEL and summary["loss_finite"] and summary["unit"] == "env steps/s"
    assert summary["batch_size"] == 64 and summary["throughput"] > 0      # replayed transitions per learn step
    assert summary["data"].startswith("CartPole-v0 episodes (no dataset): 5 env steps + 1 learn step on 64 "
                                      "replayed transitions per step; evaluation: 5 greedy episodes of CartPole-v1 "
                                      "every 50 training episodes")
    assert [s for s, _ in evaluations(result.stdout)] == [10] and summary["metric"]["return"] < 30
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr


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


def test_two_cpu_workers_train_data_parallel_dqn(built):
    """Each worker acts in its own CartPole with its own replay memory; gradients are averaged. Rank 0
    logs; the evaluation episodes are shared out and the metric printed once. With --network none, as
    `invoke run` starts it: the workers find each other over loopback."""
    result = docker("run", "--rm", "--network", "none", IMAGE, "--devices", "2", "--steps", "2", *SHORT)
    steps, summary = training(result.stdout)
    assert "launching 2 data-parallel worker" in result.stdout
    assert [s for s, _, _ in steps] == [1, 2] and finite(steps)
    assert summary["workers"] == 2 and summary["loss_finite"] and summary["batch_size"] == 16   # 8 per worker
    assert "2 env steps + 1 learn step on 8 replayed transitions" in summary["data"]          # the overrides
    assert summary["device"].endswith(", 2 workers")
    assert [s for s, _ in evaluations(result.stdout)] == [2]


# --- the engine: DQN learns, resumes, evaluates, exports and predicts ---------------------------
# PARL's recipe as it is (no test overrides: it learns fast enough), bounded at 3000 learn steps =
# 15,000 environment steps after the 200-transition warm-up, in two runs (the second resumes the first
# at step 1500, replay memory included), with an extra evaluation every 250 steps besides the recipe's
# every 50 training episodes. An untrained greedy policy pushes the cart one way and scores about 9-10
# (a uniformly random one about 22); CartPole-v1 caps an episode at 500.
BOUND, HALF = 3000, 1500
LEARN = ["--eval-every", "250"]
THRESHOLD = 150


@pytest.fixture(scope="module")
def learned(built, tmp_path_factory):
    """DQN trained on CartPole in two runs, its best checkpoint exported for Paddle Inference."""
    out = tmp_path_factory.mktemp("learned") / "out"   # created by `invoke run`, for the container's user
    started = time.monotonic()
    first = invoke("run", MODEL, "--output", str(out), "--", "--steps", str(HALF), *LEARN)
    second = invoke("run", MODEL, "--output", str(out), "--", "--steps", str(BOUND), "--resume", *LEARN)
    print(f"\ntrained {BOUND} learn steps in {time.monotonic() - started:.1f} s (two container runs)")
    invoke("run", MODEL, "--output", str(out), "--", "export")
    return out, first.stdout, second.stdout


def test_dqn_learns_from_an_untrained_policy_to_a_mean_return_over_150(learned):
    out, first, second = learned
    steps = training(first)[0] + training(second)[0]
    summary = training(second)[1]
    assert [s for s, _, _ in steps] == list(range(1, BOUND + 1)) and finite(steps)
    returns = [(s, m["return"]) for s, m in evaluations(first) + evaluations(second)]
    reached = next(s for s, r in returns if r >= THRESHOLD)
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(5 / e["throughput"] for e in events if e["event"] == "train" and e["step"] <= reached) + \
        sum(e["seconds"] for e in events if e["event"] == "eval" and e["step"] <= reached)
    print(f"\nmean evaluation return by learn step (x5 env steps): {returns}\n>= {THRESHOLD} at learn step {reached} "
          f"({5 * reached} env steps after the warm-up), {seconds:.1f} s of training and evaluation")
    assert returns[0][1] < 30                                             # the untrained policy
    assert summary["best"]["metric"] == "return" and summary["best"]["value"] >= THRESHOLD
    assert {250 * k for k in range(1, BOUND // 250 + 1)} <= {s for s, _ in returns}   # --eval-every 250
    assert len(returns) > BOUND // 250                                    # and the 50-episode clock
    assert sorted(p.name for p in out.iterdir()) == ["best", "ckpt-001500", "ckpt-003000", "inference",
                                                      "metrics.jsonl", "vdl"]
    assert [e["step"] for e in events if e["event"] == "train"] == list(range(1, BOUND + 1))
    assert {e["lr"] for e in events if e["event"] == "train"} == {0.0005}   # the recipe's constant rate


def test_a_checkpoint_holds_target_optimizer_and_replay_memory_and_resumes_with_them(learned):
    out, _, second = learned
    ckpt = out / f"ckpt-{HALF:06d}"
    assert {p.name for p in ckpt.iterdir()} == {"model.pdparams", "model.pdopt", "target.pdparams", "replay.npz",
                                                "agent.json", "state.json"}
    assert {p.name for p in (out / "best").iterdir()} == {"model.pdparams", "state.json"}   # weights only
    before = json.loads((ckpt / "agent.json").read_text())
    assert before["env"] == "CartPole-v0" and before["learn_steps"] == HALF
    assert before["replay_size"] == before["env_steps"] >= 200 + 5 * HALF   # the warm-up runs whole episodes
    assert f"resumed from /output/ckpt-{HALF:06d} (step {HALF})" in second
    assert training(second)[1]["first_step"] == HALF + 1
    after = json.loads((out / f"ckpt-{BOUND:06d}" / "agent.json").read_text())
    assert after["learn_steps"] == BOUND and after["env_steps"] == before["env_steps"] + 5 * (BOUND - HALF)
    assert after["replay_size"] == before["replay_size"] + 5 * (BOUND - HALF)   # the memory came back, no new warm-up
    assert after["episodes"] > before["episodes"] and after["epsilon"] < before["epsilon"]


def test_eval_and_the_exported_q_network_pick_the_same_actions(learned):
    """`eval` replays the best checkpoint's greedy episodes (the same seeds as in training: the same
    mean return) and records every step; `predict` with the exported model through Paddle Inference,
    on every observation of those episodes, picks the actions the evaluation took, with the same Q values."""
    out, _, _ = learned
    evaluated = invoke("run", MODEL, "--output", str(out), "--", "eval", "--predictions", "/output/eval.jsonl")
    episodes = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    best = json.loads((out / "best" / "state.json").read_text())["best"]
    [(_, metric)] = evaluations(evaluated.stdout)
    assert metric["return"] == pytest.approx(best["value"]) and metric["return"] >= THRESHOLD
    assert [e["input"] for e in episodes] == [f"episode-{i:04d}" for i in range(5)]
    assert sum(e["return"] for e in episodes) / 5 == pytest.approx(metric["return"])
    rows = [(obs, action, q) for e in episodes for obs, action, q in zip(e["observations"], e["actions"], e["q_values"])]
    (out / "obs.jsonl").write_text("".join(json.dumps(obs) + "\n" for obs, _, _ in rows))
    (out / "actions.txt").write_text("0 left\n1 right\n")
    invoke("run", MODEL, "--output", str(out), "--", "predict", "--input", "/output/obs.jsonl",
           "--labels", "/output/actions.txt", "--save", "/output/predict.jsonl")
    predicted = [json.loads(line) for line in (out / "predict.jsonl").read_text().splitlines()]
    assert [p["input"] for p in predicted] == [f"/output/obs.jsonl:{n}" for n in range(1, len(rows) + 1)]
    assert [p["action"] for p in predicted] == [action for _, action, _ in rows]
    assert all(p["q_values"] == pytest.approx(q, abs=1e-4) for p, (_, _, q) in zip(predicted, rows))
    assert {p["action_name"] for p in predicted} == {"left", "right"}


def test_the_predict_route_answers_an_observation_with_what_predict_saves(learned):
    """`serve` of the exported Q network: an observation as JSON {"observation": [...]}, as a bare
    JSON array (a .jsonl line) or as a .csv line gets predict's action and Q values; an observation
    of the wrong size is a 400 naming it, and the next request is served."""
    out, _, _ = learned
    observations = [[0.01 * i, -0.02 * i, 0.03 * (i % 3), 0.5 - 0.1 * i] for i in range(6)]
    (out / "obs-served.jsonl").write_text("".join(json.dumps(obs) + "\n" for obs in observations))
    invoke("run", MODEL, "--output", str(out), "--", "predict", "--input", "/output/obs-served.jsonl",
           "--threads", "1", "--save", "/output/predict-served.jsonl")
    by_predict = [json.loads(line) for line in (out / "predict-served.jsonl").read_text().splitlines()]
    assert len(by_predict) == len(observations)
    with serving(IMAGE, out) as (url, _):
        route = f"{url}/v2/models/{MODEL}/predict"
        for obs, expected in zip(observations, by_predict):
            wanted = {k: v for k, v in expected.items() if k != "input"}
            for body, content_type in ((json.dumps({"observation": obs}), "application/json"),
                                       (json.dumps(obs), "application/json"),
                                       (",".join(repr(v) for v in obs), "text/csv")):
                status, answer = post(route, body.encode(), content_type)
                assert status == 200, answer
                assert answer == wanted
        status, answer = post(route, b'{"observation": [0.1, 0.2]}', "application/json")
        assert status == 400 and "the request body: \"observation\": 2 values, but the model takes " \
            "observations of 4" in answer["error"]
        assert post(route, json.dumps({"observation": observations[0]}).encode(), "application/json")[0] == 200
