"""A tiny Pascal VOC detection dataset in the roadsign layout PaddleDetection uses, stdlib only:
images/road<i>.png, annotations/road<i>.xml, train.txt ('images/road0.png annotations/road0.xml')
and label_list.txt (one class per line)."""
from __future__ import annotations

from pathlib import Path

from .images import png

CLASSES = ("speedlimit", "crosswalk", "trafficlight", "stop")
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def annotation_xml(filename: str, width: int, height: int, objects: list[tuple[str, int, int, int, int]]) -> str:
    """A VOC annotation; objects are (class name, xmin, ymin, xmax, ymax)."""
    parts = ["<annotation>", "    <folder>images</folder>", f"    <filename>{filename}</filename>",
             "    <size>", f"        <width>{width}</width>", f"        <height>{height}</height>",
             "        <depth>3</depth>", "    </size>"]
    for name, x1, y1, x2, y2 in objects:
        parts += ["    <object>", f"        <name>{name}</name>", "        <difficult>0</difficult>",
                  "        <bndbox>", f"            <xmin>{x1}</xmin>", f"            <ymin>{y1}</ymin>",
                  f"            <xmax>{x2}</xmax>", f"            <ymax>{y2}</ymax>", "        </bndbox>",
                  "    </object>"]
    return "\n".join(parts + ["</annotation>"]) + "\n"


def voc(root: Path, images: int = 4, width: int = 48, height: int = 40, classes=CLASSES) -> Path:
    """Write the dataset under root (created); returns root. Image i has 1 + i % 2 objects."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(images):
        png(root / "images" / f"road{i}.png", width, height, COLOURS[i % len(COLOURS)])
        objects = [(classes[(i + k) % len(classes)], 4 + 10 * k, 3 + 8 * k, 24 + 10 * k, 20 + 8 * k)
                   for k in range(1 + i % 2)]
        (root / "annotations" / f"road{i}.xml").write_text(annotation_xml(f"road{i}.png", width, height, objects))
        lines.append(f"images/road{i}.png annotations/road{i}.xml")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "label_list.txt").write_text("\n".join(classes) + "\n")
    return root


def learnable(root: Path, train: int = 32, val: int = 16, size: int = 96, seed: int = 7) -> Path:
    """A detector's learnable set: one red square a picture (its side 25-45% of the image, anywhere)
    on grey noise, one class `square`; train.txt and valid.txt (roadsign's split names); returns root."""
    import random

    from .images import rgb_png
    rng = random.Random(seed)
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("valid", val)):
        lines = []
        for n in range(count):
            side = int(rng.uniform(0.25, 0.45) * size)
            x1, y1 = rng.randint(0, size - side), rng.randint(0, size - side)
            grey = rng.uniform(70, 170)
            pixels = [[(200, 40, 40) if x1 <= x < x1 + side and y1 <= y < y1 + side else
                       (int(grey),) * 3 for x in range(size)] for y in range(size)]
            pixels = [[tuple(max(0, min(255, c + int(rng.gauss(0, 20)))) for c in p) for p in row] for row in pixels]
            name = f"{split}_{n:03d}"
            rgb_png(root / "images" / f"{name}.png", pixels)
            (root / "annotations" / f"{name}.xml").write_text(
                annotation_xml(f"{name}.png", size, size, [("square", x1, y1, x1 + side, y1 + side)]))
            lines.append(f"images/{name}.png annotations/{name}.xml")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "label_list.txt").write_text("square\n")
    return root
