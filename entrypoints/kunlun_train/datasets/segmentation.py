"""Semantic segmentation list files (PaddleSeg / optic_disc_seg style): `<image path> <label mask path>`
per line, both relative to the dataset directory: train_list.txt for training, val_list.txt (when
present) for evaluation. Masks are single-channel PNGs of class ids, with 255 meaning "ignore this
pixel". Text only here: the task decodes the files and checks each mask's values against the class
count with `mask_problem` as it reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from ..recipe import operators
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


# --- The recipe's reader: PaddleSeg transforms by name (Train.transforms / Eval.transforms) ------------
# Transforms that take the training input size get Global.image_size when the recipe leaves it out,
# so one key (-o Global.image_size=64) sizes a run as PaddleSeg's crop_size / target_size do.
SIZED = {"RandomPaddingCrop": "crop_size", "Resize": "target_size"}


def image_size(value, what: str = "Global.image_size") -> list[int]:
    """[width, height] from an int (a square) or a [width, height] pair, PaddleSeg's order."""
    size = [value, value] if isinstance(value, int) else value
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v >= 32 for v in size)):
        raise TrainError(f"{what}={value!r}: expected a size in pixels (at least 32), or [width, height]")
    return [int(size[0]), int(size[1])]


def transform_specs(section, size: list[int], what: str) -> list[tuple[str, dict]]:
    """(PaddleSeg transform name, keyword arguments) in the recipe's order. The section maps names to
    arguments, so `-o Train.transforms.RandomDistort.brightness_range=0.5` reaches one of them;
    null switches a transform off (`-o Train.transforms.RandomDistort=null`)."""
    specs = operators(section, what, "PaddleSeg", "transform", "{Resize: {target_size: [512, 512]}, Normalize: {}}")
    for name, kwargs in specs:
        if name in SIZED and kwargs.get(SIZED[name]) is None:
            kwargs[SIZED[name]] = list(size)
    return specs


def deploy_transforms(specs: list[tuple[str, dict]]) -> list[dict]:
    """The transforms in PaddleSeg's deploy.yaml form: [{type: Name, arg: value}, ...]."""
    return [{"type": name, **kwargs} for name, kwargs in specs]


# How an evaluation sample's transforms changed its shape, as PaddleSeg's `trans_info` (a list of
# ('resize' | 'padding', (height, width)) before each step), encoded as int rows (kind, h, w) so it
# travels through DataLoader workers and collates like the image does. A first row (steps, h, w)
# holds the count and the image's own size: Paddle cannot move an empty array between processes.
TRANS_KINDS = ("resize", "padding")


def encode_trans_info(trans_info: list, size: tuple[int, int]) -> list[list[int]]:
    return [[len(trans_info), int(size[0]), int(size[1])]] + [
        [TRANS_KINDS.index(kind), int(shape[0]), int(shape[1])] for kind, shape in trans_info]


def decode_trans_info(rows) -> list[tuple[str, tuple[int, int]]]:
    count = int(rows[0][0])
    return [(TRANS_KINDS[int(kind)], (int(h), int(w))) for kind, h, w in rows[1:1 + count]]
