"""DQN's Paddle-free parts, on the host: exploration and the episode clock
(kunlun_train/tasks/reinforcement/spec.py), the observation files `predict` reads
(datasets/observations.py), the task's registry entry and engine hooks, and the dqn model's recipe as the entrypoint reads it. No Paddle, PARL or numpy here: the
adapter itself runs in the image (tests/integration/test_parl.py)."""
import json
import random
from pathlib import Path

import pytest

from kunlun_bundle.images import kinds
from kunlun_train import cli
from kunlun_train.datasets import observations
from kunlun_train.errors import TrainError
from kunlun_train.tasks.reinforcement.spec import EpisodeClock, EpsilonGreedy, no_dataset, positive
from kunlun_train.tasks import TASKS, Task, spec as task


# --- exploration: PARL's CartpoleAgent.sample ------------------------------------------------

def test_epsilon_decays_per_action_down_to_its_floor():
    eps = EpsilonGreedy(0.1, 0.04, 0.01)
    rng = random.Random(0)
    values = []
    for _ in range(4):
        eps.explore(rng)
        values.append(eps.value)
    assert values == pytest.approx([0.06, 0.02, 0.01, 0.01])


def test_epsilon_one_always_explores_and_zero_never_does():
    rng = random.Random(3)
    assert all(EpsilonGreedy(1.0, 0.0, 0.0).explore(rng) for _ in range(100))
    assert not any(EpsilonGreedy(0.0, 0.0, 0.0).explore(rng) for _ in range(100))


def test_the_greedy_branch_is_itself_random_with_the_noise_probability():
    """PARL's agent: random with p e_greed; otherwise random with p 0.01, else greedy."""
    rng = random.Random(5)
    assert all(EpsilonGreedy(0.0, 0.0, 0.0, noise=1.0).explore(rng) for _ in range(100))
    draws = [EpsilonGreedy(0.1, 0.0, 0.1, noise=0.01).explore(rng) for _ in range(20000)]
    assert 0.10 < sum(draws) / len(draws) < 0.118            # 0.1 + 0.9 * 0.01 = 0.109


def test_bad_exploration_settings_name_the_keys():
    with pytest.raises(TrainError, match="Algorithm.e_greed=1.5"):
        EpsilonGreedy(1.5, 0.0, 0.01)
    with pytest.raises(TrainError, match="e_greed_noise=-0.1"):
        EpsilonGreedy(0.1, 0.0, 0.01, noise=-0.1)


# --- the episode clock: evaluate after every N training episodes --------------------------

def test_the_clock_fires_once_per_interval_of_finished_episodes():
    clock = EpisodeClock(50)
    fired = [episodes for episodes in [0, 10, 49, 50, 50, 51, 99, 100, 180, 199, 200] if clock.due(episodes)]
    assert fired == [50, 100, 180, 200]      # 180 stands for 150 (crossed between two steps); next at 200


def test_a_clock_of_interval_zero_never_fires():
    clock = EpisodeClock(0)
    assert not any(clock.due(n) for n in range(0, 500, 7))


def test_a_resumed_clock_goes_on_from_where_it_was():
    clock = EpisodeClock(50, next_at=150)
    assert not clock.due(120) and clock.due(150) and clock.next_at == 200


# --- no dataset, integer settings --------------------------------------------------------

def test_a_dataset_is_an_error_saying_dqn_needs_none():
    no_dataset(None)
    with pytest.raises(TrainError, match=r"--data /data: DQN needs no dataset"):
        no_dataset("/data")


@pytest.mark.parametrize("value", [0, -3, 2.5, "5", True, None])
def test_integer_settings_must_be_positive_integers(value):
    with pytest.raises(TrainError, match=r"Global.env_steps=.*expected an integer >= 1"):
        positive({"Global": {"env_steps": value}}, "Global", "env_steps")


# --- observation files for predict -------------------------------------------------------

def write(tmp_path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_json_lines_hold_an_array_or_an_object_with_obs_per_line(tmp_path):
    path = write(tmp_path, "obs.jsonl", '[0.1, -0.2, 0.3, 0.4]\n\n# a comment\n{"obs": [1, 2, 3, 4], "t": 7}\n')
    assert observations.read(path, 4) == [(1, [0.1, -0.2, 0.3, 0.4]), (4, [1.0, 2.0, 3.0, 4.0])]


def test_csv_rows_are_comma_separated_and_a_header_is_skipped(tmp_path):
    path = write(tmp_path, "obs.csv", "x,v,theta,omega\n0.1,-0.2,0.3,0.4\n1, 2, 3, 4\n")
    assert observations.read(path, 4) == [(2, [0.1, -0.2, 0.3, 0.4]), (3, [1.0, 2.0, 3.0, 4.0])]


@pytest.mark.parametrize("name, text, message", [
    ("obs.jsonl", "[0.1, 0.2, 0.3, 0.4]\n[0.1, 0.2, 0.3]\n", r"obs.jsonl:2: 3 values, but the model takes observations of 4"),
    ("obs.jsonl", "[0.1, 0.2, 0.3, 0.4\n", r"obs.jsonl:1: not JSON"),
    ("obs.jsonl", '["a", 0.2, 0.3, 0.4]\n', r"obs.jsonl:1: expected a list of numbers"),
    ("obs.jsonl", '{"state": [1, 2, 3, 4]}\n', r"obs.jsonl:1: an object needs the observation under \"obs\""),
    ("obs.jsonl", "[NaN, 0.2, 0.3, 0.4]\n", r"obs.jsonl:1: not a finite number"),
    ("obs.csv", "0.1,0.2,0.3,0.4\n0.1,x,0.3,0.4\n", r"obs.csv:2: expected comma-separated numbers, got '0.1,x,0.3,0.4'"),
    ("obs.csv", "# nothing\n", r"obs.csv: no observations"),
    ("obs.txt", "0.1 0.2 0.3 0.4\n", r"--input .*obs.txt: expected a .jsonl or .csv file"),
])
def test_a_bad_observation_file_names_the_file_and_line(tmp_path, name, text, message):
    with pytest.raises(TrainError, match=message):
        observations.read(write(tmp_path, name, text), 4)


# --- the task on the engine ----------------------------------------------------------------

def test_reinforcement_learning_trains_on_the_engine_and_refuses_data():
    spec = task("reinforcement-learning")
    assert spec.module == "reinforcement" and "not for DQN" in spec.data_help
    assert TASKS["reinforcement-learning"] is spec and spec.max_threads == 1


def test_the_engine_hooks_change_nothing_for_a_task_that_does_not_use_them(tmp_path):
    """eval_due (a clock of the task's own), eval_unit and save_state/load_state (resume-only files):
    by default none, so the engine's step cadence and checkpoints stay as they were."""
    class Plain(Task):
        datasets = build_model = loss = metric = input_spec = lambda self, *a: None

    plain = Plain({}, None, None, None)
    assert not plain.has_clock and plain.eval_due(10) is False and plain.eval_unit is None
    plain.save_state(tmp_path)
    plain.load_state(tmp_path)
    assert list(tmp_path.iterdir()) == []


def prepare(matrix, tmp_path, monkeypatch, *argv):
    path = tmp_path / "recipe.json"
    path.write_bytes(kinds.recipe_json(matrix, "dqn"))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    monkeypatch.setenv("KUNLUN_MODEL", "dqn")
    return cli.prepare(list(argv))


def test_the_dqn_recipe_is_parls_cartpole_example(matrix, tmp_path, monkeypatch):
    """examples/DQN/train.py + cartpole_agent.py: LEARN_FREQ 5, MEMORY_SIZE 200000, warm-up 200,
    batch 64, lr 5e-4, gamma 0.99, target sync every 200 learn calls, epsilon 0.1 -> 0.01 by 1e-6,
    train on CartPole-v0, evaluate 5 episodes of CartPole-v1 after every 50 training episodes."""
    args, recipe = prepare(matrix, tmp_path, monkeypatch, "--print-recipe")
    upstream = args.recipe_view["upstream"]
    assert args.recipe_name == "cartpole" and list(matrix.recipes("dqn")) == ["cartpole"]
    assert upstream["Global"] == {"seed": 42, "epoch_steps": 1000, "epochs": 8, "env": "CartPole-v0", "env_steps": 5}
    assert upstream["Replay"] == {"memory_size": 200000, "warmup_size": 200}
    assert upstream["DataLoader"] == {"workers": 0, "batch_size": 64}
    assert upstream["Algorithm"] == {"name": "DQN", "gamma": 0.99, "target_update_steps": 200, "e_greed": 0.1,
                                     "e_greed_decrement": 1e-6, "e_greed_min": 0.01, "e_greed_noise": 0.01}
    assert upstream["Optimizer"] == {"name": "Adam", "lr": {"name": "Constant", "learning_rate": 0.0005}}
    assert upstream["Eval"] == {"episodes": 5, "seed": 1000, "every_episodes": 50, "env": "CartPole-v1"}
    assert args.options.task == "reinforcement-learning" and "Bundle" not in recipe   # a run's facts: RunOptions


def test_a_default_run_is_a_ten_step_smoke_and_steps_or_epochs_train_the_recipe(matrix, tmp_path, monkeypatch):
    _, recipe = prepare(matrix, tmp_path, monkeypatch)
    assert recipe["Global"]["steps"] == 10 and recipe["Global"]["epochs"] == 8
    _, recipe = prepare(matrix, tmp_path, monkeypatch, "--steps", "3000", "-o", "Global.env_steps=3")
    assert recipe["Global"]["steps"] == 3000 and recipe["Global"]["env_steps"] == 3
    with pytest.raises(TrainError, match="unknown recipe key 'Replay.size'"):
        prepare(matrix, tmp_path, monkeypatch, "-o", "Replay.size=10")
    json.dumps(recipe)   # what --print-recipe shows


def test_help_shows_the_tasks_own_examples_without_a_dataset(matrix, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        prepare(matrix, tmp_path, monkeypatch, "--help")
    text = capsys.readouterr().out
    assert "docker run --rm kunlun/dqn                       # smoke: 10 learn steps and one evaluation" in text
    assert "predict --model /output/inference --input /output/obs.jsonl" in text and "--data /data" not in text
