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


def two_columns(root: Path, list_file: str, dataset: str, second: str, example: str, second_file: str | None = None):
    """The lines of a two-column list file, the one format the classification, segmentation and VOC
    lists share: `<image path> <second>` per line, paths relative to root. Yields (line number,
    image path, the second field: a path when `second_file` names what it is, else its text), after
    checking the image (and that file) exists. Errors name file:line and the expected form."""
    path = required_file(root, list_file, f"a {dataset} dataset needs a list file with lines like {example}")
    found = False
    for n, line in lines(path):
        fields = line.split()
        if len(fields) != 2:
            raise TrainError(f"{path}:{n}: expected '<image path> <{second}>', got {line!r}; e.g. {example}")
        image = root / fields[0]
        if not image.is_file():
            raise TrainError(f"{path}:{n}: image {fields[0]} not found under {root}")
        other = fields[1]
        if second_file:
            other = root / fields[1]
            if not other.is_file():
                raise TrainError(f"{path}:{n}: {second_file} {fields[1]} not found under {root}")
        found = True
        yield n, image, other
    if not found:
        raise TrainError(f"{path}: no samples; expected lines like {example}")

