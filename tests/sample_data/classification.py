"""A classification dataset in flowers102 layout: jpg/ images plus train_list.txt."""
from __future__ import annotations

from pathlib import Path

from .images import png

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
