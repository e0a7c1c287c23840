"""Paddle-free parts of DQN (PARL): its Spec, and what the adapter (adapter.py) uses that needs no
Paddle: exploration, the episode clock that paces evaluation, the recipe checks. Standard library
only, so they are unit-tested on the host (tests/test_reinforcement.py); the adapter runs in the image."""
from __future__ import annotations

import random

from ...errors import TrainError
from ..contract import Spec

SPECS = {
    "reinforcement-learning": Spec(
        "reinforcement", "Task",
        "a dataset: not for DQN, which learns from its own episodes in a simulated environment "
        "(Global.env); --data is an error",
        max_threads=1, synthetic="episodes of its environment",   # a 128-unit Q network: measured 2-3x faster on one thread than on two
        examples=(
            "  docker run --rm kunlun/{model}                       # smoke: 10 learn steps and one evaluation\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} --output /output --epochs 8   # the recipe (8000 learn steps)\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} --output /output --epochs 10 --resume\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} eval --weights /output/best   # greedy episodes\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} export --weights /output/best --to /output/inference\n"
            "  docker run --rm -v $PWD/out:/output kunlun/{model} predict --model /output/inference --input /output/obs.jsonl\n"
            "      (observation vectors: a JSON array per line in .jsonl, or comma-separated numbers per line in .csv)\n"
            "  invoke run {model} --output O -- --epochs 8     (the mount filled in for you; then -- eval, -- export, ...)\n"
            "`docker run kunlun/{model} COMMAND --help` explains a command.")),
}


class EpsilonGreedy:
    """Exploration of PARL's examples/DQN CartpoleAgent.sample: a random action with probability
    `value`, which starts at `start` and falls by `decrement` per action down to `floor`; the greedy
    branch is itself random with probability `noise` (the example's 0.01)."""

    def __init__(self, start: float, decrement: float, floor: float, noise: float = 0.0):
        if not (0.0 <= floor <= 1.0 and 0.0 <= start <= 1.0 and 0.0 <= noise <= 1.0 and decrement >= 0.0):
            raise TrainError(f"Algorithm.e_greed={start}, e_greed_min={floor}, e_greed_noise={noise}, "
                             f"e_greed_decrement={decrement}: probabilities must be in [0, 1] and the "
                             "decrement non-negative")
        self.value, self.decrement, self.floor, self.noise = float(start), float(decrement), float(floor), float(noise)

    def explore(self, rng: random.Random) -> bool:
        """True when this action should be random; then the rate decays."""
        random_action = rng.random() < self.value or (self.noise > 0 and rng.random() < self.noise)
        self.value = max(self.floor, self.value - self.decrement)
        return random_action


class EpisodeClock:
    """When to evaluate: each time another `interval` training episodes have finished (PARL's
    examples/DQN trains 50 episodes, then evaluates). interval 0: never. `due` is asked after every
    learn step with the episodes finished so far; it fires once per interval crossed."""

    def __init__(self, interval: int, next_at: int | None = None):
        self.interval = int(interval)
        self.next_at = next_at if next_at is not None else self.interval

    def due(self, episodes: int) -> bool:
        if not self.interval or episodes < self.next_at:
            return False
        self.next_at = (episodes // self.interval + 1) * self.interval
        return True


def no_dataset(data: str | None, model: str = "DQN") -> None:
    """DQN learns from its own environment episodes; a mounted dataset would be silently ignored."""
    if data:
        raise TrainError(f"--data {data}: {model} needs no dataset; it learns from its own episodes in a "
                         "simulated environment (Global.env). Run without --data")


def positive(recipe: dict, section: str, key: str, minimum: int = 1) -> int:
    """An integer recipe value that must be at least `minimum`, with the key in the error."""
    value = recipe.get(section, {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TrainError(f"{section}.{key}={value!r}: expected an integer >= {minimum}")
    return value
