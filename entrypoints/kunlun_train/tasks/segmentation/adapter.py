"""Semantic segmentation the way PaddleSeg trains it (configs/_base_/cityscapes.yml and the
configs/quick_start/*optic_disc* configs).

From the PyPI wheel: the models and backbones (`paddleseg.cvlibs.manager.MODELS` / `BACKBONES`: DeepLabV3P,
UNet, ResNet50_vd, ...), the loss (`manager.LOSSES`: CrossEntropyLoss with ignore index 255, patched for
Paddle 3), the transforms by their names (`paddleseg.transforms`: Compose, ResizeStepScaling,
RandomPaddingCrop, RandomHorizontalFlip, RandomDistort, Resize, Normalize), evaluation inference
(`paddleseg.core.infer.inference`: logits resized back to the label's size, argmax), the metric helpers
(`paddleseg.utils.metrics`: calculate_area, mean_iou, accuracy, kappa; patched for Paddle 3), the export
wrapper (`paddleseg.deploy.export.WrappedModel`, argmax), the deploy config's transforms
(`paddleseg.deploy.infer.DeployConfig`), `reverse_transform` and the pseudo-colour mask PNG
(`paddleseg.utils.visualize.get_pseudo_color_map`). From Paddle: DataLoader, optimizer and the
Polynomial schedule (engine). Ours: the list-file dataset (paddleseg.datasets.Dataset reads lists
without naming the bad line and masks without checking them) and synthetic data."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import paddle

from ... import predict as predicting
from ...datasets import segmentation as lists
from ...errors import TrainError
from .. import synthetic
from ..contract import Metric, Task as BaseTask
from . import spec
from .inference import Inference

# Paddle's BatchNorm says so on every training forward pass; it is how PaddleSeg trains anyway.
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

IGNORE = lists.IGNORE_INDEX


def _registry(kind: str):
    from paddleseg.cvlibs import manager   # imported here: it pulls in the suite and fills the registries
    return getattr(manager, kind)


KINDS = {"MODELS": "model", "BACKBONES": "backbone", "LOSSES": "loss", "TRANSFORMS": "transform"}


def _component(kind: str, name, what: str):
    known = _registry(kind).components_dict
    if not isinstance(name, str) or name not in known:
        raise TrainError(f"{what}={name!r}: PaddleSeg has no such {KINDS[kind]} "
                         f"(known: {', '.join(sorted(known))})")
    return known[name]


def _kwargs(section: dict, what: str) -> dict:
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k not in ("name", "backbone")}
    if kwargs.get("pretrained"):
        raise TrainError(f"{what}.pretrained: nothing is downloaded here; mount the weights and pass --pretrained FILE")
    return kwargs


def build_model(arch: dict):
    """`Arch` as a PaddleSeg model config: name (and backbone.name) pick the classes, every other key is
    a constructor argument."""
    kwargs = _kwargs(arch, "Arch")
    if isinstance(arch.get("backbone"), dict):
        spec = arch["backbone"]
        ctor = _component("BACKBONES", spec.get("name"), "Arch.backbone.name")
        try:
            kwargs["backbone"] = ctor(**_kwargs(spec, "Arch.backbone"))
        except (TypeError, ValueError, AssertionError) as exc:
            raise TrainError(f"Arch.backbone: {spec.get('name')} rejected the recipe: {exc}") from None
    ctor = _component("MODELS", arch.get("name"), "Arch.name")
    try:
        return ctor(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise TrainError(f"Arch: {arch.get('name')} rejected the recipe: {exc}") from None


def build_transforms(specs: list[tuple[str, dict]], what: str) -> list:
    ops = []
    for name, kwargs in specs:
        ctor = _component("TRANSFORMS", name, f"{what}.{name}")
        try:
            ops.append(ctor(**kwargs))
        except (TypeError, ValueError) as exc:
            raise TrainError(f"{what}.{name}: {exc}") from None
    return ops


def read_sample(sample: lists.Sample, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The image as PaddleSeg's Compose reads it (cv2, BGR, float32) and its mask (class ids), checked."""
    import cv2
    from PIL import Image, UnidentifiedImageError
    image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
    if image is None:
        raise TrainError(f"{sample.where}: cannot read image {sample.image}")
    try:
        with Image.open(sample.mask) as img:
            img.load()
            mode, mask = img.mode, np.asarray(img.convert("L") if img.mode == "1" else img)
    except (OSError, UnidentifiedImageError) as exc:
        raise TrainError(f"{sample.where}: cannot read label mask {sample.mask}: {exc}") from None
    problem = lists.mask_problem(sample, mode, np.unique(mask) if mode in lists.MASK_MODES else (), classes)
    if problem:
        raise TrainError(problem)
    if image.shape[:2] != mask.shape[:2]:
        raise TrainError(f"{sample.where}: image {sample.image} is {image.shape[1]}x{image.shape[0]} but its "
                         f"label mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]}")
    return image.astype("float32"), mask


class ListDataset(paddle.io.Dataset):
    """`<image> <mask>` samples through PaddleSeg's Compose; items are (CHW float32 image, int64 mask,
    index, trans_info rows). For training the mask is transformed with the image (PaddleSeg's
    gt_fields); for evaluation it stays as read, and the prediction is transformed back to it."""

    def __init__(self, samples: list, ops: list, classes: int, train: bool):
        from paddleseg.transforms import Compose
        super().__init__()
        self.samples, self.classes, self.train = samples, classes, train
        self.compose = Compose(ops)   # BGR -> RGB, the transforms, HWC -> CHW

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        image, mask = read_sample(sample, self.classes)
        data = {"img": image, "label": mask, "trans_info": [], "gt_fields": ["label"] if self.train else []}
        try:
            data = self.compose(data)
        except Exception as exc:   # a transform that cannot take this image must name it
            raise TrainError(f"{sample.where}: {sample.image}: {type(exc).__name__} {exc}".rstrip()) from None
        info = np.array(spec.encode_trans_info(data["trans_info"], mask.shape[:2]), dtype="int64")
        return data["img"].astype("float32"), data["label"].astype("int64"), np.int64(index), info


class SyntheticDataset(synthetic.Seeded):
    """Random normalised images and random masks, the same every run: a smoke test of the pipeline
    at the training input size."""

    def __init__(self, count: int, size: list[int], classes: int, seed: int):
        super().__init__(count, seed)
        self.size, self.classes = size, classes

    def make(self, rng, index: int):
        width, height = self.size
        image = rng.standard_normal((3, height, width), dtype="float32")
        mask = rng.integers(0, self.classes, (height, width), dtype="int64")
        return image, mask, np.int64(index), np.array(spec.encode_trans_info([], (height, width)), dtype="int64")


def collate(batch: list):
    """Stack each field; images of different sizes are a recipe problem, said as one."""
    try:
        return [np.stack(field) for field in zip(*batch)]
    except ValueError:
        shapes = sorted({tuple(item[0].shape[1:]) for item in batch})
        raise TrainError(f"one batch holds images of different sizes {shapes}: training needs Train.transforms "
                         "to end in one size (RandomPaddingCrop or Resize, Global.image_size), and evaluation of "
                         "images of different sizes needs DataLoader.eval_batch_size=1") from None


class Areas(Metric):
    """PaddleSeg's evaluation: per-class intersection, prediction and label pixel counts
    (metrics.calculate_area) summed over the split, then mIoU, accuracy and kappa from the sums.
    Sums of counts merge exactly across ranks."""

    def __init__(self, classes: int):
        self.classes = classes
        self.areas = np.zeros([3, classes], dtype="int64")

    def update(self, outputs, batch) -> None:
        from paddleseg.utils import metrics
        areas = metrics.calculate_area(outputs, batch[1], self.classes, ignore_index=IGNORE)
        self.areas += np.stack([a.numpy() for a in areas])

    def state(self):
        return self.areas

    def merge(self, states: list) -> dict[str, float]:
        from paddleseg.utils import metrics
        intersect, pred, label = (paddle.to_tensor(a) for a in sum(states))
        if int(label.sum()) == 0:
            return {"mIoU": 0.0, "acc": 0.0, "kappa": 0.0}
        _, miou = metrics.mean_iou(intersect, pred, label)
        _, acc = metrics.accuracy(intersect, pred)
        kappa = metrics.kappa(intersect, pred, label)
        return {"mIoU": float(miou), "acc": float(acc), "kappa": float(kappa)}


class Task(BaseTask):
    unit = "images/s"
    primary = "mIoU"
    # The route needs deploy.infer, transforms, core.infer and utils.visualize, not the models and
    # metrics these packages' inits import (scikit-learn, requests).
    serve_without_init = ("paddleseg", "paddleseg.cvlibs", "paddleseg.utils", "paddleseg.core")
    serve_unused = ("scipy", "scipy.ndimage")   # training targets and edge maps; no deploy transform calls it

    def __init__(self, recipe: dict, data: str | None, world, options):
        super().__init__(recipe, data, world, options)
        g, arch = recipe["Global"], recipe["Arch"]
        self.size = spec.image_size(g["image_size"])
        self.classes = int(arch["num_classes"])
        if not 1 <= self.classes < IGNORE:
            raise TrainError(f"Arch.num_classes={self.classes}: expected 1..{IGNORE - 1}")
        self.train_specs, self.eval_specs = (
            spec.transform_specs(recipe.get(part, {}).get("transforms"), self.size, f"{part}.transforms")
            for part in ("Train", "Eval"))
        self.train_samples = self.eval_samples = None
        loader = recipe["DataLoader"]
        if data:   # parse the lists now: a bad line fails before Paddle builds anything
            self.train_samples = lists.segmentation_list(data, loader["train_list"])
            self.eval_samples = lists.optional_list(data, loader.get("val_list"))

    # --- data --------------------------------------------------------------------------------
    def datasets(self):
        if self.train_samples is None:
            seed = int(self.recipe["Global"].get("seed", 0))
            count = int(self.recipe["Global"].get("synthetic_samples", 16))
            return (SyntheticDataset(count, self.size, self.classes, seed),
                    SyntheticDataset(max(1, count // 4), self.size, self.classes, seed + 1))
        train = ListDataset(self.train_samples, build_transforms(self.train_specs, "Train.transforms"),
                            self.classes, train=True)
        evaluation = ListDataset(self.eval_samples, build_transforms(self.eval_specs, "Eval.transforms"),
                                 self.classes, train=False) if self.eval_samples else None
        return train, evaluation

    def describe_data(self) -> str:
        if self.train_samples is None:
            return "synthetic"
        split = f", {len(self.eval_samples)} for validation" if self.eval_samples else ""
        return f"{len(self.train_samples)} images with label masks from a list file{split}"

    def collate_fn(self):
        return collate

    def batch_bytes(self) -> int:
        width, height = self.size
        return int(self.recipe["DataLoader"]["batch_size"]) * width * height * (3 * 4 + 8)

    def sample_name(self, index: int) -> str:
        return str(self.eval_samples[index].image.relative_to(self.data)) if self.eval_samples else f"synthetic-{index}"

    # --- model and loss ------------------------------------------------------------------------
    def build_model(self):
        return build_model(dict(self.recipe["Arch"]))

    def losses(self):
        """PaddleSeg's `loss: {types: [...], coef: [...]}` as Loss: {name, coef, arguments}: one loss
        for every logit the model returns, weighted by coef."""
        if getattr(self, "_losses", None) is None:
            loss = dict(self.recipe.get("Loss", {}))
            name, coef = loss.pop("name", "CrossEntropyLoss"), loss.pop("coef", [1])
            ctor = _component("LOSSES", name, "Loss.name")
            try:
                self._losses = ctor(**{"ignore_index": IGNORE, **loss}), [float(c) for c in coef]
            except (TypeError, ValueError) as exc:
                raise TrainError(f"Loss: {name} rejected the recipe: {exc}") from None
        return self._losses

    def loss(self, model, batch):
        criterion, coef = self.losses()
        logits = model(batch[0])
        if len(coef) != len(logits):
            raise TrainError(f"Loss.coef={coef}: {self.recipe['Arch']['name']} returns {len(logits)} logits, "
                             f"so coef needs {len(logits)} weights")
        return paddle.add_n([c * criterion(logit, batch[1]) for c, logit in zip(coef, logits)])

    def adapt_weights(self, model, state: dict) -> dict:
        """PaddleSeg's published backbone weights (e.g. resnet50_vd_ssld_v2's model.pdparams) name
        the backbone's own tensors; the model holds them under `backbone.`."""
        own = model.state_dict()
        if state and not any(k in own for k in state) and any(f"backbone.{k}" in own for k in state):
            return {f"backbone.{k}": v for k, v in state.items()}
        return state

    # --- evaluation ----------------------------------------------------------------------------
    def metric(self) -> Metric:
        return Areas(self.classes)

    def evaluate_batch(self, model, batch):
        """paddleseg.core.val's step: logits resized back to the mask's size (bilinear), argmax."""
        from paddleseg.core import infer
        pred, _ = infer.inference(model, batch[0], trans_info=spec.decode_trans_info(batch[3][0].numpy()))
        return pred

    def predictions(self, outputs, batch) -> list[dict]:
        out = []
        for pred, index in zip(outputs.numpy(), batch[2].numpy()):
            mask = pred.reshape(pred.shape[-2:])
            out.append({"input": self.sample_name(int(index)), "shape": list(mask.shape),
                        "pixels": np.bincount(mask.ravel(), minlength=self.classes).tolist()})
        return out

    # --- export and prediction ------------------------------------------------------------------
    def input_spec(self) -> list:
        """PaddleSeg's export default: any batch and image size (the evaluation transforms decide it)."""
        return [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]

    def export_layer(self, model):
        from paddleseg.deploy.export import WrappedModel
        return WrappedModel(model, "argmax")

    def inference_config(self) -> dict:
        """PaddleSeg's deploy.yaml (tools/export.py): the evaluation transforms, the input shape and
        the output op appended to the model."""
        return {"Deploy": {"model": "inference.json", "params": "inference.pdiparams",
                           "transforms": spec.deploy_transforms(self.eval_specs),
                           "input_shape": [None, 3, None, None], "output_op": "argmax", "output_dtype": "int32",
                           "num_classes": self.classes}}

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """PaddleSeg's deploy pipeline (Inference) on each file; each mask is written as a PNG of class
        ids with PaddleSeg's colour palette."""
        import base64
        inference = Inference(config, labels)
        where = predicting.masks_directory(args)
        roots = [Path(p) for p in args.input if Path(p).is_dir()]
        for path in files:
            prepared = inference.preprocess(path.read_bytes(), f"--input {path}")
            result, line = inference.postprocess(predictor.named({"x": prepared["x"]}), prepared)
            target = where / predicting.mask_name(path, roots)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(result.pop("mask_png")))
            yield path, {"mask": str(target), **result}, f"mask {target} | {line}"

    @staticmethod
    def inference(config: dict, directory: Path | None = None, labels: dict | None = None) -> "Inference":
        """The predict route's pipeline for the export with `config` (its inference.yml)."""
        return Inference(config, labels)

