"""Training recipes: the model's named recipes baked into the image (/opt/kunlun/recipe.json, from
matrix.yaml), the smoke overrides a default `docker run` applies, and PaddleClas-style
`-o Section.key=value` overrides on top.

recipe.json:
    {"Bundle": {"model", "title", "task", "suite"},
     "recipes": {"imagenet": {...}, "flowers102-finetune": {...}},   # the first is the default
     "smoke": {"Global": {"steps": 10}, "DataLoader": {"batch_size": 2}}}

A recipe is the suite's upstream configuration (sections Global, Arch, Loss, Optimizer, DataLoader,
...). The smoke overrides apply when there is no dataset (--data): synthetic data has nothing to
learn, so the default run is a few small steps of the real recipe."""
from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass
from pathlib import Path

from . import schema
from .errors import TrainError


@dataclass(frozen=True)
class Recipes:
    bundle: dict
    recipes: dict            # name -> recipe
    smoke: dict

    @property
    def default(self) -> str:
        return next(iter(self.recipes))

    def select(self, name: str | None) -> tuple[str, dict]:
        name = name or self.default
        if name not in self.recipes:
            raise TrainError(f"--recipe {name}: this image has the recipes {', '.join(self.recipes)}")
        return name, copy.deepcopy(self.recipes[name])


def load(path: str | Path) -> Recipes:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainError(f"recipe {path} not found (set KUNLUN_RECIPE or pass --recipe-file)") from None
    except json.JSONDecodeError as exc:
        raise TrainError(f"recipe {path} is not valid JSON: {exc}") from None
    if not isinstance(raw.get("recipes"), dict) or not raw["recipes"]:
        raise TrainError(f"recipe {path}: no 'recipes' (expected the file `invoke build` writes)")
    return Recipes(raw.get("Bundle", {}), raw["recipes"], raw.get("smoke") or {})


merge = schema.merge   # the one merge, shared with the host (kunlun_bundle/matrix.py)


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
            raise TrainError(f"-o {item}: expected KEY=VALUE, e.g. -o Optimizer.lr.learning_rate=0.1")
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


def operators(section, what: str, suite: str, kind: str, example: str) -> list[tuple[str, dict]]:
    """A recipe section of a suite's operators by name ({Name: {args}}, in the order written), as
    (name, a copy of its arguments). Naming them lets `-o Train.transforms.RandomFlip.prob=0` reach
    one; null or false switches one off, true takes its defaults. `suite`, `kind` and `example` say,
    in an error, what the suite calls them (PaddleSeg's transforms, PaddleDetection's operators)."""
    if section is None:
        return []
    if not isinstance(section, dict):
        raise TrainError(f"{what}: expected {suite} {kind}s by name, e.g. {example}")
    found = []
    for name, kwargs in section.items():
        if kwargs is None or kwargs is False:
            continue
        if kwargs is True:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise TrainError(f"{what}.{name}={kwargs!r}: expected the {kind}'s arguments, e.g. {{}} for its defaults")
        found.append((name, dict(kwargs)))
    return found
