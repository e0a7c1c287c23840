"""A tiny semantic segmentation dataset in optic_disc_seg layout, standard library only:
JPEGImages/*.png (RGB), Annotations/*.png (8-bit grey masks of class ids, 255 = ignore) and a
train_list.txt of `<image path> <mask path>` lines.

    python -m tests.sample_data.segmentation DIR [--images N] [--size PX] [--classes K]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tests.sample_data.images import grey_png, png

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


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--classes", type=int, default=2)
    args = p.parse_args()
    print(write(args.directory, args.images, args.size, args.classes))
