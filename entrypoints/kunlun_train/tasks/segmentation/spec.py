"""Semantic segmentation (PaddleSeg), Paddle-free: its Spec, the recipe's transforms by name and the
input size they take, and the encoding of an evaluation sample's shape changes that the adapter
(adapter.py) moves through DataLoader workers. The list reader is datasets/segmentation.py."""
from __future__ import annotations

from ...errors import TrainError
from ...recipe import operators
from ..contract import Spec

SPECS = {
    "segmentation": Spec(
        "segmentation", "Task",
        "a directory with train_list.txt (and val_list.txt for evaluation): '<image path> <label mask path>' "
        "lines, masks single-channel PNGs of class ids, 255 = ignore (optic_disc_seg / PaddleSeg style)",
        {"DataLoader": {"train_list": "train_list.txt", "val_list": "val_list.txt"}}),
}


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
