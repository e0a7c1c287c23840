"""The predict route of a task, `POST /v2/models/NAME/predict`, for people who hold files, not tensors:
the body is the file itself (an image's bytes, any content type but JSON) or JSON
`{"image": "<base64>"}`; it runs the task's own Inference (the exported inference.yml's
pre-processing, the model through the server's queue and predictors, the task's post-processing) and
answers what `predict` prints for that file. Which tasks have one: those whose adapter offers
`inference(config)` (tasks/); the others serve tensors on /infer only."""
from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import numpy as np

from ..errors import TrainError
from .protocol import BadRequest


class TaskRoute:
    def __init__(self, inference):
        self.inference = inference

    def predict(self, body: bytes, content_type: str, infer) -> dict:
        data = payload(body, content_type)
        try:
            array = self.inference.preprocess(data, "the request body")
        except TrainError as exc:
            raise BadRequest(str(exc)) from None
        outputs = infer({self.inference.input_name: array[np.newaxis]})
        result, _ = self.inference.postprocess(next(iter(outputs.values())))
        return json.loads(json.dumps(result, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))

    def example(self, rows: int) -> dict:
        return self.inference.example(rows)


def payload(body: bytes, content_type: str) -> bytes:
    """The file in the body: the bytes as sent, or JSON {"image": base64}."""
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        return body
    try:
        document = json.loads(body)
        encoded = document["image"]
        return base64.b64decode(encoded, validate=True)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not valid JSON; send the file's bytes, or {\"image\": \"<base64>\"}") from None
    except (KeyError, TypeError):
        raise BadRequest("expected JSON {\"image\": \"<base64 of the file>\"}, or the file's bytes as the body") from None
    except binascii.Error:
        raise BadRequest("\"image\": not base64 (expected the file's bytes in base64)") from None


def for_export(directory: Path, task_name: str | None):
    """The task route for the export in `directory` (its inference.yml says the task), or None."""
    from ..tasks import adapter
    config = json.loads((directory / "inference.yml").read_text())
    task = config.get("Global", {}).get("task") or task_name
    make = getattr(adapter(task), "inference", None) if task else None
    return TaskRoute(make(config)) if make else None
