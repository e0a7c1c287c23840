"""Object detection (YOLOv3, task `detection`, VOC) and instance segmentation (Mask R-CNN, task
`instance-segmentation`, COCO) the way PaddleDetection trains them (configs/yolov3/*_270e_voc.yml with
_base_/yolov3_reader.yml; configs/mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yml with _base_/mask_fpn_reader.yml).

From the PyPI wheel: the architectures (kunlun_train/configs/paddledet/*.yml, the upstream _base_ model
files, loaded with `ppdet.core.workspace.load_config` and built with `create`), their losses and their
post-processing (YOLOBox + MultiClassNMS; the R-CNN BBoxPostProcess and MaskPostProcess); the data
operators by their names (`ppdet.data.transform.operators`: Decode, RandomDistort, RandomExpand,
RandomCrop, RandomFlip, RandomResize, Resize, NormalizeBox, PadBox, BboxXYXY2XYWH, NormalizeImage,
Permute; `batch_operators`: BatchRandomResize, Gt2YoloTarget, PadBatch) with ppdet's own batch
collation (`ppdet.data.reader.BatchCompose`); the VOC metric (`ppdet.metrics.VOCMetric` and its
DetectionMAP, 11-point mAP@0.5, difficult boxes excluded) and the COCO metric's pieces
(`ppdet.metrics.coco_utils.get_infer_results` and `cocoapi_eval`, pycocotools). From Paddle:
DataLoader, optimizer and schedule (engine), paddle.jit.save. Ours: the dataset readers (datasets/voc.py,
datasets/coco.py: ppdet's VOCDataSet/COCODataSet skip bad lines with a warning instead of naming
them), the loop that applies the sample operators (so a failure names the list line), synthetic data,
the metrics' merge across ranks, and the export wrapper (image, im_shape, scale_factor in, boxes out)."""
from __future__ import annotations

import contextlib
import copy
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import paddle

from ..datasets import coco, voc
from ..errors import TrainError
from ..recipe import operators
from . import Metric
from . import Task as BaseTask

warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "paddledet"
ARCHITECTURES = {"detection": "YOLOv3", "instance-segmentation": "MaskRCNN"}
# Printed by `import ppdet` for optional packages it never needs here (tracking, MOT metrics).
_IMPORT_NOISE = ("Warning: Unable to use",)
# The operators whose size a recipe may leave to Global.image_size, and the form each takes it in.
SIZED = {"Resize": lambda s: [s, s], "BatchRandomResize": lambda s: [s], "RandomResize": lambda s: [[s, s]]}


def import_ppdet():
    """`import ppdet` imports every submodule; some print notices about optional extras."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        import ppdet  # noqa: F401
        from ppdet.core import workspace
    for line in (out.getvalue() + err.getvalue()).splitlines():
        if line.strip() and not line.startswith(_IMPORT_NOISE):
            print(line, file=sys.stderr)
    import logging
    logging.getLogger("ppdet").setLevel(logging.WARNING)
    return workspace


def config_path(name: str) -> Path:
    path = CONFIGS / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIGS.glob("*.yml")))
        raise TrainError(f"Arch.config={name!r}: no such config in this image (known: {known})")
    return path


def transform_specs(section, size: int | None, what: str) -> list[dict]:
    """The recipe's operators as PaddleDetection's reader lists them ([{Name: {args}}, ...]), in the
    recipe's order. The section maps names to arguments, so `-o Train.sample_transforms.RandomFlip.prob=0`
    reaches one; null switches one off. Resize / BatchRandomResize / RandomResize without a
    target_size take Global.image_size."""
    specs = []
    for name, kwargs in operators(section, what, "PaddleDetection", "operator",
                                  "{Decode: {}, Resize: {target_size: [608, 608], keep_ratio: false}}"):
        if name in SIZED and kwargs.get("target_size") is None:
            if not size:
                raise TrainError(f"{what}.{name}: no target_size and no Global.image_size")
            kwargs["target_size"] = SIZED[name](int(size))
        specs.append({name: kwargs})
    return specs


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


# --- records in PaddleDetection's sample format (ppdet.data.source.voc / coco) ----------------------

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


def _numpy(value):
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


class VOCMap(Metric):
    """PaddleDetection's VOC metric (ppdet.metrics.VOCMetric: per-class score/true-positive lists and
    ground-truth counts in its DetectionMAP, 11-point interpolated mAP at IoU 0.5, difficult boxes
    excluded). The lists concatenate and the counts add across ranks: the merge is exact."""

    def __init__(self, label_list: Path, classes: int, overlap: float, map_type: str):
        from ppdet.metrics import VOCMetric
        self.voc = VOCMetric(label_list=str(label_list), class_num=classes, overlap_thresh=overlap,
                             map_type=map_type, evaluate_difficult=False)

    def update(self, outputs, batch) -> None:
        self.voc.update(batch, {"bbox": _numpy(outputs["bbox"]), "bbox_num": _numpy(outputs["bbox_num"])})

    def state(self):
        dm = self.voc.detection_map
        return dm.class_score_poss, dm.class_gt_counts

    def merge(self, states: list) -> dict[str, float]:
        dm = self.voc.detection_map
        dm.reset()
        for poss, counts in states:
            for c in range(dm.class_num):
                dm.class_score_poss[c] += poss[c]
                dm.class_gt_counts[c] += counts[c]
        dm.accumulate()
        return {"mAP": float(dm.get_map())}


class COCOAP(Metric):
    """PaddleDetection's COCO metric: the detections as COCO results (coco_utils.get_infer_results,
    category ids from the annotation file), evaluated with pycocotools through coco_utils.cocoapi_eval
    against DataLoader.val_annotations; bbox AP and, with masks, segm AP (AP@[.5:.95]). Each rank's
    results are concatenated before evaluation."""

    def __init__(self, annotations: Path, clsid2catid: dict):
        self.annotations, self.clsid2catid = annotations, clsid2catid
        self.results = {"bbox": [], "mask": []}

    def update(self, outputs, batch) -> None:
        from ppdet.metrics.coco_utils import get_infer_results
        outs = {k: _numpy(v) for k, v in outputs.items()}
        outs["im_id"] = _numpy(batch["im_id"])
        found = get_infer_results(outs, self.clsid2catid)
        for key in self.results:
            self.results[key] += found.get(key, [])

    def state(self):
        return self.results

    def merge(self, states: list) -> dict[str, float]:
        from ppdet.metrics.coco_utils import cocoapi_eval
        results = {"bbox": [], "mask": []}
        for state in states:
            for key in results:
                results[key] += state[key]
        out = {}
        for key, style, name in (("bbox", "bbox", "bbox_AP"), ("mask", "segm", "segm_AP")):
            rows = [r for r in results[key] if r.get("category_id", -1) in self.clsid2catid.values()]
            if not rows:
                out[name], out[f"{name}50"] = 0.0, 0.0
                continue
            with contextlib.redirect_stdout(io.StringIO()):   # pycocotools' summary table
                stats = cocoapi_eval(rows, style, anno_file=str(self.annotations))
            out[name], out[f"{name}50"] = float(max(0.0, stats[0])), float(max(0.0, stats[1]))
        return out


class Deploy(paddle.nn.Layer):
    """The inference model PaddleDetection's export writes: image, im_shape and scale_factor in;
    boxes [N, 6] (class, score, x1, y1, x2, y2 in the original image's pixels), boxes per image, and
    for Mask R-CNN the masks [N, H, W] out; post-processed by the model's own NMS."""

    def __init__(self, model, masks: bool):
        super().__init__()
        self.model, self.masks = model, masks

    def forward(self, image, im_shape, scale_factor):
        out = self.model({"image": image, "im_shape": im_shape, "scale_factor": scale_factor})
        return [out["bbox"], out["bbox_num"], out["mask"]] if self.masks else [out["bbox"], out["bbox_num"]]


class Task(BaseTask):
    unit = "images/s"
    # The route needs data/transform's operators, not ppdet's models, trackers and metrics the inits
    # import (pycocotools, matplotlib, pandas, scikit-learn).
    serve_without_init = ("ppdet", "ppdet.data", "ppdet.modeling", "ppdet.data.transform")

    def __init__(self, recipe: dict, data: str | None, world):
        super().__init__(recipe, data, world)
        g, arch, loader = recipe["Global"], recipe["Arch"], recipe["DataLoader"]
        self.kind = recipe.get("Bundle", {}).get("task", "detection")
        if self.kind not in ARCHITECTURES:
            raise TrainError(f"task {self.kind!r}: this adapter serves {', '.join(ARCHITECTURES)}")
        self.masks = self.kind == "instance-segmentation"
        self.primary = "bbox_AP" if self.masks else "mAP"
        self.config = config_path(str(arch["config"]))
        self.size = g.get("image_size")
        self.train_samples = self.eval_samples = None
        self.classes = int(arch["num_classes"])
        self.class_names: list[str] | None = None
        self.eval_annotations = None
        if data:   # parsed now: a bad layout fails before Paddle builds anything
            if self.masks:
                train = coco.coco_dataset(data, loader["annotations"], loader["image_dir"])
                self.train_samples, self.class_names, self.train_where = train.samples, train.classes, train.annotations
                if loader.get("val_annotations") and (Path(data) / loader["val_annotations"]).is_file():
                    val = coco.coco_dataset(data, loader["val_annotations"], loader.get("val_image_dir") or loader["image_dir"])
                    self.eval_samples, self.eval_annotations = val.samples, val.annotations
            else:
                train = voc.voc_dataset(data, loader["train_list"], loader["label_list"])
                self.train_samples, self.class_names, self.train_where = train.samples, train.classes, train.list_file
                if loader.get("val_list") and (Path(data) / loader["val_list"]).is_file():
                    val = voc.voc_dataset(data, loader["val_list"], loader["label_list"])
                    self.eval_samples, self.eval_where = val.samples, val.list_file
            self.classes = len(self.class_names)   # the dataset's classes decide
        if self.classes < 1:
            raise TrainError(f"Arch.num_classes={self.classes}: must be at least 1")
        self.train_specs = transform_specs(recipe.get("Train", {}).get("sample_transforms"), self.size,
                                           "Train.sample_transforms")
        self.train_batch_specs = transform_specs(recipe.get("Train", {}).get("batch_transforms"), self.size,
                                                 "Train.batch_transforms")
        self.eval_specs = transform_specs(recipe.get("Eval", {}).get("sample_transforms"), self.size,
                                          "Eval.sample_transforms")
        self.eval_batch_specs = transform_specs(recipe.get("Eval", {}).get("batch_transforms"), self.size,
                                                "Eval.batch_transforms")
        self._cfg = None

    # --- the suite's config ----------------------------------------------------------------------
    def cfg(self):
        if self._cfg is None:
            workspace = import_ppdet()
            cfg = workspace.load_config(str(self.config))
            workspace.merge_config({"num_classes": self.classes})
            if cfg.architecture != ARCHITECTURES[self.kind]:
                raise TrainError(f"Arch.config={self.config.name!r} builds {cfg.architecture}; task {self.kind} "
                                 f"needs a {ARCHITECTURES[self.kind]} config")
            self._cfg = cfg
        return self._cfg

    def _fill_yolo_targets(self, specs: list[dict]) -> list[dict]:
        """Gt2YoloTarget takes the head's anchors and the loss's downsample ratios unless given (the
        reader file repeats them from the model file upstream)."""
        cfg = self.cfg()
        out = []
        for spec in specs:
            [(name, kwargs)] = spec.items()
            if name == "Gt2YoloTarget":
                kwargs = {"anchors": cfg["YOLOv3Head"]["anchors"], "anchor_masks": cfg["YOLOv3Head"]["anchor_masks"],
                          "downsample_ratios": cfg["YOLOv3Loss"]["downsample"], "num_classes": self.classes, **kwargs}
            out.append({name: kwargs})
        return out

    # --- data --------------------------------------------------------------------------------
    def datasets(self):
        self.cfg()
        train_ops = build_ops(self.train_specs, "Train.sample_transforms", self.classes)
        eval_ops = build_ops(self.eval_specs, "Eval.sample_transforms", self.classes)
        if self.train_samples is None:
            seed = int(self.recipe["Global"].get("seed", 0))
            count = int(self.recipe["Global"].get("synthetic_samples", 16))
            rng = np.random.default_rng(seed)
            size = int(self.size or 320)
            records = [synthetic_record(rng, i, size, self.classes, self.masks) for i in range(count)]
            return DetDataset(records, [f"synthetic image {i}" for i in range(count)], train_ops), None
        make = coco_record if self.masks else voc_record
        where = (lambda s: f"{self.train_where}: image id {s.id}") if self.masks else \
            (lambda s: f"{self.train_where}:{s.line}")
        train = DetDataset([make(s, i) for i, s in enumerate(self.train_samples)],
                           [where(s) for s in self.train_samples], train_ops)
        evaluation = None
        if self.eval_samples:
            where = (lambda s: f"{self.eval_annotations}: image id {s.id}") if self.masks else \
                (lambda s: f"{self.eval_where}:{s.line}")
            evaluation = DetDataset([make(s, i) for i, s in enumerate(self.eval_samples)],
                                    [where(s) for s in self.eval_samples], eval_ops, evaluation=True)
        return train, evaluation

    def describe_data(self) -> str:
        if self.train_samples is None:
            return "synthetic"
        if self.masks:
            count = sum(len(s.instances) for s in self.train_samples)
            text = (f"{len(self.train_samples)} images, {count} instances, {self.classes} classes from COCO "
                    f"{Path(self.recipe['DataLoader']['annotations']).name}")
        else:
            boxes = sum(len(s.boxes) for s in self.train_samples)
            text = f"{len(self.train_samples)} images, {boxes} boxes, {self.classes} classes from a VOC list file"
        return text + (f"; {len(self.eval_samples)} for validation" if self.eval_samples else "")

    def collate_fn(self):
        """Training: the recipe's batch operators, stacked (YOLO: every field is padded to 50 boxes) or,
        for Mask R-CNN, ground truth kept per image (its reader's collate_batch: false). Evaluation:
        its batch operators, ground truth per image (what the metrics read)."""
        self.cfg()
        specs = self.train_batch_specs if self.masks else self._fill_yolo_targets(self.train_batch_specs)
        train = Collate(specs, self.classes, stack=not self.masks)
        evaluation = Collate(self.eval_batch_specs, self.classes, stack=False)

        def collate(samples):
            chosen = evaluation if samples[0].pop("_eval") else train
            for sample in samples[1:]:
                sample.pop("_eval")
            return chosen(samples)
        return collate

    def samples(self, batch) -> float:
        return float(batch["image"].shape[0])

    def batch_bytes(self) -> int:
        size = int(self.size or 608)
        return int(self.recipe["DataLoader"]["batch_size"]) * size * size * 3 * 4 * 2

    # --- model and loss ------------------------------------------------------------------------
    def build_model(self):
        cfg = self.cfg()   # first: it imports ppdet quietly
        from ppdet.core import workspace
        return workspace.create(cfg.architecture)

    def loss(self, model, batch):
        return model(batch)["loss"]

    # --- checkpoints: the class names travel with the weights --------------------------------------
    LABELS = "label_list.txt"

    def save_extra(self, directory) -> None:
        """label_list.txt beside the weights (and the exported model): `export` and `eval` of a
        checkpoint build the head for its classes without the dataset."""
        names = self.class_names or [str(i) for i in range(self.classes)]
        (Path(directory) / self.LABELS).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")

    def load_extra(self, directory) -> None:
        file = Path(directory) / self.LABELS
        if file.is_file() and self.train_samples is None:
            names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
            if names and self._cfg is None:
                self.class_names, self.classes = names, len(names)

    # --- evaluation ----------------------------------------------------------------------------
    def metric(self) -> Metric:
        if self.masks:
            from ppdet.data.source.category import get_categories
            with contextlib.redirect_stdout(io.StringIO()):   # pycocotools says it is loading the file
                clsid2catid, _ = get_categories("COCO", str(self.eval_annotations))
            return COCOAP(self.eval_annotations, clsid2catid)
        m = self.recipe.get("Metric", {})
        return VOCMap(Path(self.data) / self.recipe["DataLoader"]["label_list"], self.classes,
                      float(m.get("overlap_thresh", 0.5)), str(m.get("map_type", "11point")))

    def evaluate_batch(self, model, batch):
        return model(batch)

    def predictions(self, outputs, batch) -> list[dict]:
        bbox, nums = _numpy(outputs["bbox"]), _numpy(outputs["bbox_num"])
        out, start = [], 0
        for im_id, n in zip(_numpy(batch["im_id"]).reshape(-1), nums):
            rows = bbox[start:start + int(n)]
            start += int(n)
            sample = self.eval_samples[int(im_id)] if not self.masks else \
                next(s for s in self.eval_samples if s.id == int(im_id))
            out.append({"input": str(sample.image.relative_to(self.data)),
                        "boxes": [self._box(r) for r in rows if r[0] >= 0]})
        return out

    def _box(self, row) -> dict:
        label = int(row[0])
        name = self.class_names[label] if self.class_names and 0 <= label < len(self.class_names) else None
        return {"class": label, **({"name": name} if name else {}), "score": round(float(row[1]), 5),
                "box": [round(float(v), 2) for v in row[2:6]]}

    # --- export and prediction ------------------------------------------------------------------
    def input_spec(self) -> list:
        spec = paddle.static.InputSpec
        return [spec([None, 3, None, None], "float32", "image"), spec([None, 2], "float32", "im_shape"),
                spec([None, 2], "float32", "scale_factor")]

    def export_layer(self, model):
        return Deploy(model, self.masks)

    def inference_config(self) -> dict:
        """PaddleDetection's infer_cfg.yml (ppdet/engine/export_utils.py): the evaluation preprocessing
        without Decode, the label list, the metric and the architecture family."""
        return {"mode": "paddle", "draw_threshold": 0.5, "metric": "COCO" if self.masks else "VOC",
                "use_dynamic_shape": self.masks, "arch": "MaskRCNN" if self.masks else "YOLO",
                "min_subgraph_size": 3 if not self.masks else 40,
                "Preprocess": [{"type": name, **kwargs} for spec in self.eval_specs for name, kwargs in spec.items()
                               if name != "Decode"]
                + [{"type": "PadStride", "stride": kwargs.get("pad_to_stride", 0)}   # what export_utils writes for it
                   for spec in self.eval_batch_specs for name, kwargs in spec.items() if name == "PadBatch"],
                "label_list": self.class_names or [str(i) for i in range(self.classes)],
                "outputs": ["bbox", "bbox_num", "mask"] if self.masks else ["bbox", "bbox_num"]}

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """PaddleDetection's deploy pipeline (Inference) on each file; for Mask R-CNN each image's
        instance masks are also written as a PNG of instance ids (0 = background) in the image's own size."""
        import base64
        inference = Inference(config, labels, getattr(args, "threshold", None))
        where = None
        roots = [Path(p) for p in args.input if Path(p).is_dir()]
        for path in files:
            prepared = inference.preprocess(path.read_bytes(), f"--input {path}")
            result, line = inference.postprocess(
                predictor.named({n: prepared[n] for n in inference.input_names}), prepared)
            if "mask_png" in result:
                from .segmentation import mask_name, masks_directory
                where = where or masks_directory(args)
                target = where / mask_name(path, roots)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(result.pop("mask_png")))
                result["mask"] = str(target)
                line += f" | mask {target}"
            yield path, result, line

    @staticmethod
    def inference(config: dict, directory: Path | None = None, labels: dict | None = None) -> "Inference":
        """The predict route's pipeline for the export with `config` (its inference.yml)."""
        return Inference(config, labels)


class Inference:
    """PaddleDetection's deploy pipeline (deploy/python/infer.py) around the exported model: Decode,
    infer_cfg's Preprocess operators (PadStride: the wheel's PadBatch on one image), the model (its NMS
    inside) on image, im_shape and scale_factor, the boxes at or above the threshold (draw_threshold
    unless given); with masks (Mask R-CNN) one PNG of instance ids (n = the n-th box, 0 = background)
    in the image's own size, in base64 under "mask_png" (predict writes it to a file). `predict` and
    the server's predict route both run this. The route takes a JSON body's "threshold" too."""

    input_name = "image"
    input_names = ("image", "im_shape", "scale_factor")
    options = {"threshold": float}

    def __init__(self, config: dict, labels: dict | None = None, threshold: float | None = None):
        if "ppdet" not in sys.modules:   # else `serve` imported it without its init (imports.py)
            import_ppdet()
        from ppdet.data.transform import batch_operators, operators
        self.ops = [operators.Decode()]
        self.size, self.stride = None, 0
        for item in config.get("Preprocess", []):
            item = dict(item)
            name = item.pop("type")
            if name == "PadStride":   # the deploy tool's name for the reader's PadBatch: the wheel's PadBatch on one image
                pad = batch_operators.PadBatch(pad_to_stride=int(item.get("stride", 0)))
                self.ops.append(lambda sample, pad=pad: pad([sample])[0])
                self.stride = int(item.get("stride", 0))
            else:
                if name == "Resize":
                    self.size = [int(v) for v in item["target_size"]]
                self.ops.append(getattr(operators, name)(**item))
        self.names = labels or dict(enumerate(config.get("label_list") or []))
        self.threshold = float(threshold or config.get("draw_threshold", 0.5))
        self.masks = "mask" in config.get("outputs", []) or config.get("arch") == "MaskRCNN"

    def preprocess(self, data: bytes, what: str) -> dict:
        sample = {"image": data}   # Decode reads the bytes under "image" (else the file im_file names)
        try:
            for op in self.ops:
                sample = op(sample)
        except Exception:
            raise TrainError(f"{what}: cannot read it as an image") from None
        if not isinstance(sample.get("image"), np.ndarray):
            raise TrainError(f"{what}: cannot read it as an image")
        return {"image": sample["image"][np.newaxis].astype("float32"),
                "im_shape": np.asarray(sample["im_shape"], "float32")[np.newaxis],
                "scale_factor": np.asarray(sample["scale_factor"], "float32")[np.newaxis],
                "h": int(sample["h"]), "w": int(sample["w"])}

    def postprocess(self, outputs: dict, prepared: dict) -> tuple[dict, str]:
        values = list(outputs.values())
        bbox, nums = values[0], values[1]
        threshold = self.threshold if prepared.get("threshold") is None else float(prepared["threshold"])
        rows = bbox[:int(nums[0])] if len(nums) else bbox[:0]
        keep = [i for i, r in enumerate(rows) if r[0] >= 0 and r[1] >= threshold]
        boxes = []
        for i in keep:
            label = int(rows[i][0])
            box = {"class": label, "score": round(float(rows[i][1]), 5),
                   "box": [round(float(v), 2) for v in rows[i][2:6]]}
            if label in self.names:
                box["name"] = self.names[label]
            boxes.append(box)
        result = {"boxes": boxes}
        if self.masks or len(values) > 2:
            import base64
            import io
            from PIL import Image
            masks = values[2][:int(nums[0])] if len(nums) else values[2][:0]
            ids = np.zeros((prepared["h"], prepared["w"]), "uint8")
            for n, i in enumerate(keep, 1):
                ids[np.asarray(masks[i])[:ids.shape[0], :ids.shape[1]] > 0] = n
                boxes[n - 1]["mask_pixels"] = int((np.asarray(masks[i]) > 0).sum())
            buffer = io.BytesIO()
            Image.fromarray(ids).save(buffer, format="PNG")
            result["mask_png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        top = sorted(boxes, key=lambda b: -b["score"])[:5]
        summary = "; ".join(f"{b.get('name', b['class'])} {b['score']:.2f} "
                            f"[{', '.join(f'{v:.0f}' for v in b['box'])}]" for b in top) or "no boxes"
        summary += f"; {len(boxes) - len(top)} more" if len(boxes) > len(top) else ""
        return result, f"{len(boxes)} boxes (score >= {threshold:g}): {summary}"

    def example(self, rows: int) -> dict[str, np.ndarray]:
        h, w = ((-(-v // self.stride) * self.stride if self.stride > 0 else v) for v in (self.size or (608, 608)))
        return {"image": np.zeros((rows, 3, h, w), "float32"),
                "im_shape": np.tile(np.array([[h, w]], "float32"), (rows, 1)),
                "scale_factor": np.ones((rows, 2), "float32")}
