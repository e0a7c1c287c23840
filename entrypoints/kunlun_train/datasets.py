"""Mounted datasets, validated before training starts so a bad layout fails in a second with
the file and line, not an hour in. This module reads text only; images are decoded by trainers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import TrainError

LIST_EXAMPLE = "'jpg/image_03601.jpg 12' (flowers102) or 'train/n01440764/n01440764_10026.JPEG 0' (ImageNet)"


@dataclass(frozen=True)
class Sample:
    image: Path
    label: int
    line: int           # where it came from, for errors while decoding


def classification_list(root: str | Path, list_file: str, class_num: int) -> list[Sample]:
    """Parse `<image path> <label>` lines (paths relative to root), checking every image exists."""
    root = Path(root)
    if not root.is_dir():
        raise TrainError(f"--data {root}: not a directory")
    path = root / list_file
    if not path.is_file():
        raise TrainError(f"{path}: missing; a classification dataset needs a list file with lines like {LIST_EXAMPLE}")
    samples = []
    for n, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise TrainError(f"{path}:{n}: expected '<image path> <integer label>', got {raw!r}")
        label = int(fields[1])
        if not 0 <= label < class_num:
            raise TrainError(f"{path}:{n}: label {label} outside 0..{class_num - 1}; "
                             f"set the class count with -o Arch.class_num=N")
        image = root / fields[0]
        if not image.is_file():
            raise TrainError(f"{path}:{n}: image {fields[0]} not found under {root}")
        samples.append(Sample(image, label, n))
    if not samples:
        raise TrainError(f"{path}: no samples; expected lines like {LIST_EXAMPLE}")
    return samples
