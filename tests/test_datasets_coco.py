"""COCO instance-segmentation datasets (Mask R-CNN): a good layout parses; every kind of bad layout
names the JSON file and the offending image or annotation id (the line for JSON syntax errors).
(The paddledet suite's patches: tests/test_patches.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kunlun_train.datasets import coco
from kunlun_train.errors import TrainError

from tests.sample_data import coco as sample

JSON = "annotations/instances_train.json"


@pytest.fixture
def cocome(tmp_path) -> Path:
    return sample.coco(tmp_path / "cocome", images=3)


def parse(root, image_dir="train"):
    return coco.coco_dataset(root, JSON, image_dir)


def rewrite(root: Path, change) -> Path:
    """Load the instances file, let `change` edit it, write it back."""
    path = root / JSON
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def test_a_good_layout_parses(cocome):
    ds = parse(cocome)
    assert ds.classes == ["cat", "dog"] and ds.skipped == 0
    assert [(s.id, s.image.name, len(s.instances)) for s in ds.samples] == [
        (1, "000000.png", 1), (2, "000001.png", 2), (3, "000002.png", 1)]
    first = ds.samples[0].instances[0]
    assert first.bbox == (4, 3, 24, 19) and first.label == 0 and first.id == 1
    assert first.polygons == ((14.0, 3.0, 24.0, 11.0, 14.0, 19.0, 4.0, 11.0),)
    assert ds.samples[1].instances[0].label == 1
    assert ds.describe() == "3 images, 4 instances, 2 classes from COCO instances_train.json"


def test_categories_map_to_classes_in_id_order(cocome):
    def change(doc):
        doc["categories"] = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
        for ann in doc["annotations"]:
            ann["category_id"] = 7
    rewrite(cocome, change)
    ds = parse(cocome)
    assert ds.classes == ["cat", "dog"] and {i.label for s in ds.samples for i in s.instances} == {1}


def test_crowd_zero_size_and_empty_images_are_skipped(cocome):
    def change(doc):
        doc["annotations"][0]["iscrowd"] = 1
        doc["annotations"][0]["segmentation"] = {"counts": "abc", "size": [40, 48]}
        doc["annotations"][1]["bbox"] = [4, 3, 20, 0]
        doc["annotations"][3]["bbox"] = [40, 30, 20, 20]     # clipped to the 48x40 image
    rewrite(cocome, change)
    ds = parse(cocome)
    assert ds.skipped == 2 and [s.id for s in ds.samples] == [2, 3]
    assert ds.samples[1].instances[0].bbox == (40, 30, 48, 40)


def test_a_missing_annotation_file(cocome):
    (cocome / JSON).unlink()
    with pytest.raises(TrainError, match=r"instances_train.json: missing; a COCO dataset needs an instances JSON"):
        parse(cocome)


def test_invalid_json_names_the_line(cocome):
    path = cocome / JSON
    path.write_text('{\n "images": [],\n "annotations": [,]\n}\n')
    with pytest.raises(TrainError, match=rf"{path}:3: not valid JSON: Expecting value \(column 18\)"):
        parse(cocome)


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_a_missing_section(cocome, key):
    path = rewrite(cocome, lambda doc: doc.pop(key))
    with pytest.raises(TrainError, match=rf"{path}: no '{key}' list"):
        parse(cocome)


def test_not_an_object(cocome):
    (cocome / JSON).write_text("[]")
    with pytest.raises(TrainError, match=r"expected a JSON object"):
        parse(cocome)


def test_a_duplicate_category(cocome):
    path = rewrite(cocome, lambda doc: doc["categories"].append({"id": 2, "name": "again"}))
    with pytest.raises(TrainError, match=rf"{path}: category id 2 appears twice"):
        parse(cocome)


def test_no_categories(cocome):
    rewrite(cocome, lambda doc: doc.update(categories=[]))
    with pytest.raises(TrainError, match=r"'categories' is empty"):
        parse(cocome)


def test_a_missing_image_directory(cocome):
    with pytest.raises(TrainError, match=r"images: missing; the images of instances_train.json go there "
                                         r"\(or set the directory with -o DataLoader.image_dir=DIR\)"):
        parse(cocome, image_dir="images")


def test_a_missing_image_file_names_the_image_id(cocome):
    (cocome / "train/000001.png").unlink()
    with pytest.raises(TrainError, match=rf"{cocome / JSON}: image id 2: train/000001.png not found"):
        parse(cocome)


def test_an_image_without_a_size(cocome):
    rewrite(cocome, lambda doc: doc["images"][2].pop("height"))
    with pytest.raises(TrainError, match=r"image id 3: missing 'height'"):
        parse(cocome)


def test_an_image_with_a_bad_size(cocome):
    rewrite(cocome, lambda doc: doc["images"][0].update(width="48"))
    with pytest.raises(TrainError, match=r"image id 1: width '48' and height 40 must be positive integers"):
        parse(cocome)


def test_an_image_without_an_id(cocome):
    rewrite(cocome, lambda doc: doc["images"][1].pop("id"))
    with pytest.raises(TrainError, match=r"images\[1\]: expected an object with an integer 'id'"):
        parse(cocome)


def test_a_duplicate_annotation_id(cocome):
    rewrite(cocome, lambda doc: doc["annotations"][2].update(id=1))
    with pytest.raises(TrainError, match=r"annotation id 1 appears twice"):
        parse(cocome)


def test_an_annotation_of_an_unknown_image(cocome):
    rewrite(cocome, lambda doc: doc["annotations"][1].update(image_id=99))
    with pytest.raises(TrainError, match=r"annotation id 2: image_id 99 is not in 'images'"):
        parse(cocome)


def test_an_unknown_category_names_the_annotation(cocome):
    path = rewrite(cocome, lambda doc: doc["annotations"][3].update(category_id=5))
    with pytest.raises(TrainError, match=rf"{path}: annotation id 4: category_id 5 is not in 'categories' \(known: 1, 2\)"):
        parse(cocome)


@pytest.mark.parametrize("bbox", [[1, 2, 3], "1 2 3 4", [1, 2, "3", 4]])
def test_a_malformed_bbox(cocome, bbox):
    rewrite(cocome, lambda doc: doc["annotations"][2].update(bbox=bbox))
    with pytest.raises(TrainError, match=r"annotation id 3: 'bbox' must be \[x, y, width, height\]"):
        parse(cocome)


def test_a_negative_box(cocome):
    rewrite(cocome, lambda doc: doc["annotations"][0].update(bbox=[10, 10, -3, 4]))
    with pytest.raises(TrainError, match=r"annotation id 1: bbox \[10, 10, -3, 4\] has a negative width"):
        parse(cocome)


@pytest.mark.parametrize("segm", [None, [], [[1, 2, 3, 4]], [[1, 2, 3, 4, 5]], [[1, 2, 3, 4, 5, "6"]], [1, 2, 3, 4, 5, 6]])
def test_a_bad_polygon(cocome, segm):
    rewrite(cocome, lambda doc: doc["annotations"][1].update(segmentation=segm))
    with pytest.raises(TrainError, match=r"annotation id 2: 'segmentation' must be a list of polygons"):
        parse(cocome)


def test_rle_in_a_non_crowd_annotation(cocome):
    rewrite(cocome, lambda doc: doc["annotations"][1].update(segmentation={"counts": "x", "size": [40, 48]}))
    with pytest.raises(TrainError, match=r"annotation id 2: RLE segmentation in a non-crowd annotation"):
        parse(cocome)


def test_nothing_to_train_on(cocome):
    rewrite(cocome, lambda doc: doc.update(annotations=[]))
    with pytest.raises(TrainError, match=r"no image has an annotated"):
        parse(cocome)


def test_check_reads_the_validation_split_when_there_is_one(tmp_path):
    from kunlun_train.datasets import coco as reader
    recipe = {"DataLoader": {"annotations": "annotations/instances_train.json", "image_dir": "train",
                             "val_annotations": "annotations/instances_val.json", "val_image_dir": "val"}}
    root = sample.coco(tmp_path / "cocome", images=2, val=True)
    reader.check(recipe, root, "train")
    reader.check(recipe, root, "eval")
    (root / "val" / "000001.png").unlink()
    reader.coco_dataset.cache_clear()   # parsed once a process (the check, then the task): the files changed
    with pytest.raises(TrainError, match=r"instances_val.json: image id 2: val/000001.png not found"):
        reader.check(recipe, root, "train")
