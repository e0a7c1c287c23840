"""Image classification with PaddleClas's model zoo (`paddleclas.ppcls.arch.build_model`). The
PyPI PaddleClas has no training engine, so the loop is ours: cross-entropy and momentum SGD."""
from __future__ import annotations

import numpy as np
import paddle

from .. import parallel
from ..datasets import classification as datasets
from ..errors import TrainError

# ImageNet statistics, as PaddleClas's NormalizeImage uses them.
MEAN = np.array([0.485, 0.456, 0.406], dtype="float32").reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype="float32").reshape(3, 1, 1)


class Trainer:
    unit = "images/s"

    def __init__(self, recipe: dict, data: str | None, world: parallel.World = parallel.World()):
        from paddleclas.ppcls.arch import build_model   # imported here: it pulls in the suite

        self.recipe = recipe
        g, arch = recipe["Global"], recipe["Arch"]
        self.size, self.batch = int(g["image_size"]), int(recipe["DataLoader"]["batch_size"])
        self.classes = int(arch["class_num"])
        self.rng = np.random.default_rng(world.seed(int(g.get("seed", 0))))
        paddle.seed(int(g.get("seed", 0)))   # the same initial weights on every rank
        self.samples = None
        if data:
            self.samples = world.shard(
                datasets.classification_list(data, recipe["DataLoader"]["train_list"], self.classes))
        self.model = parallel.wrap(build_model({"Arch": dict(arch), "Global": {"device": g.get("device", "cpu")}}), world)
        opt = recipe["Optimizer"]
        if opt.get("name", "Momentum") != "Momentum":
            raise TrainError(f"Optimizer.name={opt['name']!r}: only Momentum is supported")
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=float(opt["learning_rate"]), momentum=float(opt["momentum"]),
            parameters=self.model.parameters(),
            weight_decay=paddle.regularizer.L2Decay(float(opt.get("weight_decay", 0.0))))
        self._order: list[int] = []

    def describe_data(self) -> str:
        return f"{len(self.samples)} images from a list file" if self.samples else "synthetic"

    def _image(self, sample) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(sample.image) as img:
                img = img.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        except (OSError, UnidentifiedImageError) as exc:
            raise TrainError(f"line {sample.line}: cannot read image {sample.image}: {exc}") from None
        chw = np.asarray(img, dtype="float32").transpose(2, 0, 1) / 255.0
        return (chw - MEAN) / STD

    def batch_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self.samples is None:
            x = self.rng.standard_normal((self.batch, 3, self.size, self.size), dtype="float32")
            y = self.rng.integers(0, self.classes, (self.batch, 1), dtype="int64")
            return x, y
        picked = []
        for _ in range(self.batch):
            if not self._order:   # a new epoch: reshuffle
                self._order = list(self.rng.permutation(len(self.samples)))
            picked.append(self.samples[self._order.pop()])
        x = np.stack([self._image(s) for s in picked])
        y = np.array([[s.label] for s in picked], dtype="int64")
        return x, y

    def samples_per_step(self) -> int:
        return self.batch

    def step(self) -> float:
        x, y = self.batch_arrays()
        self.model.train()
        logits = self.model(paddle.to_tensor(x))
        if isinstance(logits, dict):
            logits = logits["logits"]
        loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y))
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
