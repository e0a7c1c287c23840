"""COCO instance-segmentation datasets (COCO 2017 / PaddleDetection's cocome layout):

    annotations/instances_train.json   {"images": [{"id", "file_name", "width", "height"}],
                                        "annotations": [{"id", "image_id", "category_id",
                                                         "bbox": [x, y, w, h],
                                                         "segmentation": [[x1, y1, x2, y2, ...]],
                                                         "iscrowd": 0}],
                                        "categories": [{"id", "name"}]}
    train/<file_name>                  the images (the directory is DataLoader.image_dir)

Checked before training; errors name the JSON file and the offending image or annotation id (and
the line for JSON syntax errors). Like PaddleDetection's COCODataSet: crowd annotations and boxes of
zero width or height are skipped, so are images left without instances; categories map to class
indices in the order of their ids."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainError
from . import data_root, required_file


@dataclass(frozen=True)
class Instance:
    bbox: tuple[float, float, float, float]      # x1, y1, x2, y2 in pixels, clipped to the image
    label: int                                   # class index (categories in id order)
    polygons: tuple[tuple[float, ...], ...]      # each x1, y1, x2, y2, ... in pixels
    id: int


@dataclass(frozen=True)
class Sample:
    image: Path
    width: int
    height: int
    instances: tuple[Instance, ...]
    id: int


@dataclass
class COCODataset:
    classes: list[str]
    samples: list[Sample]
    annotations: Path
    skipped: int = 0            # crowd and zero-size annotations

    def describe(self) -> str:
        count = sum(len(s.instances) for s in self.samples)
        return (f"{len(self.samples)} images, {count} instances, {len(self.classes)} classes "
                f"from COCO {self.annotations.name}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value) -> bool:
    return _is_number(value) and float(value) == int(value)


def check(recipe: dict, root: str | Path, command: str = "train") -> None:
    """The annotation files a command reads, parsed before Paddle is imported: training reads the
    training instances and, when present, the validation ones; eval needs the latter."""
    loader = recipe["DataLoader"]
    val, val_dir = loader.get("val_annotations"), loader.get("val_image_dir") or loader["image_dir"]
    if command == "eval":
        coco_dataset(root, val or "annotations/instances_val.json", val_dir)
        return
    coco_dataset(root, loader["annotations"], loader["image_dir"])
    if val and (data_root(root) / val).is_file():
        coco_dataset(root, val, val_dir)


@functools.lru_cache(maxsize=8)   # the check before Paddle and the task read the same files: parse once
def coco_dataset(root: str | Path, annotations: str = "annotations/instances_train.json",
                 image_dir: str = "train") -> COCODataset:
    root = data_root(root)
    path = required_file(root, annotations, "a COCO dataset needs an instances JSON file "
                                            "(images, annotations with bbox and polygon segmentation, categories); "
                                            "set its path with -o DataLoader.annotations=FILE")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrainError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainError(f"{path}: cannot read: {exc}") from None
    if not isinstance(doc, dict):
        raise TrainError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise TrainError(f"{path}: no '{key}' list; a COCO instances file has 'images', 'annotations' "
                             f"and 'categories'")

    names: dict[int, str] = {}
    for n, cat in enumerate(doc["categories"]):
        where = f"categories[{n}]"
        if not isinstance(cat, dict) or not _integer(cat.get("id")):
            raise TrainError(f"{path}: {where}: expected an object with an integer 'id' and a 'name'")
        cid = int(cat["id"])
        if cid in names:
            raise TrainError(f"{path}: category id {cid} appears twice")
        names[cid] = str(cat.get("name", cid))
    if not names:
        raise TrainError(f"{path}: 'categories' is empty")
    label = {cid: i for i, cid in enumerate(sorted(names))}

    images_dir = root / image_dir
    if not images_dir.is_dir():
        raise TrainError(f"{images_dir}: missing; the images of {path.name} go there "
                         f"(or set the directory with -o DataLoader.image_dir=DIR)")
    images: dict[int, tuple[Path, int, int]] = {}
    for n, img in enumerate(doc["images"]):
        if not isinstance(img, dict) or not _integer(img.get("id")):
            raise TrainError(f"{path}: images[{n}]: expected an object with an integer 'id'")
        iid = int(img["id"])
        where = f"image id {iid}"
        if iid in images:
            raise TrainError(f"{path}: {where} appears twice")
        for key in ("file_name", "width", "height"):
            if key not in img:
                raise TrainError(f"{path}: {where}: missing '{key}'")
        width, height = img["width"], img["height"]
        if not (_integer(width) and _integer(height) and width > 0 and height > 0):
            raise TrainError(f"{path}: {where}: width {width!r} and height {height!r} must be positive integers")
        file = images_dir / str(img["file_name"])
        if not file.is_file():
            raise TrainError(f"{path}: {where}: {image_dir}/{img['file_name']} not found under {root}")
        images[iid] = (file, int(width), int(height))

    instances: dict[int, list[Instance]] = {iid: [] for iid in images}
    skipped = 0
    seen: set[int] = set()
    for n, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict) or not _integer(ann.get("id")):
            raise TrainError(f"{path}: annotations[{n}]: expected an object with an integer 'id'")
        aid = int(ann["id"])
        where = f"annotation id {aid}"
        if aid in seen:
            raise TrainError(f"{path}: {where} appears twice")
        seen.add(aid)
        if not _integer(ann.get("image_id")) or ann["image_id"] not in images:
            raise TrainError(f"{path}: {where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if not _integer(ann.get("category_id")) or ann["category_id"] not in names:
            raise TrainError(f"{path}: {where}: category_id {ann.get('category_id')!r} is not in 'categories' "
                             f"(known: {', '.join(str(c) for c in sorted(names))})")
        if ann.get("iscrowd", 0):
            skipped += 1          # crowd regions are RLE masks; not instances to learn
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise TrainError(f"{path}: {where}: 'bbox' must be [x, y, width, height], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise TrainError(f"{path}: {where}: bbox {bbox} has a negative width or height")
        _, width, height = images[ann["image_id"]]
        x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
        if x2 <= x1 or y2 <= y1:
            skipped += 1          # zero-size boxes (COCO 2017 has a few): skipped, as PaddleDetection does
            continue
        segm = ann.get("segmentation")
        if isinstance(segm, dict):
            raise TrainError(f"{path}: {where}: RLE segmentation in a non-crowd annotation; "
                             f"Mask R-CNN training here needs polygons [[x1, y1, x2, y2, ...], ...]")
        if not (isinstance(segm, list) and segm and all(
                isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_is_number(v) for v in p)
                for p in segm)):
            raise TrainError(f"{path}: {where}: 'segmentation' must be a list of polygons "
                             f"[[x1, y1, x2, y2, x3, y3, ...], ...] (at least 3 points each)")
        instances[ann["image_id"]].append(Instance(
            (x1, y1, x2, y2), label[ann["category_id"]], tuple(tuple(float(v) for v in p) for p in segm), aid))

    samples = [Sample(file, width, height, tuple(instances[iid]), iid)
               for iid, (file, width, height) in images.items() if instances[iid]]
    if not samples:
        raise TrainError(f"{path}: no image has an annotated (non-crowd, non-empty) instance to train on")
    return COCODataset([names[c] for c in sorted(names)], samples, path, skipped)
