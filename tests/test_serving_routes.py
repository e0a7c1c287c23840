"""The task route (serving/routes.py) with stand-in Inferences: how each kind of body is read (image
bytes or base64 JSON, text or {"text"}, a JSON document), the options a JSON body may carry, several
named inputs fed and the outputs handed to postprocess by name, and a bad input a 400 naming the body."""
import base64
import json

import numpy as np
import pytest

from kunlun_train.errors import TrainError
from kunlun_train.serving.protocol import BadRequest
from kunlun_train.serving.routes import TaskRoute


class Echo:
    """Two inputs; postprocess sees the outputs by name and what preprocess kept of the input."""
    input_name = "a"
    input_names = ("a", "b")
    options = {"threshold": float}

    def __init__(self, body):
        self.body = body

    def preprocess(self, data, what):
        if data in (b"bad", "bad"):
            raise TrainError(f"{what}: cannot read it")
        return {"a": np.ones((1, 2), "float32"), "b": np.zeros((1, 1), "int64"), "data": data}

    def postprocess(self, outputs, prepared):
        return {"outputs": sorted(outputs), "data": repr(prepared["data"]),
                "threshold": prepared.get("threshold")}, "line"


def infer(inputs):
    assert sorted(inputs) == ["a", "b"] and inputs["a"].shape == (1, 2)
    return {"first": inputs["a"].sum(1), "second": inputs["b"][:, 0]}


def test_image_bodies_text_bodies_and_json_documents():
    image = TaskRoute(Echo("image"))
    assert image.predict(b"\x89PNG", "image/png", infer) == {"outputs": ["first", "second"], "data": "b'\\x89PNG'",
                                                            "threshold": None}
    encoded = json.dumps({"image": base64.b64encode(b"PNG").decode(), "threshold": 0.25}).encode()
    assert image.predict(encoded, "application/json", infer)["threshold"] == 0.25
    text = TaskRoute(Echo("text"))
    assert text.predict("a sentence é".encode(), "text/plain; charset=utf-8", infer)["data"] == "'a sentence é'"
    assert text.predict(b'{"text": "hi"}', "application/json", infer)["data"] == "'hi'"
    document = TaskRoute(Echo("json"))
    assert document.predict(b'{"observation": [1, 2]}', "application/json", infer)["data"] == \
        "{'observation': [1, 2]}"
    assert document.predict(b"1,2", "text/csv", infer)["data"] == "'1,2'"


@pytest.mark.parametrize("kind, body, content_type, message", [
    ("image", b"bad", "image/png", "the request body: cannot read it"),
    ("text", b"bad", "text/plain", "the request body: cannot read it"),
    ("text", b"\xff\xfe", "text/plain", "not UTF-8 text"),
    ("text", b'{"sentence": "x"}', "application/json", 'expected JSON {"text": "..."}'),
    ("json", b"{not json", "application/json", "not valid JSON"),
    ("image", b'{"image": "UE5H", "size": 3}', "application/json", 'unknown key "size"'),
    ("image", b'{"image": "UE5H", "threshold": "high"}', "application/json", '"threshold": expected a float'),
])
def test_a_bad_body_is_a_400_naming_it(kind, body, content_type, message):
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace("{", r"\{")):
        TaskRoute(Echo(kind)).predict(body, content_type, infer)


def test_a_single_input_inference_returns_one_row():
    class One:
        input_name = "x"

        def preprocess(self, data, what):
            return np.zeros((3,), "float32")

        def postprocess(self, outputs, prepared):
            return {"shape": list(prepared["x"].shape), "out": next(iter(outputs.values()))}, "line"
    assert TaskRoute(One()).predict(b"x", "image/png", lambda inputs: {"y": inputs["x"] + 1}) == \
        {"shape": [1, 3], "out": [[1.0, 1.0, 1.0]]}


def test_the_backend_takes_input_dtypes_from_the_program_not_the_unfed_handle(tmp_path):
    """An unfed handle says FLOAT32 (Paddle 3.2.2): BERT's int64 ids must be declared INT64."""
    from kunlun_train.serving import backend

    def data(name, shape, dtype):
        return {"#": "1.data", "A": [{"AT": {"#": "0.a_str", "D": name}, "N": "name"},
                                     {"AT": {"#": "1.a_intarray", "D": shape}, "N": "shape"},
                                     {"AT": {"#": "1.a_dtype", "D": dtype}, "N": "dtype"}]}
    model = tmp_path / "inference.json"
    model.write_text(json.dumps({"program": {"regions": [{"blocks": [{"ops": [
        data("input_ids", [-1, -1], "int64"), data("x", [-1, 3, 32, 32], "float32")]}]}]}}))
    assert backend.declared(model) == {"input_ids": ([-1, -1], "int64"), "x": ([-1, 3, 32, 32], "float32")}
    assert backend.declared_shapes(model) == {"input_ids": [-1, -1], "x": [-1, 3, 32, 32]}

    class Unfed:
        def type(self):
            return type("PaddleDType", (), {"name": "FLOAT32"})()
    assert backend.PaddleBackend._spec("input_ids", Unfed(), [-1, -1], "int64").datatype == "INT64"
    assert backend.PaddleBackend._spec("x", Unfed(), [-1, 3], None).datatype == "FP32"
