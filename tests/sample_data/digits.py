"""A small real dataset as a classification list: scikit-learn's handwritten digits (the UCI optical
recognition set's 1797 test images, 8x8 grey, 10 classes), which the scikit-learn wheel ships, so
nothing is downloaded. Written as 32x32 PNGs (each pixel a 4x4 block) in the flowers102 layout.

The split is scikit-learn's own example's ("Recognizing hand-written digits"): the first half for
training (898 images), the second for validation (899). Its published result on this split is a
support-vector classifier's 0.97 accuracy. 898 = 14 x 64 + 2: in batches of 64 an epoch ends on a
batch of 2, the case that made the engine learn far worse than a plain loop (issue 19)."""
from __future__ import annotations

from pathlib import Path

from .images import rgb_png

SIZE = 32
TRAIN = 898          # the example's train_test_split(test_size=0.5, shuffle=False)
PUBLISHED = 0.97     # scikit-learn's example: SVC(gamma=0.001) on the second half


def digits(root: Path, scale: int = SIZE // 8) -> Path:
    """train_list.txt (898), val_list.txt (899) and label_list.txt ('0 zero' ...); returns root."""
    from sklearn.datasets import load_digits   # the host's test tools (requirements/host.txt)
    data = load_digits()
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for i, (image, label) in enumerate(zip(data.images, data.target)):
        split = "train" if i < TRAIN else "val"
        rows = [[(v, v, v) for v in (int(x * 255 / 16) for x in row) for _ in range(scale)]
                for row in image for _ in range(scale)]
        name = f"images/{split}_{i:04d}.png"
        rgb_png(root / name, rows)
        lines[split].append(f"{name} {int(label)}")
    for split, entries in lines.items():
        (root / f"{split}_list.txt").write_text("\n".join(entries) + "\n")
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (root / "label_list.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names)))
    return root
