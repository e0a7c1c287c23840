"""Observation files for `predict` of a reinforcement-learning model (DQN): one observation vector per
line, in either of two formats chosen by the file's suffix:

    obs.jsonl   a JSON array of numbers per line, or an object with it under "obs"
                [0.0123, -0.0456, 0.0321, 0.0178]
                {"obs": [0.0123, -0.0456, 0.0321, 0.0178]}
    obs.csv     comma-separated numbers per line; a first line that is not numbers (a header) is skipped
                0.0123,-0.0456,0.0321,0.0178

Blank lines and lines starting with '#' are skipped. Every vector must have the model's observation
size (inference.yml PreProcess.observation_dim). Standard library only: unit-tested on the host."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import TrainError
from . import lines

SUFFIXES = (".jsonl", ".csv")
EXAMPLE = "'[0.01, -0.02, 0.03, 0.04]' (.jsonl) or '0.01,-0.02,0.03,0.04' (.csv)"


def _numbers(values, path: Path, n: int, dim: int) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in values):
        raise TrainError(f"{path}:{n}: expected a list of numbers, e.g. {EXAMPLE}")
    if len(values) != dim:
        raise TrainError(f"{path}:{n}: {len(values)} values, but the model takes observations of {dim}")
    if not all(math.isfinite(v) for v in values):
        raise TrainError(f"{path}:{n}: not a finite number in {values}")
    return [float(v) for v in values]


def read(path: str | Path, dim: int) -> list[tuple[int, list[float]]]:
    """(line number, observation) of every observation in the file."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise TrainError(f"--input {path}: expected a .jsonl or .csv file of observation vectors, e.g. {EXAMPLE}")
    found = []
    for i, (n, line) in enumerate(lines(path)):
        if path.suffix.lower() == ".jsonl":
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainError(f"{path}:{n}: not JSON ({exc.msg}); expected e.g. {EXAMPLE}") from None
            if isinstance(value, dict):
                if "obs" not in value:
                    raise TrainError(f"{path}:{n}: an object needs the observation under \"obs\"")
                value = value["obs"]
        else:
            try:
                value = [float(v) for v in line.split(",")]
            except ValueError:
                if i == 0:
                    continue   # a header row of column names
                raise TrainError(f"{path}:{n}: expected comma-separated numbers, got {line!r}") from None
        found.append((n, _numbers(value, path, n, dim)))
    if not found:
        raise TrainError(f"{path}: no observations; expected lines like {EXAMPLE}")
    return found
