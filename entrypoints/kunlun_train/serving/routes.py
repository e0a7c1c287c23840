"""The predict route of a task, `POST /v2/models/NAME/predict`, for people who hold inputs, not tensors:
the body is what `predict` reads from a file, it runs the task's own Inference (the exported
inference.yml's pre-processing, the model through the server's queue and predictors, the task's
post-processing) and answers what `predict` saves (--save) for that input. Which tasks have one:
those whose adapter offers `inference(config, directory)` (tasks/); the others serve tensors on /infer only.

What a body is, by the Inference's `body`:
  "image" (default)  the file's bytes (any content type but JSON), or JSON {"image": "<base64>"}
  "text"             the text itself (text/plain, UTF-8), or JSON {"text": "..."}
  "json"             a JSON document (the Inference reads it), or another content type's UTF-8 text
In JSON, the keys of the Inference's `options` (name -> type, e.g. detection's "threshold") may come too.

The Inference interface (tasks/<task>/inference.py; classification's is the simplest):
  preprocess(data, what) -> an array (one row of `input_name`), or a dict: the model's inputs by name
      (`input_names`, each a batch of one) plus, under other keys, what postprocess needs of this
      input (its size, ...); TrainError naming `what` if the data is not a valid input
  postprocess(outputs: dict[name, array], prepared) -> (result dict, the line `predict` prints)
  example(rows) -> inputs to warm a predictor up with"""
from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import numpy as np

from .. import imports
from ..errors import TrainError
from .protocol import BadRequest

WHAT = "the request body"


class TaskRoute:
    def __init__(self, inference):
        self.inference = inference
        self.names = tuple(getattr(inference, "input_names", None) or (inference.input_name,))
        self.body = getattr(inference, "body", "image")     # what a request carries (see above)

    def predict(self, body: bytes, content_type: str, infer) -> dict:
        data, options = read(body, content_type, self.body, getattr(self.inference, "options", {}))
        try:
            prepared = self.inference.preprocess(data, WHAT)
        except TrainError as exc:
            raise BadRequest(str(exc)) from None
        if isinstance(prepared, np.ndarray):
            prepared = {self.names[0]: prepared[np.newaxis]}
        prepared = {**prepared, **options}
        outputs = infer({name: prepared[name] for name in self.names})
        result, _ = self.inference.postprocess(outputs, prepared)
        return json.loads(json.dumps(result, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))

    def example(self, rows: int) -> dict:
        return self.inference.example(rows)


def is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower().endswith("json")


def read(body: bytes, content_type: str, kind: str = "image", options: dict | None = None):
    """(the input in the body, the options given with it in JSON)."""
    if kind == "image":
        return payload(body, content_type, options), {} if not is_json(content_type) else \
            given(json.loads(body), options)
    if not is_json(content_type):
        try:
            return body.decode("utf-8"), {}
        except UnicodeDecodeError as exc:
            raise BadRequest(f"{WHAT} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"{WHAT} is not valid JSON") from None
    if kind == "json":
        return document, given(document, options) if isinstance(document, dict) else {}
    if not isinstance(document, dict) or not isinstance(document.get(kind), str):
        raise BadRequest(f"expected JSON {{\"{kind}\": \"...\"}}, or the {kind} itself as text/plain")
    return document[kind], given(document, options)


def given(document, options: dict | None) -> dict:
    """The options in a JSON body, each of its type; a key that is neither the input nor an option is refused."""
    options = options or {}
    found = {}
    for key, value in document.items():
        if key in ("image", "text", "observation", "obs"):
            continue
        if key not in options:
            known = ", ".join(f'"{k}"' for k in options) or "none"
            raise BadRequest(f"{WHAT}: unknown key \"{key}\" (options here: {known})")
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            found[key] = options[key](value)
        except (TypeError, ValueError):
            raise BadRequest(f"{WHAT}: \"{key}\": expected a {options[key].__name__}, got {value!r}") from None
    return found


def payload(body: bytes, content_type: str, options: dict | None = None) -> bytes:
    """The file in the body: the bytes as sent, or JSON {"image": base64}."""
    if not is_json(content_type):
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
    """The task route for the export in `directory` (its inference.yml says the task; files beside it,
    a vocabulary or label list, are read from there), or None."""
    from ..tasks import adapter
    config = json.loads((directory / "inference.yml").read_text())
    task = config.get("Global", {}).get("task") or task_name
    make = getattr(adapter(task), "inference", None) if task else None
    if make is None:
        return None
    imports.without_init(*adapter(task).serve_without_init)   # what a serving image lacks is never imported
    imports.unused(*adapter(task).serve_unused)
    return TaskRoute(make(config, Path(directory)))
