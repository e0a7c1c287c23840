"""PaddleSeg's deploy pre- and post-processing around an exported model, for `predict` (adapter.py)
and the server's predict route (serving/routes.py). The suite is imported when an Inference is
built, never at module level: `serve` first makes it importable without its package inits
(imports.py, the adapter's serve_without_init)."""
from __future__ import annotations

import copy

import numpy as np

from ...errors import TrainError


class Inference:
    """PaddleSeg's deploy pipeline (deploy/python/infer.py) around the exported model: the image read
    as cv2 reads it (BGR), deploy.yaml's transforms, the model's class ids, back to the image's own
    size (nearest: reverse_transform), the mask as a PNG of class ids with PaddleSeg's colour palette.
    `predict` and the server's predict route both run this; the route answers the PNG in base64
    ("mask_png") where predict writes it to a file."""

    input_name = "x"
    input_names = ("x",)

    def __init__(self, config: dict, labels: dict | None = None):
        from paddleseg.deploy.infer import DeployConfig
        deploy = config["Deploy"]
        self.transforms = copy.deepcopy(deploy["transforms"])
        self.compose = DeployConfig.load_transforms(copy.deepcopy(deploy["transforms"]))   # a Compose, BGR -> RGB
        self.classes = int(deploy.get("num_classes") or 0)
        self.labels = labels
        resize = next((t for t in self.transforms if t.get("type") == "Resize"), {})
        self.size = [int(v) for v in resize.get("target_size", [512, 512])]

    def preprocess(self, data: bytes, what: str) -> dict:
        import cv2
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise TrainError(f"{what}: cannot read it as an image")
        out = self.compose({"img": image.astype("float32"), "trans_info": []})
        return {"x": out["img"][np.newaxis].astype("float32"), "trans_info": out["trans_info"],
                "size": image.shape[:2]}

    def postprocess(self, outputs: dict, prepared: dict) -> tuple[dict, str]:
        import base64
        import io
        import paddle
        from paddleseg.core.infer import reverse_transform
        from paddleseg.utils.visualize import get_pseudo_color_map
        ids = next(iter(outputs.values()))
        pred = reverse_transform(paddle.to_tensor(ids.reshape([1, 1, *ids.shape[-2:]])), prepared["trans_info"],
                                 mode="nearest")
        mask = pred.numpy().reshape(tuple(prepared["size"])).astype("uint8")
        buffer = io.BytesIO()
        get_pseudo_color_map(mask).save(buffer, format="PNG")
        pixels = np.bincount(mask.ravel(), minlength=self.classes)
        labels = self.labels
        shares = " ".join(f"{i}{f' {labels[i]}' if labels and i in labels else ''} {n / mask.size:.1%}"
                          for i, n in enumerate(pixels) if n)
        return ({"shape": list(mask.shape), "pixels": pixels.tolist(),
                 "mask_png": base64.b64encode(buffer.getvalue()).decode("ascii")},
                f"{mask.shape[1]}x{mask.shape[0]} | classes {shares}")

    def example(self, rows: int) -> dict[str, np.ndarray]:
        return {"x": np.zeros((rows, 3, self.size[1], self.size[0]), "float32")}
