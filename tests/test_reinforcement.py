"""The DQN trainer's Paddle-free parts (trainers/replay.py: replay memory, epsilon-greedy, recipe
checks) and the dqn model's recipe as the entrypoint reads it. No Paddle, PARL or numpy here: the
trainer itself runs in the image (tests/integration/test_parl.py)."""
import json
import random
from pathlib import Path

import pytest

from kunlun_bundle.images import kinds, lock
from kunlun_train import cli
from kunlun_train.errors import TrainError
from kunlun_train.trainers import TASKS, task
from kunlun_train.trainers.replay import EpsilonGreedy, ReplayMemory, no_dataset, positive
from tests.patching import patched_wheel


ROOT = Path(__file__).resolve().parents[1]


def transition(i: int, dim: int = 4):
    """A transition whose every value encodes i, so rows can be recognised after sampling."""
    return [i + k / 10 for k in range(dim)], i % 2, float(i), [i + 0.5] * dim, i % 3 == 0


def filled(capacity: int, count: int, dim: int = 4) -> ReplayMemory:
    memory = ReplayMemory(capacity, dim)
    for i in range(count):
        memory.append(*transition(i, dim))
    return memory


def rewards(memory: ReplayMemory) -> list[float]:
    """The rewards held, oldest first (each transition's reward is its index)."""
    return memory.rows(memory.oldest_first())[2]


# --- replay memory -----------------------------------------------------------------------

def test_a_minibatch_has_flat_observations_and_one_value_per_transition():
    memory = filled(100, 10)
    obs, action, reward, next_obs, terminal = memory.sample(8, random.Random(0))
    assert len(obs) == len(next_obs) == 8 * 4
    assert len(action) == len(reward) == len(terminal) == 8
    for row in range(8):   # each row is one stored transition, its fields kept together
        i = int(reward[row])
        assert obs[row * 4:(row + 1) * 4] == pytest.approx(transition(i)[0])
        assert next_obs[row * 4:(row + 1) * 4] == pytest.approx([i + 0.5] * 4)
        assert (action[row], terminal[row]) == (i % 2, 1.0 if i % 3 == 0 else 0.0)


def test_sampling_is_reproducible_and_draws_only_what_is_held():
    memory = filled(100, 5)
    first = memory.sample(64, random.Random(7))
    assert first == memory.sample(64, random.Random(7))
    assert set(first[2]) <= {0.0, 1.0, 2.0, 3.0, 4.0} and len(set(first[2])) == 5


def test_a_full_memory_overwrites_its_oldest_transitions():
    memory = filled(4, 6)
    assert len(memory) == 4 and memory.added == 6
    assert rewards(memory) == [2.0, 3.0, 4.0, 5.0]
    assert set(memory.sample(200, random.Random(1))[2]) == {2.0, 3.0, 4.0, 5.0}


def test_an_empty_memory_cannot_be_sampled():
    with pytest.raises(ValueError, match="empty"):
        ReplayMemory(10, 4).sample(1, random.Random(0))


def test_observations_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="4 values"):
        ReplayMemory(10, 4).append([0.0, 1.0], 0, 1.0, [0.0, 1.0], False)


@pytest.mark.parametrize("count", [3, 4, 9])   # partly filled, exactly full, wrapped around
def test_a_saved_memory_loads_with_the_same_transitions_in_order(tmp_path, count):
    memory = filled(4, count)
    memory.save(tmp_path / "replay.bin")
    loaded = ReplayMemory(4, 4)
    loaded.load(tmp_path / "replay.bin")
    assert (len(loaded), loaded.added) == (len(memory), memory.added)
    assert loaded.rows(loaded.oldest_first()) == memory.rows(memory.oldest_first())
    loaded.append(*transition(100))   # and it goes on as a ring, dropping the oldest
    assert rewards(loaded)[-1] == 100.0 and len(loaded) == min(count + 1, 4)


def test_a_smaller_memory_keeps_the_newest_saved_transitions(tmp_path):
    filled(10, 8).save(tmp_path / "replay.bin")
    small = ReplayMemory(3, 4)
    small.load(tmp_path / "replay.bin")
    assert rewards(small) == [5.0, 6.0, 7.0]


def test_a_memory_of_another_environment_or_a_foreign_file_is_refused(tmp_path):
    filled(10, 3, dim=6).save(tmp_path / "replay.bin")
    with pytest.raises(TrainError, match=r"replay.bin: replay memory of 6-dimensional observations"):
        ReplayMemory(10, 4).load(tmp_path / "replay.bin")
    (tmp_path / "other.bin").write_bytes(b"\x00\x01 not json\n")
    with pytest.raises(TrainError, match=r"other.bin: not a replay memory"):
        ReplayMemory(10, 4).load(tmp_path / "other.bin")


def test_a_truncated_memory_file_is_refused(tmp_path):
    filled(10, 5).save(tmp_path / "replay.bin")
    data = (tmp_path / "replay.bin").read_bytes()
    (tmp_path / "replay.bin").write_bytes(data[:-7])
    with pytest.raises(TrainError, match="replay.bin: truncated"):
        ReplayMemory(10, 4).load(tmp_path / "replay.bin")


# --- exploration and recipe checks -------------------------------------------------------

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


def test_bad_exploration_settings_name_the_keys():
    with pytest.raises(TrainError, match="Algorithm.e_greed=1.5"):
        EpsilonGreedy(1.5, 0.0, 0.01)


def test_a_dataset_is_an_error_saying_dqn_needs_none():
    no_dataset(None)
    with pytest.raises(TrainError, match=r"--data /data: DQN needs no dataset"):
        no_dataset("/data")


@pytest.mark.parametrize("value", [0, -3, 2.5, "5", True])
def test_integer_settings_must_be_positive_integers(value):
    with pytest.raises(TrainError, match=r"Global.env_steps=.*expected an integer >= 1"):
        positive({"Global": {"env_steps": value}}, "Global", "env_steps")


# --- the dqn model as the entrypoint sees it ---------------------------------------------

def test_reinforcement_learning_has_a_trainer_that_refuses_data():
    spec = task("reinforcement-learning")
    assert spec.module == "reinforcement" and "not for DQN" in spec.data_help
    assert TASKS["reinforcement-learning"] is spec


def test_the_dqn_recipe_is_parls_cartpole_example_and_overridable(matrix, tmp_path, monkeypatch):
    path = tmp_path / "recipe.json"
    path.write_bytes(kinds.recipe_json(matrix, "dqn"))
    monkeypatch.setenv("KUNLUN_RECIPE", str(path))
    monkeypatch.setenv("KUNLUN_MODEL", "dqn")
    _, recipe = cli.prepare(["--steps", "2", "--batch-size", "2", "-o", "Global.env_steps=3", "--threads", "1"])
    assert recipe["Bundle"]["task"] == "reinforcement-learning"
    assert recipe["Global"]["env"] == "CartPole-v1" and recipe["Global"]["env_steps"] == 3
    assert (recipe["Global"]["steps"], recipe["DataLoader"]["batch_size"]) == (2, 2)
    assert recipe["Algorithm"]["name"] == "DQN" and recipe["Optimizer"]["name"] == "Adam"
    assert recipe["Replay"]["warmup_size"] <= recipe["Replay"]["memory_size"]
    json.dumps(recipe)   # what --print-recipe shows


# --- The suite's reviewed patches (patches/parl/, matrix.yaml suites.parl.patches) ----------

def test_every_parl_patch_file_is_listed_in_the_matrix(matrix):
    listed = matrix.suites["parl"].patches
    on_disk = sorted(p.name for p in (ROOT / "patches/parl").glob("*.patch"))
    assert listed == on_disk and listed, "patches/parl/ and matrix.yaml disagree"


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_patches_apply_to_the_locked_parl_wheel(matrix, tmp_path, arch):
    """Exactly as the suite image applies them (no fuzz), to the wheel the lock pins; SciPy,
    which the suite no longer lists, is then imported only inside the GAE helpers."""
    locked = lock.LockFile.read(ROOT / f"locks/{arch}/cpu/parl.txt").wheels
    assert "scipy" not in {w.name for w in locked} and "pyarrow" not in {w.name for w in locked}
    site = patched_wheel(matrix, "parl", arch, tmp_path)
    source = (site / "parl/utils/rl_utils.py").read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert top_level == ["import numpy as np"] and "    import scipy.signal" in source
    compile(source, "rl_utils.py", "exec")
