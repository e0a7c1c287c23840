"""The training recipe: the model's defaults baked into the image (/opt/kunlun/recipe.json, from
matrix.yaml) with PaddleClas-style `-o Section.key=value` overrides on top."""
from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

from .errors import TrainError


def load(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainError(f"recipe {path} not found (set KUNLUN_RECIPE or pass --recipe)") from None
    except json.JSONDecodeError as exc:
        raise TrainError(f"recipe {path} is not valid JSON: {exc}") from None


def parse_value(text: str):
    """'3' -> 3, '0.1' -> 0.1, 'true' -> True, '[1, 2]' -> [1, 2], anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def override(recipe: dict, assignments: list[str]) -> dict:
    """Apply `Section.key=value` assignments; unknown keys are errors (a typo must not be ignored)."""
    result = copy.deepcopy(recipe)
    for item in assignments:
        if "=" not in item:
            raise TrainError(f"-o {item}: expected KEY=VALUE, e.g. -o Optimizer.learning_rate=0.1")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = result
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(sorted(".".join(parts[:i] + [k]) for k in node)) if isinstance(node, dict) else ""
                raise TrainError(f"-o {item}: unknown recipe key '{'.'.join(parts[:i + 1])}'"
                                 + (f" (known here: {known})" if known else ""))
            if i == len(parts) - 1:
                node[part] = parse_value(value)
            else:
                node = node[part]
    return result
