"""Mounted datasets, one module per format, validated before training starts so a bad layout fails
in a second with the file and line, not an hour in. These modules read text only (no Paddle):
the task adapters decode images themselves. Shared helpers for every format live here."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import TrainError


def data_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise TrainError(f"--data {root}: not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise TrainError(f"--data {root}: not readable by this user (uid {os.getuid()}); make the dataset "
                         "world-readable (chmod -R a+rX) or run the container as its owner (--user)")
    return root


def required_file(root: Path, name: str, what: str) -> Path:
    """A file the format needs; the error says what it should contain."""
    path = root / name
    if not path.is_file():
        raise TrainError(f"{path}: missing; {what}")
    return path


def lines(path: Path):
    """(line number, stripped text) of every non-blank, non-comment line."""
    for n, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield n, line
