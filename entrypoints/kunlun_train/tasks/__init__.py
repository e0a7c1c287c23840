"""The tasks this image knows, one package each: tasks/<task>/spec.py (Paddle-free: the Spec, its
help and examples, recipe checks, transform specs), adapter.py (the Paddle Task the engine runs:
model, datasets, metrics) and inference.py (the pre- and post-processing around an exported model
that `predict` and the server's predict route run). The contract is contract.py.

This file and every spec.py are Paddle-free: the CLI reads them before Paddle is imported. The
adapters are imported by name (`adapter`), only when a command runs.
"""
from __future__ import annotations

import importlib

from ..errors import TrainError
from .classification.spec import SPECS as _CLASSIFICATION
from .contract import Metric, Spec, Task
from .detection.spec import SPECS as _DETECTION
from .language.spec import SPECS as _LANGUAGE
from .reinforcement.spec import SPECS as _REINFORCEMENT
from .segmentation.spec import SPECS as _SEGMENTATION

__all__ = ["Metric", "Spec", "Task", "TASKS", "spec", "check_data", "class_count", "adapter"]

# In the order --help and errors list them (the order of the one table this replaced).
TASKS: dict[str, Spec] = {**_CLASSIFICATION, **_SEGMENTATION, **_REINFORCEMENT, **_LANGUAGE, **_DETECTION}


def spec(name: str) -> Spec:
    if name not in TASKS:
        raise TrainError(f"no trainer for task '{name}' in this image (known: {', '.join(TASKS)})")
    return TASKS[name]


def check_data(name: str, recipe: dict, data: str, command: str) -> None:
    """Parse the mounted dataset with the task's Paddle-free reader (TrainError naming file:line)."""
    module = spec(name).data_check
    if module:
        importlib.import_module(f"{__name__.rsplit('.', 1)[0]}.datasets.{module}").check(recipe, data, command)


def class_count(name: str, recipe: dict, data: str, explicit: bool) -> str | None:
    """Set the task's class count (Spec.classes) from the mounted data unless -o gave it (explicit);
    returns what to tell the user. An explicit count below the data's fails later, in the data check,
    naming the line; one above it is kept, with a notice."""
    key = spec(name).classes
    if not key:
        return None
    count, source = importlib.import_module(f"{__name__.rsplit('.', 1)[0]}.datasets.{spec(name).data_check}") \
        .class_count(recipe, data)
    section, field_name = key.split(".")
    current = int(recipe[section][field_name])
    if not explicit and count:
        recipe[section][field_name] = count
        return f"{count} classes, from the data ({source}); -o {key}=N to choose"
    if explicit and count and current > count:
        return (f"{key}={current}: the data has {count} classes ({source}); the model's other "
                f"{current - count} outputs are trained towards 0")
    return None


def adapter(name: str) -> type:
    """The task's class, a Task subclass run by engine.Engine (tasks/<module>/adapter.py, imports Paddle)."""
    found = spec(name)
    return getattr(importlib.import_module(f"{__name__}.{found.module}.adapter"), found.adapter)
