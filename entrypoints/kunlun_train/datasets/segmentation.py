"""Semantic segmentation list files (PaddleSeg / optic_disc_seg style): `<image path> <label mask path>`
per line, both relative to the dataset directory: train_list.txt for training, val_list.txt (when
present) for evaluation. Masks are single-channel PNGs of class ids, with 255 meaning "ignore this
pixel". Text only here: the task decodes the files and checks each mask's values against the class
count with `mask_problem` as it reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import data_root, two_columns

LIST_EXAMPLE = "'JPEGImages/N0010.jpg Annotations/N0010.png' (optic_disc_seg)"
IGNORE_INDEX = 255
MASK_MODES = ("1", "L", "P", "I", "I;16")   # PIL modes that hold one class id per pixel


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path
    where: str          # "<list file>:<line>", for errors while decoding


def segmentation_list(root: str | Path, list_file: str) -> list[Sample]:
    """Parse `<image path> <mask path>` lines (paths relative to root), checking both files exist."""
    root = data_root(root)
    return [Sample(image, mask, f"{root / list_file}:{n}") for n, image, mask in
            two_columns(root, list_file, "segmentation", "label mask path", LIST_EXAMPLE, second_file="label mask")]


def optional_list(root: str | Path, list_file: str | None) -> list[Sample] | None:
    """The validation list when the dataset has one (val_list.txt), else None: training goes on
    without evaluation. When it is there, it is checked like the training list."""
    if not list_file or not (Path(root) / list_file).is_file():
        return None
    return segmentation_list(root, list_file)


def mask_problem(sample: Sample, mode: str, values, num_classes: int) -> str | None:
    """Why a decoded mask cannot train a `num_classes` model (None when it can): it must have one
    channel of class ids 0..num_classes-1, or IGNORE_INDEX. `values` are the distinct pixel values."""
    if mode not in MASK_MODES:
        return (f"{sample.where}: label mask {sample.mask} is a {mode} image; masks must be single-channel "
                f"PNGs of class ids (mode L or P), not colour-coded")
    bad = sorted(int(v) for v in values if not (0 <= int(v) < num_classes or int(v) == IGNORE_INDEX))
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        return (f"{sample.where}: label mask {sample.mask} has class ids {shown} outside 0..{num_classes - 1} "
                f"({IGNORE_INDEX} = ignore); set the class count with -o Arch.num_classes=N")
    return None

