"""Image classification the way PaddleClas trains it (ppcls/configs/ImageNet/*.yaml).

From the PyPI wheel: the model zoo (`paddleclas.ppcls.arch.build_model`), and the image operators and
Top-k post-processing of its deploy package (`paddleclas.deploy.python.preprocess` / `.postprocess`:
DecodeImage, RandCropImage, RandFlipImage, ResizeImage, CropImage, NormalizeImage, ToCHWImage, Topk),
which are PaddleClas's training operators under the same names. From Paddle: the loss (cross-entropy
with label smoothing), top-k accuracy (`paddle.metric.Accuracy`), DataLoader and schedules (engine).
Ours: the list-file dataset, because the wheel ships no ppcls.data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle

from ...datasets import classification as lists
from ...errors import TrainError
from .. import synthetic
from ..contract import Metric, Task as BaseTask
from .inference import Inference, operators as _operators


class ListDataset(paddle.io.Dataset):
    """`<image> <label>` samples through PaddleClas operators; items are (CHW float32, label, index)."""

    def __init__(self, samples: list, ops: list, list_file: str):
        super().__init__()
        self.samples, self.ops, self.list_file = samples, ops, list_file

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image = sample.image.read_bytes()
            for op in self.ops:
                image = op(image)
        except Exception as exc:   # a corrupt file must name itself, not end in an assertion deep in cv2
            raise TrainError(f"{self.list_file}:{sample.line}: cannot read image {sample.image}: "
                             f"{type(exc).__name__} {exc}".rstrip()) from None
        return image, np.int64(sample.label), np.int64(index)


class SyntheticDataset(synthetic.Seeded):
    """Random images and labels, the same every run: a smoke test of the pipeline."""

    def __init__(self, count: int, size: int, classes: int, seed: int):
        super().__init__(count, seed)
        self.size, self.classes = size, classes

    def make(self, rng, index: int):
        image = rng.standard_normal((3, self.size, self.size), dtype="float32")
        return image, np.int64(rng.integers(0, self.classes)), np.int64(index)


class Accuracy(Metric):
    """Top-k accuracy with paddle.metric.Accuracy; its (correct, count) sums merge across ranks."""

    def __init__(self, topk: tuple[int, ...]):
        self.topk = topk
        self.accuracy = paddle.metric.Accuracy(topk=topk)

    def update(self, outputs, batch) -> None:
        self.accuracy.update(self.accuracy.compute(outputs, batch[1].reshape([-1, 1])))

    def state(self):
        return np.array(self.accuracy.total, dtype="float64"), np.array(self.accuracy.count, dtype="float64")

    def merge(self, states: list) -> dict[str, float]:
        correct = sum(s[0] for s in states)
        count = sum(s[1] for s in states)
        return {f"top{k}": float(c / n) if n else 0.0 for k, c, n in zip(self.topk, correct, count)}


class Task(BaseTask):
    unit = "images/s"
    primary = "top1"
    serve_without_init = ("paddleclas",)   # its init imports PaddleClas's whole toolkit; the route needs deploy/python

    def __init__(self, recipe: dict, data: str | None, world, options):
        super().__init__(recipe, data, world, options)
        g, arch = recipe["Global"], recipe["Arch"]
        self.size = int(g["image_size"])
        if self.size < 32:
            raise TrainError(f"Global.image_size={self.size}: classification models need at least 32 px")
        self.classes = int(arch["class_num"])
        topk = tuple(int(k) for k in recipe.get("Metric", {}).get("topk", [1, 5]))
        self.topk = tuple(k for k in topk if k <= self.classes) or (1,)
        self.train_samples = self.eval_samples = None
        loader = recipe["DataLoader"]
        if data:   # parsed before Paddle was imported (datasets.classification.check): cached, no second parse
            if (Path(data) / loader["train_list"]).is_file():   # else an evaluation-only dataset
                self.train_samples = lists.classification_list(data, loader["train_list"], self.classes)
            self.eval_samples = lists.optional_list(data, loader.get("val_list"), self.classes)

    # --- data --------------------------------------------------------------------------------
    def _normalize(self, ops):
        norm = self.recipe.get("Normalize", {})
        return ops.NormalizeImage(scale=1.0 / 255.0, mean=norm.get("mean"), std=norm.get("std"), order="")

    def train_ops(self) -> list:
        ops, train = _operators(), self.recipe.get("Train", {})
        pipeline = [ops.DecodeImage(to_rgb=True, channel_first=False),
                    ops.RandCropImage(size=self.size, scale=train.get("crop_scale"), ratio=train.get("crop_ratio"))]
        if train.get("flip", True):
            pipeline.append(ops.RandFlipImage(flip_code=1))
        return pipeline + [self._normalize(ops), ops.ToCHWImage()]

    def resize_short(self) -> int:
        """Eval resizes the short side to image_size / crop_ratio (PaddleClas: 256 for 224, ratio 0.875)."""
        return int(round(self.size / float(self.recipe.get("Eval", {}).get("crop_ratio", 0.875))))

    def eval_ops(self) -> list:
        ops = _operators()
        return [ops.DecodeImage(to_rgb=True, channel_first=False), ops.ResizeImage(resize_short=self.resize_short()),
                ops.CropImage(size=self.size), self._normalize(ops), ops.ToCHWImage()]

    def datasets(self):
        loader = self.recipe["DataLoader"]
        if self.data is None:
            seed = int(self.recipe["Global"].get("seed", 0))
            count = int(self.recipe["Global"].get("synthetic_samples", 64))
            return (SyntheticDataset(count, self.size, self.classes, seed),
                    SyntheticDataset(max(1, count // 4), self.size, self.classes, seed + 1))
        root = f"{self.data}/"
        train = ListDataset(self.train_samples, self.train_ops(), root + loader["train_list"]) if self.train_samples else None
        evaluation = ListDataset(self.eval_samples, self.eval_ops(), root + loader["val_list"]) if self.eval_samples else None
        return train, evaluation

    def describe_data(self) -> str:
        if self.data is None:
            return "synthetic"
        split = f", {len(self.eval_samples)} for validation" if self.eval_samples else ""
        return f"{len(self.train_samples or [])} images from a list file{split}"

    def batch_bytes(self) -> int:
        return int(self.recipe["DataLoader"]["batch_size"]) * 3 * self.size * self.size * 4

    def sample_name(self, index: int, evaluation: bool) -> str:
        samples = self.eval_samples if evaluation else self.train_samples
        return str(samples[index].image.relative_to(self.data)) if samples else f"synthetic-{index}"

    # --- model -------------------------------------------------------------------------------
    def build_model(self):
        from paddleclas.ppcls.arch import build_model   # imported here: it pulls in the suite
        arch = dict(self.recipe["Arch"])
        if arch.get("pretrained"):
            raise TrainError("Arch.pretrained: nothing is downloaded here; mount the weights and pass --pretrained FILE")
        try:
            return build_model({"Arch": arch, "Global": {"device": self.options.device}})
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise TrainError(f"Arch: {arch.get('name')} rejected the recipe: {exc}") from None

    def logits(self, model, images):
        out = model(images)
        return out["logits"] if isinstance(out, dict) else out

    def loss(self, model, batch):
        """Cross-entropy; with Loss.label_smoothing as PaddleClas's CELoss(epsilon) does it: smoothed
        one-hot targets and the soft-label loss."""
        F = paddle.nn.functional
        logits, labels = self.logits(model, batch[0]), batch[1].reshape([-1])
        epsilon = float(self.recipe.get("Loss", {}).get("label_smoothing", 0.0))
        if epsilon <= 0:
            return F.cross_entropy(logits, labels.reshape([-1, 1]))
        target = F.label_smooth(F.one_hot(labels, self.classes), epsilon=epsilon)
        return F.cross_entropy(logits, target, soft_label=True)

    # --- evaluation ----------------------------------------------------------------------------
    def metric(self) -> Metric:
        return Accuracy(self.topk)

    def evaluate_batch(self, model, batch):
        return self.logits(model, batch[0])

    def predictions(self, outputs, batch) -> list[dict]:
        probs = paddle.nn.functional.softmax(outputs, axis=-1).numpy()
        k = max(self.topk)
        out = []
        for row, label, index in zip(probs, batch[1].numpy(), batch[2].numpy()):
            top = np.argsort(-row, kind="stable")[:k]
            out.append({"input": self.sample_name(int(index), True), "label": int(label),
                        "class_ids": [int(i) for i in top], "scores": [round(float(row[i]), 6) for i in top]})
        return out

    # --- export --------------------------------------------------------------------------------
    def input_spec(self) -> list:
        return [paddle.static.InputSpec([None, 3, self.size, self.size], "float32", "x")]

    def inference_config(self) -> dict:
        """PaddleClas's deploy config (deploy/configs/inference_cls.yaml): what predict and
        PaddleClas's own deploy tools apply around the exported model."""
        norm = self.recipe.get("Normalize", {})
        return {"PreProcess": {"transform_ops": [
                    {"ResizeImage": {"resize_short": self.resize_short()}},
                    {"CropImage": {"size": self.size}},
                    {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": norm.get("mean", [0.485, 0.456, 0.406]),
                                        "std": norm.get("std", [0.229, 0.224, 0.225]), "order": ""}},
                    {"ToCHWImage": None}]},
                "PostProcess": {"main_indicator": "Topk", "Topk": {"topk": max(self.topk)}}}

    def export_layer(self, model):
        """The model plus a softmax, as PaddleClas exports it (Global.infer_add_softmax)."""
        return WithSoftmax(model)

    def predict(self, predictor, config: dict, files: list, labels: dict | None, args):
        """PaddleClas's deploy pipeline (Inference) on each file."""
        inference = Inference(config, labels, args.topk)
        for path in files:
            image = inference.preprocess(path.read_bytes(), f"--input {path}")
            result, line = inference.postprocess(predictor.named({inference.input_name: image[np.newaxis]}))
            yield path, result, line

    @staticmethod
    def inference(config: dict, directory: Path | None = None, labels: dict | None = None) -> "Inference":
        """The predict route's pipeline for the export with `config` (its inference.yml) in `directory`."""
        return Inference(config, labels)


class WithSoftmax(paddle.nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return paddle.nn.functional.softmax(out["logits"] if isinstance(out, dict) else out, axis=-1)
