"""The Open Inference Protocol (KServe V2) REST body, without a web framework or Paddle: a request
checked against the model's tensors and turned into numpy arrays, arrays turned into a response.

Spec: kserve/kserve:docs/predict-api/v2/required_api.md. Tensor data is JSON (nested or flat,
row-major) or, with Triton's binary tensor data extension (the default of tritonclient), raw
little-endian bytes after a JSON header of `Inference-Header-Content-Length` bytes. Every check
fails with a BadRequest whose message names the input and what was expected: a client's mistake
is a 400, never a server's crash (triton#1649, #3158)."""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

DTYPES = {"BOOL": np.dtype(bool), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
          "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
          "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
          "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
          "BYTES": np.dtype(object)}
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"


class BadRequest(ValueError):
    """The client's request is wrong (HTTP 400 unless `status` says otherwise)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class NotFinite(ValueError):
    """The model answered NaN or Inf where the response is JSON, which cannot carry them (HTTP 500:
    the model's fault, not the client's). A model whose training diverged answers NaN."""


NOT_FINITE_HINT = "the model's training may have diverged (check its loss) or its inputs overflowed"


def datatype_of(dtype: np.dtype) -> str:
    """The V2 datatype of a numpy dtype (strings and bytes are BYTES)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    for name, known in DTYPES.items():
        if known == dtype:
            return name
    raise ValueError(f"no V2 datatype for numpy dtype {dtype}")


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as V2 metadata: -1 marks a variable dimension (dim 0 is the batch)."""
    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    versions: tuple[str, ...] = ("1",)

    def metadata(self) -> dict:
        return {"name": self.name, "versions": list(self.versions), "platform": self.platform,
                "inputs": [t.metadata() for t in self.inputs], "outputs": [t.metadata() for t in self.outputs]}


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None = None          # None: every output
    binary_outputs: set[str] = field(default_factory=set)


def _shape(name: str, given) -> tuple[int, ...]:
    if not isinstance(given, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in given):
        raise BadRequest(f"input '{name}': shape must be a list of non-negative integers, got {json.dumps(given)}")
    return tuple(given)


def _check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    expected = list(spec.shape)
    if len(shape) != len(expected) or any(e != -1 and e != s for e, s in zip(expected, shape)):
        raise BadRequest(f"input '{spec.name}': shape {list(shape)} does not fit the model's {expected} "
                         "(-1 = any size)")


def _from_json(spec: TensorSpec, shape: tuple[int, ...], data) -> np.ndarray:
    """JSON numbers (nested or flat) as an array of the spec's dtype, refusing lossy conversions."""
    count = math.prod(shape)
    try:
        raw = np.asarray(data)
    except ValueError:   # ragged nesting
        raise BadRequest(f"input '{spec.name}': data is a ragged nested list; expected {count} values "
                         f"for shape {list(shape)}") from None
    want = DTYPES[spec.datatype]
    accepted = {"b": "b", "u": "iu", "i": "iu", "f": "iuf", "O": "U"}[want.kind]
    if raw.size and raw.dtype.kind not in accepted:
        kinds = {"b": "true/false", "iu": "integers", "iuf": "numbers", "U": "strings"}[accepted]
        raise BadRequest(f"input '{spec.name}': datatype {spec.datatype} needs {kinds} in data, "
                         f"got {_kind_name(raw.dtype)}")
    if raw.size != count:
        raise BadRequest(f"input '{spec.name}': shape {list(shape)} needs {count} values, data has {raw.size}")
    if want.kind in "ui" and raw.size:
        info = np.iinfo(want)
        if raw.min() < info.min or raw.max() > info.max:
            raise BadRequest(f"input '{spec.name}': a value is outside {spec.datatype}'s range "
                             f"[{info.min}, {info.max}]")
    if want.kind == "O":
        return np.array([s.encode("utf-8") for s in raw.reshape(-1).tolist()], dtype=object).reshape(shape)
    return raw.reshape(shape).astype(want, copy=False)


def _kind_name(dtype: np.dtype) -> str:
    return {"b": "true/false", "i": "integers", "u": "integers", "f": "floating-point numbers",
            "U": "strings"}.get(dtype.kind, "mixed or null values")


def _from_binary(spec: TensorSpec, shape: tuple[int, ...], blob: bytes) -> np.ndarray:
    count = math.prod(shape)
    if spec.datatype == "BYTES":
        items, at = [], 0
        while at < len(blob):
            if at + 4 > len(blob):
                raise BadRequest(f"input '{spec.name}': BYTES data ends inside a 4-byte length prefix")
            (size,) = struct.unpack_from("<I", blob, at)
            items.append(bytes(blob[at + 4:at + 4 + size]))
            at += 4 + size
        if at != len(blob) or len(items) != count:
            raise BadRequest(f"input '{spec.name}': shape {list(shape)} needs {count} BYTES elements, "
                             f"the binary data holds {len(items)}")
        return np.array(items, dtype=object).reshape(shape)
    want = DTYPES[spec.datatype]
    if len(blob) != count * want.itemsize:
        raise BadRequest(f"input '{spec.name}': shape {list(shape)} of {spec.datatype} needs "
                         f"{count * want.itemsize} bytes of binary data, got {len(blob)}")
    return np.frombuffer(blob, dtype=want.newbyteorder("<")).astype(want).reshape(shape)


def _json_object(text: bytes, what: str) -> dict:
    if not text.strip():
        raise BadRequest(f"empty body: expected {what}")
    try:
        body = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"malformed JSON in the request body: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object ({what}), got {type(body).__name__}")
    return body


def parse_request(body: bytes, model: ModelSpec, header_length: str | None = None) -> InferRequest:
    """An inference request checked against the model: every input present once with the model's
    datatype, a fitting shape and exactly shape's count of values; requested outputs exist."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            size = -1
        if not 0 <= size <= len(body):
            raise BadRequest(f"Inference-Header-Content-Length {header_length!r} is not a length within "
                             f"the body's {len(body)} bytes")
        body, binary = body[:size], memoryview(body)[size:]
    request = _json_object(body, 'an inference request {"inputs": [{"name", "shape", "datatype", "data"}]}')
    specs = {t.name: t for t in model.inputs}
    given = request.get("inputs")
    if not isinstance(given, list) or not given:
        raise BadRequest(f"'inputs' must be a non-empty list of tensors; the model takes {_names(specs)}")
    arrays: dict[str, np.ndarray] = {}
    at = 0
    for tensor in given:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadRequest(f"each input must be an object with a 'name'; the model takes {_names(specs)}")
        name = tensor["name"]
        if name not in specs:
            raise BadRequest(f"unknown input '{name}': the model takes {_names(specs)}")
        if name in arrays:
            raise BadRequest(f"input '{name}' given twice")
        spec = specs[name]
        if tensor.get("datatype") != spec.datatype:
            raise BadRequest(f"input '{name}': datatype {json.dumps(tensor.get('datatype'))}, expected {spec.datatype}")
        shape = _shape(name, tensor.get("shape"))
        _check_shape(spec, shape)
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequest(f"input '{name}': 'parameters' must be an object")
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or at + size > len(binary):
                raise BadRequest(f"input '{name}': binary_data_size {json.dumps(size)} exceeds the "
                                 f"{len(binary) - at} bytes of binary data left in the body")
            arrays[name] = _from_binary(spec, shape, bytes(binary[at:at + size]))
            at += size
        elif "data" in tensor:
            arrays[name] = _from_json(spec, shape, tensor["data"])
        else:
            raise BadRequest(f"input '{name}': no 'data' (and no binary_data_size parameter)")
    if at != len(binary):
        raise BadRequest(f"{len(binary) - at} bytes of binary data after the JSON header belong to no input")
    missing = [n for n in specs if n not in arrays]
    if missing:
        raise BadRequest(f"missing input(s) {', '.join(repr(n) for n in missing)}: the model takes {_names(specs)}")
    outputs, binary_out = _requested_outputs(request, model)
    request_id = request.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, arrays, outputs, binary_out)


def _requested_outputs(request: dict, model: ModelSpec) -> tuple[list[str] | None, set[str]]:
    known = [t.name for t in model.outputs]
    params = request.get("parameters") or {}
    everything_binary = isinstance(params, dict) and params.get("binary_data_output") is True
    wanted = request.get("outputs")
    if wanted is None:
        return None, set(known) if everything_binary else set()
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    names, binary = [], set()
    for o in wanted:
        if o["name"] not in known:
            raise BadRequest(f"unknown output '{o['name']}': the model's outputs are {', '.join(known)}")
        names.append(o["name"])
        if everything_binary or (o.get("parameters") or {}).get("binary_data") is True:
            binary.add(o["name"])
    return names, binary


def _names(specs: dict[str, TensorSpec]) -> str:
    return ", ".join(f"'{t.name}' ({t.datatype} {list(t.shape)})" for t in specs.values())


def encode_response(model: str, request: InferRequest, outputs: dict[str, np.ndarray],
                    version: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers. Outputs asked for in binary go after the JSON."""
    names = request.outputs if request.outputs is not None else list(outputs)
    tensors, blobs = [], []
    for name in names:
        array = np.asarray(outputs[name])
        tensor = {"name": name, "datatype": datatype_of(array.dtype), "shape": list(array.shape)}
        if name in request.binary_outputs:
            blob = _to_binary(array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif tensor["datatype"] == "BYTES":
            tensor["data"] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                              for v in array.reshape(-1).tolist()]
        else:
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                raise NotFinite(f"output '{name}' holds NaN or Inf, which JSON cannot carry: "
                                f"{NOT_FINITE_HINT}; ask for it in binary (parameters.binary_data) to get the values")
            tensor["data"] = array.reshape(-1).tolist()
        tensors.append(tensor)
    response = {"model_name": model, **({"model_version": version} if version else {}),
                "id": request.id if request.id is not None else "", "outputs": tensors}
    head = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {"content-type": "application/octet-stream",
                                    HEADER_LENGTH: str(len(head))}


def _to_binary(array: np.ndarray) -> bytes:
    if datatype_of(array.dtype) == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1).tolist()]
        return b"".join(struct.pack("<I", len(v)) + v for v in items)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def server_metadata(version: str) -> dict:
    return {"name": "kunlun-serve", "version": version, "extensions": list(EXTENSIONS)}


def example_inputs(inputs: tuple[TensorSpec, ...], rows: int, dynamic: int = 32) -> dict[str, np.ndarray]:
    """Zeros of every input with `rows` in dim 0, to warm a predictor up at that batch size; other
    variable dims get `dynamic` (large enough for a conv net's strides, short for a sequence)."""
    return {t.name: np.zeros([rows] + [dynamic if d == -1 else d for d in t.shape[1:]], DTYPES[t.datatype])
            if t.datatype != "BYTES" else np.full([rows] + [dynamic if d == -1 else d for d in t.shape[1:]],
                                                  b"", dtype=object)
            for t in inputs}
