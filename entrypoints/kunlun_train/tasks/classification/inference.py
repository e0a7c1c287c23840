"""PaddleClas's deploy pre- and post-processing around an exported model, for `predict` (adapter.py)
and the server's predict route (serving/routes.py). The suite is imported when it is used, never at
module level: `serve` first makes it importable without its package init (imports.py)."""
from __future__ import annotations

import numpy as np

from ...errors import TrainError


def operators():
    """PaddleClas's image operators (importing them pulls in the suite); training uses them too."""
    from paddleclas.deploy.python import preprocess
    return preprocess


class Inference:
    """PaddleClas's deploy pipeline around the exported model: DecodeImage (as training reads images),
    inference.yml's PreProcess.transform_ops, the model, its Topk post-processing. `predict` and the
    server's predict route both run this, so the same bytes get the same answer."""

    input_name = "x"

    def __init__(self, config: dict, labels: dict | None = None, topk: int | None = None):
        ops = operators()
        self.pipeline = [ops.DecodeImage(to_rgb=True, channel_first=False)] + ops.create_operators(
            config["PreProcess"]["transform_ops"])
        self.k, self.labels, self.topk = topk or config["PostProcess"]["Topk"]["topk"], labels, None
        crop = next((op["CropImage"] for op in config["PreProcess"]["transform_ops"] if "CropImage" in op), {})
        self.size = int(crop.get("size", 224))

    def preprocess(self, data: bytes, what: str) -> np.ndarray:
        """One image's bytes as the model's CHW float32 input; TrainError naming `what` if they are not an image."""
        image = data
        try:
            for op in self.pipeline:
                image = op(image)
        except Exception as exc:
            raise TrainError(f"{what}: cannot read it as an image ({type(exc).__name__} {exc})".rstrip()) from None
        if not isinstance(image, np.ndarray):
            raise TrainError(f"{what}: cannot read it as an image")
        return image.astype("float32")

    def postprocess(self, outputs: dict[str, np.ndarray], prepared: dict | None = None) -> tuple[dict, str]:
        """(result, one-line summary) of a batch of one's class probabilities (the model's one output)."""
        from paddleclas.deploy.python.postprocess import Topk
        probs = next(iter(outputs.values()))
        if self.topk is None:   # a label file may name fewer classes than the model has: the id stands in
            names = {i: (self.labels or {}).get(i, "") for i in range(probs.shape[-1])} if self.labels else None
            self.topk = Topk(topk=min(self.k, probs.shape[-1]), label_list=names)
        [result] = self.topk(probs)
        names = result.get("label_names") or [None] * len(result["class_ids"])
        line = " | ".join(f"{c}{f' {n}' if n else ''} {s:.4f}"
                          for c, n, s in zip(result["class_ids"], names, result["scores"]))
        return result, line

    def example(self, rows: int) -> dict[str, np.ndarray]:
        """Inputs to warm a predictor up with, `rows` images of the exported size."""
        return {self.input_name: np.zeros((rows, 3, self.size, self.size), "float32")}

