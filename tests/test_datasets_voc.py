"""VOC detection datasets (roadsign layout, YOLOv3): a good layout parses; every kind of bad layout
names the file and line (the list file's line, or the XML element's line)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kunlun_train.datasets import voc
from kunlun_train.errors import TrainError

from tests.sample_data import voc as sample


@pytest.fixture
def road(tmp_path) -> Path:
    return sample.voc(tmp_path / "roadsign", images=3)


def parse(root):
    return voc.voc_dataset(root, "train.txt", "label_list.txt")


def write_xml(root: Path, name: str, text: str) -> Path:
    path = root / "annotations" / name
    path.write_text(text)
    return path


def test_a_good_layout_parses(road):
    ds = parse(road)
    assert ds.classes == list(sample.CLASSES)
    assert [(s.image.name, s.annotation.name, s.line) for s in ds.samples] == [
        ("road0.png", "road0.xml", 1), ("road1.png", "road1.xml", 2), ("road2.png", "road2.xml", 3)]
    first, second = ds.samples[0], ds.samples[1]
    assert (first.width, first.height) == (48, 40)
    assert first.boxes == (voc.Box(4, 3, 24, 20, 0),)
    assert [b.label for b in second.boxes] == [1, 2] and second.boxes[1] == voc.Box(14, 11, 34, 28, 2)
    assert ds.describe() == "3 images, 4 boxes, 4 classes from a VOC list file"


def test_comments_blank_lines_difficult_flags_and_clipping(road):
    (road / "train.txt").write_text("# roadsign\n\nimages/road0.png   annotations/road0.xml\n")
    write_xml(road, "road0.xml", sample.annotation_xml("road0.png", 48, 40, [("stop", -5, 2, 60, 30)])
              .replace("<difficult>0</difficult>", "<difficult>1</difficult>"))
    [s] = parse(road).samples
    assert s.line == 3 and s.boxes == (voc.Box(0, 2, 48, 30, 3, difficult=True),)


def test_an_image_without_objects_is_kept(road):
    write_xml(road, "road0.xml", sample.annotation_xml("road0.png", 48, 40, []))
    assert parse(road).samples[0].boxes == ()


def test_missing_label_list_names_the_file(road):
    (road / "label_list.txt").unlink()
    with pytest.raises(TrainError, match=r"label_list.txt: missing; a VOC dataset needs a label list"):
        parse(road)


def test_a_duplicate_class_names_the_line(road):
    (road / "label_list.txt").write_text("stop\ncrosswalk\nstop\n")
    with pytest.raises(TrainError, match=r"label_list.txt:3: class 'stop' is listed twice"):
        parse(road)


def test_an_empty_label_list(road):
    (road / "label_list.txt").write_text("\n# nothing\n")
    with pytest.raises(TrainError, match=r"label_list.txt: no class names"):
        parse(road)


def test_missing_list_file(road):
    (road / "train.txt").unlink()
    with pytest.raises(TrainError, match=r"train.txt: missing; a VOC dataset needs a list file"):
        parse(road)


def test_an_empty_list_file(road):
    (road / "train.txt").write_text("# nothing yet\n")
    with pytest.raises(TrainError, match=r"train.txt: no samples"):
        parse(road)


def test_a_line_with_one_field_names_the_line(road):
    (road / "train.txt").write_text("images/road0.png annotations/road0.xml\nimages/road1.png\n")
    with pytest.raises(TrainError, match=r"train.txt:2: expected '<image path> <annotation path>'"):
        parse(road)


def test_a_missing_image_names_the_line(road):
    (road / "images/road1.png").unlink()
    with pytest.raises(TrainError, match=r"train.txt:2: image images/road1.png not found"):
        parse(road)


def test_a_missing_annotation_names_the_line(road):
    (road / "annotations/road2.xml").unlink()
    with pytest.raises(TrainError, match=r"train.txt:3: annotation annotations/road2.xml not found"):
        parse(road)


def test_malformed_xml_names_the_file_and_line(road):
    path = write_xml(road, "road1.xml", "<annotation>\n  <size><width>4</width>\n</annotation>\n")
    with pytest.raises(TrainError, match=rf"{path}:3: not valid XML: mismatched tag"):
        parse(road)


def test_a_wrong_root_element(road):
    path = write_xml(road, "road0.xml", "<?xml version='1.0'?>\n<annotations/>\n")
    with pytest.raises(TrainError, match=rf"{path}:2: expected a VOC <annotation> document, found <annotations>"):
        parse(road)


def test_a_missing_size(road):
    path = write_xml(road, "road0.xml", "<annotation>\n</annotation>\n")
    with pytest.raises(TrainError, match=rf"{path}:1: <annotation> has no <size>"):
        parse(road)


def test_a_bad_size_names_the_element_line(road):
    text = sample.annotation_xml("road0.png", 48, 40, []).replace("<height>40</height>", "<height>forty</height>")
    path = write_xml(road, "road0.xml", text)
    with pytest.raises(TrainError, match=rf"{path}:6: image size: <height> is 'forty', not a number"):
        parse(road)


def test_an_unknown_class_names_the_object_line(road):
    text = sample.annotation_xml("road1.png", 48, 40, [("stop", 1, 1, 9, 9), ("giraffe", 2, 2, 8, 8)])
    path = write_xml(road, "road1.xml", text)
    with pytest.raises(TrainError, match=rf"{path}:20: object 2: class 'giraffe' is not in label_list.txt "
                                         r"\(known: speedlimit, crosswalk, trafficlight, stop\)"):
        parse(road)


def test_an_object_without_a_box(road):
    path = write_xml(road, "road0.xml", "<annotation>\n<size><width>9</width><height>9</height></size>\n"
                                        "<object>\n<name>stop</name>\n</object>\n</annotation>\n")
    with pytest.raises(TrainError, match=rf"{path}:3: object 1 \(stop\) has no <bndbox>"):
        parse(road)


def test_a_missing_coordinate(road):
    text = sample.annotation_xml("road0.png", 48, 40, [("stop", 1, 1, 9, 9)]).replace("<ymax>9</ymax>", "")
    path = write_xml(road, "road0.xml", text)
    with pytest.raises(TrainError, match=rf"{path}:12: object 1: <bndbox> has no <ymax>"):
        parse(road)


def test_an_empty_box(road):
    path = write_xml(road, "road0.xml", sample.annotation_xml("road0.png", 48, 40, [("stop", 20, 5, 10, 30)]))
    with pytest.raises(TrainError, match=rf"{path}:12: object 1 \(stop\): empty box after clipping"):
        parse(road)


def test_a_missing_directory():
    with pytest.raises(TrainError, match="not a directory"):
        parse("/nonexistent/roadsign")


RECIPE = {"DataLoader": {"train_list": "train.txt", "val_list": "valid.txt", "label_list": "label_list.txt"}}


def test_check_reads_the_validation_list_when_there_is_one(tmp_path):
    root = sample.learnable(tmp_path / "squares", train=3, val=2, size=32)
    voc.check(RECIPE, root, "train")
    (root / "valid.txt").write_text("images/valid_000.png annotations/missing.xml\n")
    voc.voc_dataset.cache_clear()   # parsed once a process (the check, then the task): the file changed
    with pytest.raises(TrainError, match=r"valid.txt:1: annotation annotations/missing.xml not found"):
        voc.check(RECIPE, root, "train")


def test_check_without_a_validation_list_trains_but_does_not_evaluate(road):
    voc.check(RECIPE, road, "train")
    with pytest.raises(TrainError, match="valid.txt"):
        voc.check(RECIPE, road, "eval")


def test_the_learnable_set_has_one_square_a_picture(tmp_path):
    root = sample.learnable(tmp_path / "squares", train=4, val=2, size=48)
    train, val = parse(root), voc.voc_dataset(root, "valid.txt", "label_list.txt")
    assert train.classes == ["square"] and len(train.samples) == 4 and len(val.samples) == 2
    assert all(len(s.boxes) == 1 and 12 <= s.boxes[0].xmax - s.boxes[0].xmin <= 22 for s in train.samples)
