"""One trainer per task. A trainer builds the model from the recipe with its suite, yields
batches (synthetic or from a mounted dataset), runs one optimisation step, and saves/loads state.
These import Paddle and the suite, so they run in the images (tests/integration)."""
from __future__ import annotations

import importlib

TRAINERS = {"classification": "classification"}

# Recipe keys every model of a task has, under the model's own recipe from matrix.yaml.
DEFAULTS = {"classification": {"DataLoader": {"train_list": "train_list.txt"}}}


def for_task(task: str):
    if task not in TRAINERS:
        from ..errors import TrainError
        raise TrainError(f"no trainer for task '{task}' in this image (known: {', '.join(TRAINERS)})")
    return importlib.import_module(f"{__name__}.{TRAINERS[task]}").Trainer
