"""A recipe's operator sections ({Name: {args}} in the order written), shared by the segmentation and
detection tasks: order kept, null/false switch one off, true takes its defaults, the arguments are a
copy, and anything else is refused naming the key and the suite's word for it."""
from __future__ import annotations

import pytest

from kunlun_train.errors import TrainError
from kunlun_train.recipe import operators

DETECTION = ("PaddleDetection", "operator", "{Decode: {}}")


def test_operators_keep_the_order_written_and_switches():
    section = {"Decode": {}, "RandomExpand": None, "RandomFlip": {"prob": 0.5}, "Mixup": False, "Permute": True}
    found = operators(section, "Train.sample_transforms", *DETECTION)
    assert found == [("Decode", {}), ("RandomFlip", {"prob": 0.5}), ("Permute", {})]
    found[1][1]["prob"] = 0
    assert section["RandomFlip"] == {"prob": 0.5}          # the recipe itself is not changed


def test_no_section_is_no_operators():
    assert operators(None, "Eval.batch_transforms", *DETECTION) == []


def test_a_list_or_bad_arguments_are_refused_naming_the_key():
    with pytest.raises(TrainError, match=r"Train.sample_transforms: expected PaddleDetection operators by name"):
        operators([{"Decode": {}}], "Train.sample_transforms", *DETECTION)
    with pytest.raises(TrainError, match=r"Eval.sample_transforms.Resize=608: expected the operator's arguments"):
        operators({"Resize": 608}, "Eval.sample_transforms", *DETECTION)
