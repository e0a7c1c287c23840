"""A tiny COCO instance-segmentation dataset (cocome layout), stdlib only: train/<i>.png and
annotations/instances_train.json with images, annotations (bbox + polygon segmentation), categories."""
from __future__ import annotations

import json
from pathlib import Path

from .images import png

CATEGORIES = ({"id": 1, "name": "cat"}, {"id": 2, "name": "dog"})
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def annotation(aid: int, image_id: int, category_id: int, x: float, y: float, w: float, h: float) -> dict:
    """An instance whose mask is the diamond inscribed in its box."""
    cx, cy = x + w / 2, y + h / 2
    return {"id": aid, "image_id": image_id, "category_id": category_id, "iscrowd": 0, "area": w * h / 2,
            "bbox": [x, y, w, h], "segmentation": [[cx, y, x + w, cy, cx, y + h, x, cy]]}


def document(images: int = 4, width: int = 48, height: int = 40, categories=CATEGORIES) -> dict:
    doc = {"images": [], "annotations": [], "categories": [dict(c) for c in categories]}
    aid = 1
    for i in range(images):
        doc["images"].append({"id": i + 1, "file_name": f"{i:06d}.png", "width": width, "height": height})
        for k in range(1 + i % 2):
            cat = categories[(i + k) % len(categories)]["id"]
            doc["annotations"].append(annotation(aid, i + 1, cat, 4 + 12 * k, 3 + 10 * k, 20, 16))
            aid += 1
    return doc


def write_json(root: Path, doc: dict, name: str = "annotations/instances_train.json") -> Path:
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def coco(root: Path, images: int = 4, width: int = 48, height: int = 40, categories=CATEGORIES,
         val: bool = False) -> Path:
    """Write the dataset under root (created); returns root. Image i has 1 + i % 2 instances. With
    val, the same images and instances again as the validation split (val/, instances_val.json)."""
    root = Path(root)
    doc = document(images, width, height, categories)
    for split in ("train", "val") if val else ("train",):
        for i, img in enumerate(doc["images"]):
            png(root / split / img["file_name"], width, height, COLOURS[i % len(COLOURS)])
        write_json(root, doc, f"annotations/instances_{split}.json")
    return root
