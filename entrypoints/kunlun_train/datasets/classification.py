"""Classification list files (flowers102 / ImageNet style): `<image path> <label>` per line."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from . import data_root, lines, required_file

LIST_EXAMPLE = "'jpg/image_03601.jpg 12' (flowers102) or 'train/n01440764/n01440764_10026.JPEG 0' (ImageNet)"


@dataclass(frozen=True)
class Sample:
    image: Path
    label: int
    line: int           # where it came from, for errors while decoding


def check(recipe: dict, root: str | Path, command: str = "train") -> None:
    """The lists a command reads, parsed before Paddle is imported: a bad line fails in a second.
    Training needs the training list (the validation list when there is one); eval needs the validation list."""
    loader, classes = recipe["DataLoader"], int(recipe["Arch"]["class_num"])
    if command == "eval":
        classification_list(root, loader.get("val_list") or "val_list.txt", classes)
        return
    classification_list(root, loader["train_list"], classes)
    optional_list(root, loader.get("val_list"), classes)


@functools.lru_cache(maxsize=8)   # the check before Paddle and the task read the same lists: parse once
def classification_list(root: str | Path, list_file: str, class_num: int) -> list[Sample]:
    """Parse `<image path> <label>` lines (paths relative to root), checking every image exists."""
    root = data_root(root)
    path = required_file(root, list_file, f"a classification dataset needs a list file with lines like {LIST_EXAMPLE}")
    samples = []
    for n, line in lines(path):
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise TrainError(f"{path}:{n}: expected '<image path> <integer label>', got {line!r}")
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


def optional_list(root: str | Path, list_file: str | None, class_num: int) -> list[Sample] | None:
    """The validation list when the dataset has one (val_list.txt), else None: training goes on
    without evaluation."""
    if not list_file or not (Path(root) / list_file).is_file():
        return None
    return classification_list(root, list_file, class_num)
