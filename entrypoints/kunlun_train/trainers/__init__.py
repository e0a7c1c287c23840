"""One trainer per task (matrix.yaml's `task` of a model). This file is Paddle-free: the CLI reads
the registry below before Paddle is imported. Trainer modules import Paddle and their suite, so they
run in the images (tests/integration).

Every trainer module defines `class Trainer` with:

    Trainer(recipe, data, world)  build the model from the recipe (random init, nothing downloaded);
                                  `data` is the mounted dataset directory or None for synthetic data;
                                  `world` is a parallel.World: shard data with world.shard(), seed
                                  with world.seed(), wrap the model with parallel.wrap(). Dataset
                                  problems raise TrainError naming file:line here, before step 1.
    unit                          throughput unit: "images/s", "tokens/s", "sequences/s", "env steps/s"
    describe_data() -> str        "synthetic", or what was read, e.g. "12 images from a list file"
    samples_per_step() -> float   what this rank processed in the last step, counted in `unit`
    step() -> float               one optimisation step; returns this rank's loss
    save(directory) / load(directory)   model and optimizer state (rank 0 saves, every rank loads)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..errors import TrainError


@dataclass(frozen=True)
class Task:
    module: str                  # trainers/<module>.py
    data_help: str               # what --data expects, for --help and errors
    defaults: dict = field(default_factory=dict)   # recipe keys every model of the task has


TASKS = {
    "classification": Task(
        "classification",
        "a directory with train_list.txt: '<image path> <label>' lines (flowers102 / ImageNet style)",
        {"DataLoader": {"train_list": "train_list.txt"}}),
}


def task(name: str) -> Task:
    if name not in TASKS:
        raise TrainError(f"no trainer for task '{name}' in this image (known: {', '.join(TASKS)})")
    return TASKS[name]


def for_task(name: str):
    return importlib.import_module(f"{__name__}.{task(name).module}").Trainer
