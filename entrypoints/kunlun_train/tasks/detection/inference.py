"""PaddleDetection's deploy pre- and post-processing around an exported model, for `predict`
(adapter.py) and the server's predict route (serving/routes.py). ppdet is imported when an
Inference is built, never at module level: `serve` first makes ppdet's data transforms importable
without the package inits (imports.py, the adapter's serve_without_init), and then only
`ppdet.data.transform.operators` and `batch_operators` are imported, not `ppdet.data.transform`."""
from __future__ import annotations

import contextlib
import io
import sys

import numpy as np

from ...errors import TrainError

# Printed by `import ppdet` for optional packages it never needs here (tracking, MOT metrics).
_IMPORT_NOISE = ("Warning: Unable to use",)


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
