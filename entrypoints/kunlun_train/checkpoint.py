"""Checkpoints under --output: one directory per save (ckpt-000012/), written to a temporary
name and renamed when complete, so a run killed while saving never leaves a half checkpoint
that --resume would pick up."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

PATTERN = re.compile(r"^ckpt-(\d{6,})$")


def latest(output: str | Path) -> tuple[int, Path] | None:
    """(step, directory) of the newest complete checkpoint, or None."""
    found = []
    for d in Path(output).glob("ckpt-*"):
        match = PATTERN.match(d.name)
        if match and (d / "state.json").is_file():
            found.append((int(match.group(1)), d))
    return max(found) if found else None


def save(output: str | Path, step: int, write_files, state: dict) -> Path:
    """write_files(directory) writes the model and optimizer files; state.json marks completion."""
    return save_as(output, f"ckpt-{step:06d}", write_files, {**state, "step": step})


def save_as(output: str | Path, name: str, write_files, state: dict) -> Path:
    """A checkpoint directory under a name of its own (`best`), replaced atomically."""
    output = Path(output)
    final = output / name
    tmp = output / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_files(tmp)
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    if final.exists():   # replace: move the old one aside first, so a crash leaves one complete copy
        old = output / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    return final


def state(directory: Path) -> dict:
    return json.loads((directory / "state.json").read_text())


def recipe_of(weights: str | Path | None) -> tuple[str | None, dict] | None:
    """(the recipe's name, the recipe) a checkpoint directory was trained with (its state.json), or None.
    The name is state.json's recipe_name; checkpoints written before it was there kept it in the
    recipe, under Bundle.recipe (a section dropped here: the recipe is the suite's configuration)."""
    if not weights or not (Path(weights) / "state.json").is_file():
        return None
    saved = state(Path(weights))
    recipe = saved.get("recipe")
    if recipe is None:
        return None
    name = saved.get("recipe_name") or recipe.get("Bundle", {}).get("recipe")
    return name, {k: v for k, v in recipe.items() if k != "Bundle"}


def prune(output: str | Path, keep: int | None) -> list[Path]:
    """Remove all but the newest `keep` ckpt-* directories (best/ is never touched); returns the removed."""
    if not keep:
        return []
    found = sorted((int(m.group(1)), d) for d in Path(output).glob("ckpt-*") if (m := PATTERN.match(d.name)))
    removed = [d for _, d in found[:-keep]]
    for d in removed:
        shutil.rmtree(d, ignore_errors=True)
    return removed
