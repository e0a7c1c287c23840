"""Semantic segmentation list files (PaddleSeg / optic_disc_seg style): `<image path> <label mask path>`
per line, both relative to the dataset directory. Masks are single-channel PNGs of class ids, with
255 meaning "ignore this pixel". Text only here: the trainer decodes the files and checks each
mask's values against the class count with `mask_problem` as it reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from . import data_root, lines, required_file

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
    path = required_file(root, list_file, f"a segmentation dataset needs a list file with lines like {LIST_EXAMPLE}")
    samples = []
    for n, line in lines(path):
        fields = line.split()
        if len(fields) != 2:
            raise TrainError(f"{path}:{n}: expected '<image path> <label mask path>', got {line!r}; "
                             f"e.g. {LIST_EXAMPLE}")
        image, mask = root / fields[0], root / fields[1]
        if not image.is_file():
            raise TrainError(f"{path}:{n}: image {fields[0]} not found under {root}")
        if not mask.is_file():
            raise TrainError(f"{path}:{n}: label mask {fields[1]} not found under {root}")
        samples.append(Sample(image, mask, f"{path}:{n}"))
    if not samples:
        raise TrainError(f"{path}: no samples; expected lines like {LIST_EXAMPLE}")
    return samples


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
