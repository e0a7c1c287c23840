"""Paddle-free parts of the DQN trainer (trainers/reinforcement.py): the replay memory, the
epsilon-greedy schedule and the recipe checks. Standard library only (the trainer turns sampled
minibatches into numpy arrays), so they are unit-tested on the host (tests/test_reinforcement.py)."""
from __future__ import annotations

import json
import random
import sys
from array import array
from pathlib import Path

from ..errors import TrainError

# Column name -> array typecode: float32 observations, int64 actions, float32 rewards and flags.
COLUMNS = {"obs": "f", "action": "q", "reward": "f", "next_obs": "f", "terminal": "f"}
MAGIC = "kunlun-replay-memory/1"


class ReplayMemory:
    """A fixed-size ring buffer of transitions (obs, action, reward, next_obs, terminal), sampled
    uniformly with replacement, as PARL's examples/DQN ReplayMemory. `terminal` is 1.0 only when
    the episode ended in the MDP (gymnasium's `terminated`), not when a time limit cut it short, so
    truncated episodes are still bootstrapped. Observations are stored flat, obs_dim per row."""

    def __init__(self, capacity: int, obs_dim: int):
        if capacity < 1 or obs_dim < 1:
            raise TrainError(f"Replay.memory_size={capacity}: must be at least 1")
        self.capacity, self.obs_dim = int(capacity), int(obs_dim)
        d = self.obs_dim
        self.obs = array("f", bytes(4 * capacity * d))
        self.action = array("q", bytes(8 * capacity))
        self.reward = array("f", bytes(4 * capacity))
        self.next_obs = array("f", bytes(4 * capacity * d))
        self.terminal = array("f", bytes(4 * capacity))
        self.size = 0        # transitions held (<= capacity)
        self.cursor = 0      # where the next transition goes
        self.added = 0       # transitions ever appended

    def __len__(self) -> int:
        return self.size

    def append(self, obs, action: int, reward: float, next_obs, terminal: bool) -> None:
        i, d = self.cursor, self.obs_dim
        obs, next_obs = array("f", map(float, obs)), array("f", map(float, next_obs))
        if len(obs) != d or len(next_obs) != d:
            raise ValueError(f"expected observations of {d} values, got {len(obs)} and {len(next_obs)}")
        self.obs[i * d:(i + 1) * d] = obs
        self.next_obs[i * d:(i + 1) * d] = next_obs
        self.action[i] = int(action)
        self.reward[i] = float(reward)
        self.terminal[i] = 1.0 if terminal else 0.0
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def sample(self, batch: int, rng: random.Random) -> tuple[list, list, list, list, list]:
        """A minibatch of `batch` transitions drawn with replacement: obs and next_obs as flat lists
        of batch * obs_dim floats (row-major), actions, rewards and terminal flags as lists."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay memory")
        return self.rows([rng.randrange(self.size) for _ in range(batch)])

    def rows(self, idx: list[int]) -> tuple[list, list, list, list, list]:
        d = self.obs_dim
        obs, next_obs = [], []
        for i in idx:
            obs.extend(self.obs[i * d:(i + 1) * d])
            next_obs.extend(self.next_obs[i * d:(i + 1) * d])
        return (obs, [self.action[i] for i in idx], [self.reward[i] for i in idx], next_obs,
                [self.terminal[i] for i in idx])

    def oldest_first(self) -> list[int]:
        """Row indices from the oldest transition held to the newest."""
        if self.size < self.capacity:
            return list(range(self.size))
        return list(range(self.cursor, self.capacity)) + list(range(self.cursor))

    # --- checkpoints: a JSON header line, then each column's filled rows, oldest first ---------

    def save(self, path: str | Path) -> None:
        order = self.oldest_first()
        obs, action, reward, next_obs, terminal = self.rows(order)
        columns = {"obs": array("f", obs), "action": array("q", action), "reward": array("f", reward),
                   "next_obs": array("f", next_obs), "terminal": array("f", terminal)}
        header = {"format": MAGIC, "obs_dim": self.obs_dim, "size": self.size, "added": self.added,
                  "byteorder": sys.byteorder, "columns": {k: [COLUMNS[k], len(v)] for k, v in columns.items()}}
        with open(path, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            for values in columns.values():
                values.tofile(f)

    def load(self, path: str | Path) -> None:
        """Restore a saved memory. When this memory is smaller than the saved one, the newest
        transitions are kept."""
        with open(path, "rb") as f:
            try:
                header = json.loads(f.readline())
                assert header["format"] == MAGIC
            except (ValueError, KeyError, AssertionError, TypeError):
                raise TrainError(f"{path}: not a replay memory written by this trainer") from None
            if header["obs_dim"] != self.obs_dim:
                raise TrainError(f"{path}: replay memory of {header['obs_dim']}-dimensional observations, but "
                                 f"the environment has {self.obs_dim}; was it saved for another Global.env?")
            columns = {}
            for name, (code, count) in header["columns"].items():
                values = array(code)
                try:
                    values.fromfile(f, count)
                except (EOFError, ValueError):   # fewer items, or a partial one
                    raise TrainError(f"{path}: truncated (column {name})") from None
                if header["byteorder"] != sys.byteorder:
                    values.byteswap()
                columns[name] = values
        size, d = int(header["size"]), self.obs_dim
        keep = min(size, self.capacity)
        first = size - keep     # drop the oldest when this memory is smaller
        self.obs[:keep * d] = columns["obs"][first * d:]
        self.next_obs[:keep * d] = columns["next_obs"][first * d:]
        for name in ("action", "reward", "terminal"):
            getattr(self, name)[:keep] = columns[name][first:]
        self.size, self.cursor, self.added = keep, keep % self.capacity, int(header["added"])


class EpsilonGreedy:
    """Exploration rate of PARL's CartpoleAgent: starts at `start`, falls by `decrement` per action
    taken, never below `floor`."""

    def __init__(self, start: float, decrement: float, floor: float):
        if not (0.0 <= floor <= 1.0 and 0.0 <= start <= 1.0 and decrement >= 0.0):
            raise TrainError(f"Algorithm.e_greed={start}, e_greed_min={floor}, e_greed_decrement={decrement}: "
                             "probabilities must be in [0, 1] and the decrement non-negative")
        self.value, self.decrement, self.floor = float(start), float(decrement), float(floor)

    def explore(self, rng: random.Random) -> bool:
        """True when this action should be random; then the rate decays."""
        random_action = rng.random() < self.value
        self.value = max(self.floor, self.value - self.decrement)
        return random_action


def no_dataset(data: str | None, model: str = "DQN") -> None:
    """DQN learns from its own environment episodes; a mounted dataset would be silently ignored."""
    if data:
        raise TrainError(f"--data {data}: {model} needs no dataset; it learns from its own episodes in a "
                         "simulated environment (Global.env). Run without --data")


def positive(recipe: dict, section: str, key: str, minimum: int = 1) -> int:
    """An integer recipe value that must be at least `minimum`, with the key in the error."""
    value = recipe[section][key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainError(f"{section}.{key}={value!r}: expected an integer >= {minimum}")
    return value
