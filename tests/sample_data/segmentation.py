"""Semantic segmentation datasets in optic_disc_seg layout, standard library only: JPEGImages/*.png
(RGB), Annotations/*.png (8-bit grey masks of class ids, 255 = ignore) and list files of
`<image path> <mask path>` lines (train_list.txt, val_list.txt).

    python -m tests.sample_data.segmentation DIR [--images N] [--size PX] [--classes K] [--learnable]
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from tests.sample_data.images import grey_png, png, rgb_png

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def mask_pixels(size: int, index: int, classes: int) -> list[list[int]]:
    """Background 0, a square of class 1 + index % (classes - 1), and a 1-pixel ignore (255) border."""
    fg = 1 + index % max(1, classes - 1) if classes > 1 else 0
    lo, hi = size // 4, 3 * size // 4
    rows = []
    for y in range(size):
        if y in (0, size - 1):
            rows.append([255] * size)
        else:
            rows.append([255 if x in (0, size - 1) else (fg if lo <= x < hi and lo <= y < hi else 0)
                         for x in range(size)])
    return rows


def write(root: Path, images: int = 4, size: int = 32, classes: int = 2, list_file: str = "train_list.txt") -> Path:
    """Write the dataset under root; returns root."""
    root = Path(root)
    lines = []
    for i in range(images):
        image, mask = f"JPEGImages/N{i + 1:04d}.png", f"Annotations/N{i + 1:04d}.png"
        png(root / image, size, size, COLOURS[i % len(COLOURS)])
        grey_png(root / mask, mask_pixels(size, i, classes))
        lines.append(f"{image} {mask}")
    (root / list_file).write_text("\n".join(lines) + "\n")
    return root


# A learnable set: one red disc per image, of random size and place, on grey noise of random
# brightness; class 1 is the disc, 0 the background. Colour and shape tell them apart, nothing else.
DISC = (200, 60, 50)


def disc_mask(size: int, cx: float, cy: float, r: float) -> list[list[int]]:
    return [[1 if (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r else 0 for x in range(size)]
            for y in range(size)]


def learnable(root: Path, train: int = 32, val: int = 16, size: int = 64, seed: int = 11) -> Path:
    """train_list.txt and val_list.txt over noisy disc images and their masks; returns root."""
    rng = random.Random(seed)
    root = Path(root)
    for split, count in (("train", train), ("val", val)):
        lines = []
        for n in range(count):
            r = rng.uniform(size / 8, size / 4)
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            mask = disc_mask(size, cx, cy, r)
            grey, gain = rng.uniform(60, 190), rng.uniform(0.7, 1.2)
            pixels = [[tuple(max(0, min(255, int((c * gain if inside else grey) + rng.gauss(0, 25))))
                             for c in DISC) for inside in row] for row in mask]
            image, label = f"JPEGImages/{split}_{n:03d}.png", f"Annotations/{split}_{n:03d}.png"
            rgb_png(root / image, pixels)
            grey_png(root / label, mask)
            lines.append(f"{image} {label}")
        (root / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


def constant_miou(masks: list[list[list[int]]], classes: int = 2) -> float:
    """The mIoU of the best constant prediction (every pixel background): the chance level a
    segmenter has to beat. IoU of class 0 is its pixel share, of every other class 0."""
    pixels = [v for mask in masks for row in mask for v in row if v != 255]
    return pixels.count(0) / len(pixels) / classes


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--learnable", action="store_true", help="the disc set, with a validation split")
    args = p.parse_args()
    if args.learnable:
        print(learnable(args.directory, size=args.size))
    else:
        print(write(args.directory, args.images, args.size, args.classes))
