"""Detection samples in PaddleDetection's format (ppdet.data.source.voc / coco records), through its
sample operators (`ppdet.data.transform`, by name) and its batch collation (`ppdet.data.reader.BatchCompose`).
Ours: the loop that applies the operators, so a failure names the list line or the COCO image id, and
the synthetic images. Imports Paddle (paddle.io.Dataset); ppdet only when the operators are built."""
from __future__ import annotations

import copy

import numpy as np
import paddle

from ...datasets import coco, voc
from ...errors import TrainError


def build_ops(specs: list[dict], what: str, num_classes: int) -> list:
    from ppdet.data import transform
    ops = []
    for spec in specs:
        [(name, kwargs)] = spec.items()
        ctor = getattr(transform, name, None)
        if ctor is None or not isinstance(ctor, type):
            raise TrainError(f"{what}.{name}: ppdet.data.transform has no such operator")
        try:
            op = ctor(**kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            raise TrainError(f"{what}.{name}: {exc}") from None
        if hasattr(op, "num_classes"):
            op.num_classes = num_classes   # as ppdet's Compose does
        ops.append(op)
    return ops



def voc_record(sample: voc.Sample, index: int) -> dict:
    n = len(sample.boxes)
    return {"im_file": str(sample.image), "im_id": np.array([index]), "h": float(sample.height),
            "w": float(sample.width),
            "is_crowd": np.zeros((n, 1), "int32"),
            "gt_class": np.array([[b.label] for b in sample.boxes], "int32").reshape(-1, 1),
            "gt_bbox": np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in sample.boxes], "float32").reshape(-1, 4),
            "difficult": np.array([[int(b.difficult)] for b in sample.boxes], "int32").reshape(-1, 1)}


def coco_record(sample: coco.Sample, index: int) -> dict:
    n = len(sample.instances)
    return {"im_file": str(sample.image), "im_id": np.array([sample.id]), "h": float(sample.height),
            "w": float(sample.width),
            "is_crowd": np.zeros((n, 1), "int32"),
            "gt_class": np.array([[i.label] for i in sample.instances], "int32").reshape(-1, 1),
            "gt_bbox": np.array([i.bbox for i in sample.instances], "float32").reshape(-1, 4),
            "gt_poly": [[list(p) for p in i.polygons] for i in sample.instances]}


def synthetic_record(rng: np.random.Generator, index: int, size: int, classes: int, polygons: bool) -> dict:
    """A noise image with 1-4 flat-coloured boxes (an octagon inside each for the masks), PNG-encoded
    so it goes through Decode like a file."""
    import cv2
    image = rng.integers(0, 256, (size, size, 3), dtype="uint8")
    n = int(rng.integers(1, 5))
    wh = rng.uniform(0.15, 0.6, (n, 2)) * size
    xy = rng.uniform(0, 1, (n, 2)) * (size - wh)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype("float32")
    labels = rng.integers(0, classes, n).astype("int32")
    for (x1, y1, x2, y2), label in zip(boxes.astype(int), labels):
        image[y1:y2, x1:x2] = (37 * (label + 1)) % 256, (91 * (label + 1)) % 256, (151 * (label + 1)) % 256
    record = {"image": cv2.imencode(".png", image)[1].tobytes(), "im_id": np.array([index]),
              "h": float(size), "w": float(size), "is_crowd": np.zeros((n, 1), "int32"),
              "gt_class": labels.reshape(-1, 1), "gt_bbox": boxes,
              "difficult": np.zeros((n, 1), "int32")}
    if polygons:
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        record["gt_poly"] = [[np.stack([(x1 + x2) / 2 + (x2 - x1) / 2 * np.cos(angles),
                                        (y1 + y2) / 2 + (y2 - y1) / 2 * np.sin(angles)], 1).reshape(-1).tolist()]
                             for x1, y1, x2, y2 in boxes]
        record.pop("difficult")
    return record


class DetDataset(paddle.io.Dataset):
    """Records through PaddleDetection's sample operators; a failure names the list line (or the COCO
    image id) and the image."""

    def __init__(self, records: list[dict], where: list[str], ops: list, evaluation: bool = False):
        super().__init__()
        self.records, self.where, self.ops, self.evaluation = records, where, ops, evaluation

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        sample = copy.deepcopy(self.records[index])
        image = sample.get("im_file")
        for op in self.ops:
            try:
                sample = op(sample)
            except Exception as exc:
                if type(op).__name__ == "Decode":
                    raise TrainError(f"{self.where[index]}: cannot read image {image}") from None
                raise TrainError(f"{self.where[index]}: {image or 'synthetic image'}: {type(op).__name__} failed: "
                                 f"{type(exc).__name__} {exc}".rstrip()) from None
            if type(op).__name__ == "Decode" and not isinstance(sample.get("image"), np.ndarray):
                raise TrainError(f"{self.where[index]}: cannot read image {image}")
        sample["_eval"] = self.evaluation   # one collate_fn serves both loaders: which batch operators apply
        return sample


class Collate:
    """PaddleDetection's BatchCompose (the batch operators, then its collation: everything stacked, or
    with collate_batch false the ground truth kept as per-image lists)."""

    def __init__(self, ops: list[dict], classes: int, stack: bool):
        from ppdet.data.reader import BatchCompose
        self.compose = BatchCompose(ops, num_classes=classes, collate_batch=stack)

    def __call__(self, samples: list[dict]):
        return self.compose(samples)
