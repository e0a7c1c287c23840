"""Classification datasets in flowers102 layout: jpg/ images plus train_list.txt (and val_list.txt)."""
from __future__ import annotations

from pathlib import Path

import random

from .images import png, rgb_png

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def flowers(root: Path, classes: int = 3, size: tuple[int, int] = (40, 32)) -> Path:
    """Four small images labelled 0..classes-1 in turn; returns root."""
    lines = []
    for i, colour in enumerate(COLOURS):
        name = f"jpg/image_{i + 1:05d}.png"
        png(root / name, *size, colour)
        lines.append(f"{name} {i % classes}")
    (root / "train_list.txt").write_text("\n".join(lines) + "\n")
    return root


# A learnable set: the class is the dominant colour of the image, under random brightness and
# per-pixel noise; nothing else tells the classes apart. Chance is 1 / len(LEARNABLE).
LEARNABLE = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (210, 210, 40)]


def learnable(root: Path, train_per_class: int = 16, val_per_class: int = 8, size: int = 40,
              seed: int = 7) -> Path:
    """train_list.txt and val_list.txt over noisy colour images, label_list.txt with their names."""
    rng = random.Random(seed)
    names = ["red", "green", "blue", "yellow"]
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        lines = []
        for label, colour in enumerate(LEARNABLE):
            for n in range(count):
                gain = rng.uniform(0.6, 1.2)
                pixels = [[tuple(max(0, min(255, int(c * gain + rng.gauss(0, 30)))) for c in colour)
                           for _ in range(size)] for _ in range(size)]
                name = f"jpg/{split}_{label}_{n:03d}.png"
                rgb_png(root / name, pixels)
                lines.append(f"{name} {label}")
        rng.shuffle(lines)
        (root / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    (root / "label_list.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(names)))
    return root
