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
the metrics' merge across ranks, and the export wrapper (image, im_shape, scale_factor in, boxes out).

Two tasks, two classes over one base (Detection): YOLOv3 (VOC lists, mAP, every field stacked) and
MaskRCNN (COCO annotations, bbox and segm AP, ground truth per image, masks out of the export); what
differs between them is a class attribute or a method, so the base never asks which one it is.
data.py holds the samples and batches, metrics.py the metrics, inference.py the deploy pipeline."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import paddle

from ...datasets import coco, voc
from ...errors import TrainError
from ..contract import Metric, Task as BaseTask
from .data import Collate, DetDataset, build_ops, coco_record, synthetic_record, voc_record
from .inference import Inference, import_ppdet
from .metrics import COCOAP, VOCMap, numpy
from .spec import transform_specs

warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "paddledet"


def config_path(name: str) -> Path:
    path = CONFIGS / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIGS.glob("*.yml")))
        raise TrainError(f"Arch.config={name!r}: no such config in this image (known: {known})")
    return path


class Deploy(paddle.nn.Layer):
    """The inference model PaddleDetection's export writes: image, im_shape and scale_factor in;
    `outputs` of the model out (boxes [N, 6]: class, score, x1, y1, x2, y2 in the original image's
    pixels; boxes per image; for Mask R-CNN the masks [N, H, W]); post-processed by the model's own NMS."""

    def __init__(self, model, outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(self, image, im_shape, scale_factor):
        out = self.model({"image": image, "im_shape": im_shape, "scale_factor": scale_factor})
        return [out[name] for name in self.outputs]


class Detection(BaseTask):
    """What YOLOv3 and Mask R-CNN share: the suite's config, the recipe's operators, the loop's data,
    the export's inputs and infer_cfg.yml, the predictions. A subclass says which architecture its
    config must build, how its dataset is read and measured, and what its export gives out."""

    unit = "images/s"
    # The route needs data/transform's operators, not ppdet's models, trackers and metrics the inits
    # import (pycocotools, matplotlib, pandas, scikit-learn).
    serve_without_init = ("ppdet", "ppdet.data", "ppdet.modeling", "ppdet.data.transform")
    serve_unused = ("scipy", "scipy.ndimage")   # training targets and edge maps; no deploy transform calls it
    task: str                          # the task name, for errors
    architecture: str                  # what Arch.config must build (cfg.architecture)
    polygons = False                   # synthetic samples carry instance polygons (for the masks)
    stack_train = True                 # training batches stacked (else ground truth kept per image)
    outputs: tuple[str, ...] = ("bbox", "bbox_num")   # the export's outputs
    # infer_cfg.yml's keys that name the architecture family (ppdet/engine/export_utils.py)
    deploy: dict = {}

    def __init__(self, recipe: dict, data: str | None, world, options):
        super().__init__(recipe, data, world, options)
        g, arch = recipe["Global"], recipe["Arch"]
        self.config = config_path(str(arch["config"]))
        self.size = g.get("image_size")
        self.train_samples = self.eval_samples = None
        self.classes = int(arch["num_classes"])
        self.class_names: list[str] | None = None
        self.eval_annotations = None
        if data:   # parsed now: a bad layout fails before Paddle builds anything
            self.read(data, recipe["DataLoader"])
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

    # --- what a subclass says ----------------------------------------------------------------------
    def read(self, data: str, loader: dict) -> None:
        """Parse the mounted dataset: train_samples, class_names, and eval_samples when it has a split."""
        raise NotImplementedError

    record = None                      # staticmethod(sample, index): a parsed sample as PaddleDetection's record

    @staticmethod
    def locate(sample) -> str:
        """Where in its file (train_where / eval_where) a sample is, for errors."""
        raise NotImplementedError

    def eval_sample(self, im_id: int):
        """The evaluation sample an output's im_id names."""
        raise NotImplementedError

    def count(self) -> str:
        """What the training data is, for describe_data."""
        raise NotImplementedError

    def train_batches(self, specs: list[dict]) -> list[dict]:
        """The training batch operators as the collation takes them."""
        return specs

    # --- the suite's config ----------------------------------------------------------------------
    def cfg(self):
        if self._cfg is None:
            workspace = import_ppdet()
            cfg = workspace.load_config(str(self.config))
            workspace.merge_config({"num_classes": self.classes})
            if cfg.architecture != self.architecture:
                raise TrainError(f"Arch.config={self.config.name!r} builds {cfg.architecture}; task {self.task} "
                                 f"needs a {self.architecture} config")
            self._cfg = cfg
        return self._cfg

    # --- data --------------------------------------------------------------------------------
    def where(self, sample, evaluation: bool) -> str:
        return f"{self.eval_where if evaluation else self.train_where}{self.locate(sample)}"

    def datasets(self):
        self.cfg()
        train_ops = build_ops(self.train_specs, "Train.sample_transforms", self.classes)
        eval_ops = build_ops(self.eval_specs, "Eval.sample_transforms", self.classes)
        if self.train_samples is None:
            seed = int(self.recipe["Global"].get("seed", 0))
            count = int(self.recipe["Global"].get("synthetic_samples", 16))
            rng = np.random.default_rng(seed)
            size = int(self.size or 320)
            records = [synthetic_record(rng, i, size, self.classes, self.polygons) for i in range(count)]
            return DetDataset(records, [f"synthetic image {i}" for i in range(count)], train_ops), None
        train = DetDataset([self.record(s, i) for i, s in enumerate(self.train_samples)],
                           [self.where(s, False) for s in self.train_samples], train_ops)
        evaluation = None
        if self.eval_samples:
            evaluation = DetDataset([self.record(s, i) for i, s in enumerate(self.eval_samples)],
                                    [self.where(s, True) for s in self.eval_samples], eval_ops, evaluation=True)
        return train, evaluation

    def describe_data(self) -> str:
        if self.train_samples is None:
            return "synthetic"
        return self.count() + (f"; {len(self.eval_samples)} for validation" if self.eval_samples else "")

    def collate_fn(self):
        """Training: the recipe's batch operators, stacked (YOLO: every field is padded to 50 boxes) or,
        for Mask R-CNN, ground truth kept per image (its reader's collate_batch: false). Evaluation:
        its batch operators, ground truth per image (what the metrics read)."""
        self.cfg()
        train = Collate(self.train_batches(self.train_batch_specs), self.classes, stack=self.stack_train)
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
    def evaluate_batch(self, model, batch):
        return model(batch)

    def predictions(self, outputs, batch) -> list[dict]:
        bbox, nums = numpy(outputs["bbox"]), numpy(outputs["bbox_num"])
        out, start = [], 0
        for im_id, n in zip(numpy(batch["im_id"]).reshape(-1), nums):
            rows = bbox[start:start + int(n)]
            start += int(n)
            sample = self.eval_sample(int(im_id))
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
        return Deploy(model, self.outputs)

    def inference_config(self) -> dict:
        """PaddleDetection's infer_cfg.yml (ppdet/engine/export_utils.py): the evaluation preprocessing
        without Decode, the label list, the metric and the architecture family."""
        return {"mode": "paddle", "draw_threshold": 0.5, **self.deploy,
                "Preprocess": [{"type": name, **kwargs} for spec in self.eval_specs for name, kwargs in spec.items()
                               if name != "Decode"]
                + [{"type": "PadStride", "stride": kwargs.get("pad_to_stride", 0)}   # what export_utils writes for it
                   for spec in self.eval_batch_specs for name, kwargs in spec.items() if name == "PadBatch"],
                "label_list": self.class_names or [str(i) for i in range(self.classes)],
                "outputs": list(self.outputs)}

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """PaddleDetection's deploy pipeline (Inference) on each file; for Mask R-CNN each image's
        instance masks are also written as a PNG of instance ids (0 = background) in the image's own size."""
        import base64
        from ... import predict as predicting
        inference = Inference(config, labels, getattr(args, "threshold", None))
        where = None
        roots = [Path(p) for p in args.input if Path(p).is_dir()]
        for path in files:
            prepared = inference.preprocess(path.read_bytes(), f"--input {path}")
            result, line = inference.postprocess(
                predictor.named({n: prepared[n] for n in inference.input_names}), prepared)
            if "mask_png" in result:
                where = where or predicting.masks_directory(args)
                target = where / predicting.mask_name(path, roots)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(result.pop("mask_png")))
                result["mask"] = str(target)
                line += f" | mask {target}"
            yield path, result, line

    @staticmethod
    def inference(config: dict, directory: Path | None = None, labels: dict | None = None) -> "Inference":
        """The predict route's pipeline for the export with `config` (its inference.yml)."""
        return Inference(config, labels)


class YOLOv3(Detection):
    """Task `detection`: YOLOv3 on a VOC directory (list files of image + annotation.xml), VOC mAP."""

    task, architecture, primary = "detection", "YOLOv3", "mAP"
    deploy = {"metric": "VOC", "use_dynamic_shape": False, "arch": "YOLO", "min_subgraph_size": 3}

    def read(self, data: str, loader: dict) -> None:
        train = voc.voc_dataset(data, loader["train_list"], loader["label_list"])
        self.train_samples, self.class_names, self.train_where = train.samples, train.classes, train.list_file
        if loader.get("val_list") and (Path(data) / loader["val_list"]).is_file():
            val = voc.voc_dataset(data, loader["val_list"], loader["label_list"])
            self.eval_samples, self.eval_where = val.samples, val.list_file

    record = staticmethod(voc_record)

    @staticmethod
    def locate(sample) -> str:
        return f":{sample.line}"

    def eval_sample(self, im_id: int):
        return self.eval_samples[im_id]   # VOC records are numbered by their place in the list

    def count(self) -> str:
        boxes = sum(len(s.boxes) for s in self.train_samples)
        return f"{len(self.train_samples)} images, {boxes} boxes, {self.classes} classes from a VOC list file"

    def train_batches(self, specs: list[dict]) -> list[dict]:
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

    def metric(self) -> Metric:
        m = self.recipe.get("Metric", {})
        return VOCMap(Path(self.data) / self.recipe["DataLoader"]["label_list"], self.classes,
                      float(m.get("overlap_thresh", 0.5)), str(m.get("map_type", "11point")))


class MaskRCNN(Detection):
    """Task `instance-segmentation`: Mask R-CNN on a COCO directory, bbox and segm AP; the export gives
    the instance masks too."""

    task, architecture, primary = "instance-segmentation", "MaskRCNN", "bbox_AP"
    polygons = True
    stack_train = False   # its reader's collate_batch: false
    outputs = ("bbox", "bbox_num", "mask")
    deploy = {"metric": "COCO", "use_dynamic_shape": True, "arch": "MaskRCNN", "min_subgraph_size": 40}

    def read(self, data: str, loader: dict) -> None:
        train = coco.coco_dataset(data, loader["annotations"], loader["image_dir"])
        self.train_samples, self.class_names, self.train_where = train.samples, train.classes, train.annotations
        if loader.get("val_annotations") and (Path(data) / loader["val_annotations"]).is_file():
            val = coco.coco_dataset(data, loader["val_annotations"], loader.get("val_image_dir") or loader["image_dir"])
            self.eval_samples, self.eval_where = val.samples, val.annotations
            self.eval_annotations = val.annotations   # what the COCO metric evaluates against

    record = staticmethod(coco_record)

    @staticmethod
    def locate(sample) -> str:
        return f": image id {sample.id}"

    def eval_sample(self, im_id: int):
        return next(s for s in self.eval_samples if s.id == im_id)   # COCO records carry the file's image id

    def count(self) -> str:
        instances = sum(len(s.instances) for s in self.train_samples)
        return (f"{len(self.train_samples)} images, {instances} instances, {self.classes} classes from COCO "
                f"{Path(self.recipe['DataLoader']['annotations']).name}")

    def metric(self) -> Metric:
        from ppdet.data.source.category import get_categories
        with contextlib.redirect_stdout(io.StringIO()):   # pycocotools says it is loading the file
            clsid2catid, _ = get_categories("COCO", str(self.eval_annotations))
        return COCOAP(self.eval_annotations, clsid2catid)
