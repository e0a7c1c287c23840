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
    output = Path(output)
    final = output / f"ckpt-{step:06d}"
    tmp = output / f".ckpt-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_files(tmp)
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def state(directory: Path) -> dict:
    return json.loads((directory / "state.json").read_text())
