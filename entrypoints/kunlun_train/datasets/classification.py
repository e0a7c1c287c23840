"""Classification list files (flowers102 / ImageNet style): `<image path> <label>` per line."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from . import data_root, lines, two_columns

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


LABEL_LIST = "label_list.txt"   # '<id> <name>' lines: predict --labels reads it too


def class_count(recipe: dict, root: str | Path) -> tuple[int, str]:
    """How many classes the dataset has, and where that comes from: the largest label of its lists
    + 1, or the lines of its label_list.txt when that names more (a class with no samples yet)."""
    loader, given, root = recipe["DataLoader"], root, data_root(root)
    labels = [s.label for name in (loader["train_list"], loader.get("val_list")) if name and (root / name).is_file()
              for s in classification_list(given, name, None)]
    count, source = (max(labels) + 1, f"the largest label in the lists, {max(labels)}, + 1") if labels else (0, "")
    names = root / LABEL_LIST
    if names.is_file():
        named = sum(1 for _ in lines(names))
        if named > count:
            count, source = named, f"the {named} lines of {LABEL_LIST}"
    return count, source


@functools.lru_cache(maxsize=8)   # the check before Paddle and the task read the same lists: parse once
def classification_list(root: str | Path, list_file: str, class_num: int | None) -> list[Sample]:
    """Parse `<image path> <label>` lines (paths relative to root), checking every image exists and,
    given class_num, that every label is below it."""
    root = data_root(root)
    samples = []
    for n, image, label in two_columns(root, list_file, "classification", "integer label", LIST_EXAMPLE):
        if not label.lstrip("-").isdigit():
            raise TrainError(f"{root / list_file}:{n}: expected '<image path> <integer label>', got label {label!r}")
        label = int(label)
        if label < 0 or class_num is not None and label >= class_num:
            raise TrainError(f"{root / list_file}:{n}: label {label} outside 0..{(class_num or 1) - 1}; "
                             f"set the class count with -o Arch.class_num=N (or leave it to the data)")
        samples.append(Sample(image, label, n))
    return samples


def optional_list(root: str | Path, list_file: str | None, class_num: int) -> list[Sample] | None:
    """The validation list when the dataset has one (val_list.txt), else None: training goes on
    without evaluation."""
    if not list_file or not (Path(root) / list_file).is_file():
        return None
    return classification_list(root, list_file, class_num)
