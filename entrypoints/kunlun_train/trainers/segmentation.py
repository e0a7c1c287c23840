"""Semantic segmentation with PaddleSeg's own models and loss: `paddleseg.models.<Arch.name>` (DeepLabV3P,
UNet, ...) with an optional `paddleseg.models.backbones.<Arch.backbone.name>` (ResNet50_vd, ...), and
`paddleseg.models.losses.CrossEntropyLoss`. Every other Arch / Arch.backbone key is passed to the
constructor as is, so the recipe reads like a PaddleSeg config. PaddleSeg's trainer (paddleseg.core)
needs YAML configs and a dataset class per format, so the loop is ours: momentum SGD on the
cross-entropy of every logit the model returns (DeepLabV3+ and UNet return one)."""
from __future__ import annotations

import warnings

import numpy as np
import paddle

from .. import parallel
from ..datasets import segmentation as datasets
from ..errors import TrainError

# Paddle's BatchNorm says so on every training forward pass; it is how PaddleSeg trains anyway.
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

# PaddleSeg's default Normalize transform: mean 0.5, std 0.5 per channel.
MEAN, STD = 0.5, 0.5


def _constructor(registry, name, what: str):
    """A component from one of PaddleSeg's registries (paddleseg.cvlibs.manager.MODELS / BACKBONES)."""
    known = registry.components_dict
    if not isinstance(name, str) or name not in known:
        raise TrainError(f"{what}={name!r}: PaddleSeg has no such {registry.name[:-1]} "
                         f"(known: {', '.join(sorted(known))})")
    return known[name]


def _kwargs(section: dict, what: str) -> dict:
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k not in ("name", "backbone")}
    if kwargs.get("pretrained"):
        raise TrainError(f"{what}.pretrained: this image trains from random initialisation and downloads nothing")
    return kwargs


def build_model(arch: dict):
    from paddleseg.cvlibs import manager   # imported here: it pulls in the suite and fills the registries

    kwargs = _kwargs(arch, "Arch")
    if isinstance(arch.get("backbone"), dict):
        spec = arch["backbone"]
        ctor = _constructor(manager.BACKBONES, spec.get("name"), "Arch.backbone.name")
        try:
            kwargs["backbone"] = ctor(**_kwargs(spec, "Arch.backbone"))
        except (TypeError, ValueError, AssertionError) as exc:
            raise TrainError(f"Arch.backbone: {spec.get('name')} rejected the recipe: {exc}") from None
    ctor = _constructor(manager.MODELS, arch.get("name"), "Arch.name")
    try:
        return ctor(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise TrainError(f"Arch: {arch.get('name')} rejected the recipe: {exc}") from None


class Trainer:
    unit = "images/s"

    def __init__(self, recipe: dict, data: str | None, world: parallel.World = parallel.World()):
        from paddleseg.models.losses import CrossEntropyLoss

        self.recipe = recipe
        g, arch = recipe["Global"], recipe["Arch"]
        self.size, self.batch = int(g["image_size"]), int(recipe["DataLoader"]["batch_size"])
        if self.size < 32:
            raise TrainError(f"Global.image_size={self.size}: segmentation models need at least 32 px")
        self.classes = int(arch["num_classes"])
        if not 1 <= self.classes < datasets.IGNORE_INDEX:
            raise TrainError(f"Arch.num_classes={self.classes}: expected 1..{datasets.IGNORE_INDEX - 1}")
        self.rng = np.random.default_rng(world.seed(int(g.get("seed", 0))))
        paddle.seed(int(g.get("seed", 0)))   # the same initial weights on every rank
        self.samples = None
        if data:
            self.samples = world.shard(datasets.segmentation_list(data, recipe["DataLoader"]["train_list"]))
        self.model = parallel.wrap(build_model(dict(arch)), world)
        loss = dict(recipe.get("Loss", {}))
        if loss.pop("name", "CrossEntropyLoss") != "CrossEntropyLoss":
            raise TrainError(f"Loss.name={recipe['Loss']['name']!r}: only CrossEntropyLoss is supported")
        self.loss = CrossEntropyLoss(**{"ignore_index": datasets.IGNORE_INDEX, **loss})
        opt = recipe["Optimizer"]
        if opt.get("name", "Momentum") != "Momentum":
            raise TrainError(f"Optimizer.name={opt['name']!r}: only Momentum is supported")
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=float(opt["learning_rate"]), momentum=float(opt["momentum"]),
            parameters=self.model.parameters(),
            weight_decay=paddle.regularizer.L2Decay(float(opt.get("weight_decay", 0.0))))
        self._order: list[int] = []

    def describe_data(self) -> str:
        return f"{len(self.samples)} images with label masks from a list file" if self.samples else "synthetic"

    def _read(self, sample: datasets.Sample) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(sample.image) as img:
                image = img.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise TrainError(f"{sample.where}: cannot read image {sample.image}: {exc}") from None
        try:
            with Image.open(sample.mask) as img:
                img.load()
                mask = img
        except (OSError, UnidentifiedImageError) as exc:
            raise TrainError(f"{sample.where}: cannot read label mask {sample.mask}: {exc}") from None
        if image.size != mask.size:
            raise TrainError(f"{sample.where}: image {sample.image} is {image.size[0]}x{image.size[1]} but its "
                             f"label mask {sample.mask} is {mask.size[0]}x{mask.size[1]}")
        values = np.unique(np.asarray(mask)) if mask.mode in datasets.MASK_MODES else ()
        problem = datasets.mask_problem(sample, mask.mode, values, self.classes)
        if problem:
            raise TrainError(problem)
        if mask.mode == "1":
            mask = mask.convert("L")
        image = image.resize((self.size, self.size), Image.BILINEAR)
        mask = mask.resize((self.size, self.size), Image.NEAREST)   # class ids must not be blended
        chw = np.asarray(image, dtype="float32").transpose(2, 0, 1) / 255.0
        return (chw - MEAN) / STD, np.asarray(mask, dtype="int64")

    def batch_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, 3, S, S) float32 and masks (N, S, S) int64."""
        if self.samples is None:
            x = self.rng.standard_normal((self.batch, 3, self.size, self.size), dtype="float32")
            y = self.rng.integers(0, self.classes, (self.batch, self.size, self.size), dtype="int64")
            return x, y
        picked = []
        for _ in range(self.batch):
            if not self._order:   # a new epoch: reshuffle
                self._order = list(self.rng.permutation(len(self.samples)))
            picked.append(self.samples[self._order.pop()])
        images, masks = zip(*(self._read(s) for s in picked))
        return np.stack(images), np.stack(masks)

    def samples_per_step(self) -> int:
        return self.batch

    def step(self) -> float:
        x, y = self.batch_arrays()
        self.model.train()
        logits = self.model(paddle.to_tensor(x))
        label = paddle.to_tensor(y)
        loss = paddle.add_n([self.loss(logit, label) for logit in logits])
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        return float(loss)

    def save(self, directory) -> None:
        paddle.save(self.model.state_dict(), str(directory / "model.pdparams"))
        paddle.save(self.optimizer.state_dict(), str(directory / "model.pdopt"))

    def load(self, directory) -> None:
        self.model.set_state_dict(paddle.load(str(directory / "model.pdparams")))
        self.optimizer.set_state_dict(paddle.load(str(directory / "model.pdopt")))
