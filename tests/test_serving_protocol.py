"""The V2 request/response body (serving/protocol.py): every malformed request is a BadRequest whose
message names the input and what was expected; JSON and binary tensor data decode to the same arrays."""
import json
import struct

import numpy as np
import pytest

from kunlun_train.serving import protocol
from kunlun_train.serving.protocol import BadRequest, ModelSpec, TensorSpec

SPEC = ModelSpec("m", "numpy_standin", (TensorSpec("x", "FP32", (-1, 4)), TensorSpec("ids", "INT64", (-1, 2))),
                 (TensorSpec("y", "FP32", (-1, 3)),))


def body(**overrides):
    inputs = [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
              {"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [[5, 6]]}]
    for i, tensor in enumerate(inputs):
        tensor.update(overrides.get(tensor["name"], {}))
    return json.dumps({"inputs": inputs, **overrides.get("request", {})}).encode()


def test_nested_and_flat_data_give_the_same_arrays():
    request = protocol.parse_request(body(x={"data": [[1, 2, 3, 4]]}, request={"id": "7"}), SPEC)
    flat = protocol.parse_request(body(), SPEC)
    assert request.id == "7" and request.outputs is None
    for name in ("x", "ids"):
        np.testing.assert_array_equal(request.inputs[name], flat.inputs[name])
    assert request.inputs["x"].dtype == np.float32 and request.inputs["ids"].dtype == np.int64
    assert request.inputs["x"].shape == (1, 4)


@pytest.mark.parametrize("raw, words", [
    (b"", "empty body"),
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"inputs": []}', "non-empty list"),
    (body(x={"name": "z"}), "unknown input 'z'"),
    (body(x={"datatype": "FP64"}), "input 'x': datatype \"FP64\", expected FP32"),
    (body(x={"shape": [1, 5], "data": [1] * 5}), "input 'x': shape [1, 5] does not fit the model's [-1, 4]"),
    (body(x={"shape": [1, -4]}), "input 'x': shape must be a list of non-negative integers"),
    (body(x={"shape": "1x4"}), "input 'x': shape must be"),
    (body(x={"data": [1, 2, 3]}), "input 'x': shape [1, 4] needs 4 values, data has 3"),
    (body(x={"data": [[1, 2], [3]]}), "input 'x': data is a ragged nested list"),
    (body(x={"data": ["a", "b", "c", "d"]}), "input 'x': datatype FP32 needs numbers in data, got strings"),
    (body(x={"data": [1, None, 3, 4]}), "got mixed or null values"),
    (body(ids={"data": [1.5, 2]}), "input 'ids': datatype INT64 needs integers in data, got floating-point"),
    (body(ids={"data": [True, False]}), "needs integers in data, got true/false"),
    (body(ids={"data": [2 ** 70, 1]}), "input 'ids'"),
    (body(request={"outputs": [{"name": "nope"}]}), "unknown output 'nope'"),
])
def test_bad_requests_say_what_and_where(raw, words):
    with pytest.raises(BadRequest) as info:
        protocol.parse_request(raw, SPEC)
    assert words in str(info.value) and info.value.status == 400


def test_missing_and_repeated_inputs():
    one = json.loads(body())
    only_x = json.dumps({"inputs": one["inputs"][:1]}).encode()
    with pytest.raises(BadRequest, match="missing input.*'ids'"):
        protocol.parse_request(only_x, SPEC)
    twice = json.dumps({"inputs": one["inputs"] + one["inputs"][:1]}).encode()
    with pytest.raises(BadRequest, match="input 'x' given twice"):
        protocol.parse_request(twice, SPEC)


def test_integer_range_is_checked():
    spec = ModelSpec("m", "p", (TensorSpec("b", "UINT8", (-1,)),), ())
    raw = json.dumps({"inputs": [{"name": "b", "shape": [2], "datatype": "UINT8", "data": [3, 300]}]}).encode()
    with pytest.raises(BadRequest, match=r"outside UINT8's range \[0, 255\]"):
        protocol.parse_request(raw, spec)


def test_binary_tensor_data_extension():
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    ids = np.array([[1, 2], [3, 4]], np.int64)
    head = json.dumps({"inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}},
        {"name": "ids", "shape": [2, 2], "datatype": "INT64", "data": ids.tolist()}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    request = protocol.parse_request(head + x.tobytes(), SPEC, str(len(head)))
    np.testing.assert_array_equal(request.inputs["x"], x)
    assert request.binary_outputs == {"y"}
    with pytest.raises(BadRequest, match="input 'x': shape \\[2, 4\\] of FP32 needs 32 bytes"):
        bad = head.replace(b'"binary_data_size": 32', b'"binary_data_size": 28')
        protocol.parse_request(bad + x.tobytes()[:28], SPEC, str(len(bad)))
    with pytest.raises(BadRequest, match="belong to no input"):
        protocol.parse_request(head + x.tobytes() + b"junk", SPEC, str(len(head)))
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
        protocol.parse_request(head, SPEC, "99999")


def test_bytes_tensors_json_and_binary():
    spec = ModelSpec("m", "p", (TensorSpec("s", "BYTES", (-1,)),), ())
    raw = json.dumps({"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["héllo", "x"]}]}).encode()
    assert protocol.parse_request(raw, spec).inputs["s"].tolist() == ["héllo".encode(), b"x"]
    blob = b"".join(struct.pack("<I", len(v)) + v for v in (b"ab", b""))
    head = json.dumps({"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(blob)}}]}).encode()
    assert protocol.parse_request(head + blob, spec, str(len(head))).inputs["s"].tolist() == [b"ab", b""]


def test_response_json_and_binary():
    request = protocol.InferRequest("r1", {}, None, set())
    outputs = {"y": np.array([[0.5, 1.5]], np.float32), "n": np.array([3], np.int64)}
    content, headers = protocol.encode_response("m", request, outputs)
    assert headers == {"content-type": "application/json"}
    assert json.loads(content) == {"model_name": "m", "id": "r1", "outputs": [
        {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1.5]},
        {"name": "n", "datatype": "INT64", "shape": [1], "data": [3]}]}
    request = protocol.InferRequest(None, {}, ["y"], {"y"})
    content, headers = protocol.encode_response("m", request, outputs, version="1")
    size = int(headers[protocol.HEADER_LENGTH])
    head = json.loads(content[:size])
    assert head["model_version"] == "1" and head["outputs"][0]["parameters"] == {"binary_data_size": 8}
    np.testing.assert_array_equal(np.frombuffer(content[size:], np.float32), [0.5, 1.5])


def test_datatypes_map_to_numpy_and_back():
    for name, dtype in protocol.DTYPES.items():
        assert protocol.datatype_of(dtype) == name
    assert protocol.datatype_of(np.dtype("<U3")) == "BYTES"
    warm = protocol.example_inputs(SPEC.inputs, 3)
    assert warm["x"].shape == (3, 4) and warm["x"].dtype == np.float32 and warm["ids"].dtype == np.int64
