"""Segmentation list files (optic_disc_seg layout): a good layout parses, every kind of bad layout
names the file (and line); the mask value check the task runs on each decoded mask; how a recipe's
transforms become PaddleSeg's (tasks/segmentation/spec.py); the learnable sample set. (The paddleseg suite's patches:
tests/test_patches.py.)"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kunlun_train.datasets import segmentation as seg
from kunlun_train.errors import TrainError
from kunlun_train.tasks.segmentation import spec

from tests.sample_data import segmentation as sample
from tests.sample_data.images import grey_png, read_png


@pytest.fixture
def optic(tmp_path) -> Path:
    return sample.write(tmp_path / "optic", images=3, size=16)


def test_a_good_layout_parses(optic):
    samples = seg.segmentation_list(optic, "train_list.txt")
    assert [(s.image.name, s.mask.name) for s in samples] == [("N0001.png", "N0001.png"),
                                                              ("N0002.png", "N0002.png"),
                                                              ("N0003.png", "N0003.png")]
    assert samples[0].image == optic / "JPEGImages/N0001.png" and samples[0].mask == optic / "Annotations/N0001.png"
    assert samples[2].where == f"{optic / 'train_list.txt'}:3"


def test_blank_lines_and_comments_are_skipped_and_lines_keep_their_numbers(optic):
    (optic / "train_list.txt").write_text("# optic disc\n\nJPEGImages/N0002.png   Annotations/N0002.png\n")
    samples = seg.segmentation_list(optic, "train_list.txt")
    assert len(samples) == 1 and samples[0].where.endswith("train_list.txt:3")


def test_another_list_file_name_is_honoured(optic):
    shutil.copy(optic / "train_list.txt", optic / "train.txt")
    assert len(seg.segmentation_list(optic, "train.txt")) == 3


def test_not_a_directory(tmp_path):
    with pytest.raises(TrainError, match="not a directory"):
        seg.segmentation_list(tmp_path / "nowhere", "train_list.txt")


def test_a_missing_list_file_is_named(optic):
    (optic / "train_list.txt").unlink()
    with pytest.raises(TrainError, match=r"train_list.txt: missing; a segmentation dataset needs a list file"):
        seg.segmentation_list(optic, "train_list.txt")


@pytest.mark.parametrize("line", ["JPEGImages/N0001.png",
                                  "JPEGImages/N0001.png Annotations/N0001.png 1",
                                  "JPEGImages/N0001.png 0"])
def test_a_malformed_line_names_file_and_line(optic, line):
    (optic / "train_list.txt").write_text(f"JPEGImages/N0002.png Annotations/N0002.png\n{line}\n")
    with pytest.raises(TrainError) as err:
        seg.segmentation_list(optic, "train_list.txt")
    if line.endswith(" 0"):   # two fields, but the second is no file: a classification list, say
        assert f"{optic / 'train_list.txt'}:2: label mask 0 not found" in str(err.value)
    else:
        assert f"{optic / 'train_list.txt'}:2: expected '<image path> <label mask path>'" in str(err.value)


def test_a_missing_image_names_file_and_line(optic):
    (optic / "JPEGImages/N0003.png").unlink()
    with pytest.raises(TrainError, match=r"train_list.txt:3: image JPEGImages/N0003.png not found"):
        seg.segmentation_list(optic, "train_list.txt")


def test_a_missing_mask_names_file_and_line(optic):
    (optic / "Annotations/N0002.png").unlink()
    with pytest.raises(TrainError, match=r"train_list.txt:2: label mask Annotations/N0002.png not found"):
        seg.segmentation_list(optic, "train_list.txt")


def test_an_empty_list_says_what_lines_look_like(optic):
    (optic / "train_list.txt").write_text("# nothing yet\n")
    with pytest.raises(TrainError, match=r"train_list.txt: no samples; expected lines like 'JPEGImages/N0010.jpg"):
        seg.segmentation_list(optic, "train_list.txt")


def test_mask_values_within_the_classes_or_ignore_are_fine(optic):
    s = seg.segmentation_list(optic, "train_list.txt")[0]
    assert seg.mask_problem(s, "L", [0, 1, 255], 2) is None
    assert seg.mask_problem(s, "P", [0], 2) is None


def test_mask_values_beyond_the_classes_name_the_mask_and_the_fix(optic):
    s = seg.segmentation_list(optic, "train_list.txt")[1]
    problem = seg.mask_problem(s, "L", [0, 1, 2, 7, 255], 2)
    assert problem.startswith(f"{optic / 'train_list.txt'}:2: label mask {optic / 'Annotations/N0002.png'} "
                              "has class ids 2, 7 outside 0..1 (255 = ignore)")
    assert "-o Arch.num_classes=N" in problem


def test_a_colour_mask_is_refused(optic):
    s = seg.segmentation_list(optic, "train_list.txt")[0]
    assert "is a RGB image; masks must be single-channel" in seg.mask_problem(s, "RGB", [], 2)


def test_the_sample_masks_hold_class_ids_and_an_ignore_border():
    pixels = sample.mask_pixels(8, 0, 2)
    assert {v for row in pixels for v in row} == {0, 1, 255}
    assert pixels[0] == [255] * 8 and pixels[4][0] == 255 and pixels[4][4] == 1
    assert {v for row in sample.mask_pixels(8, 1, 3) for v in row} == {0, 2, 255}


def test_a_validation_list_is_optional_and_checked_like_the_training_list(optic):
    assert seg.optional_list(optic, "val_list.txt") is None
    assert seg.optional_list(optic, None) is None
    (optic / "val_list.txt").write_text("JPEGImages/N0001.png Annotations/N0001.png\n"
                                        "JPEGImages/N0009.png Annotations/N0001.png\n")
    with pytest.raises(TrainError, match=r"val_list.txt:2: image JPEGImages/N0009.png not found"):
        seg.optional_list(optic, "val_list.txt")
    (optic / "val_list.txt").write_text("JPEGImages/N0001.png Annotations/N0001.png\n")
    assert [s.image.name for s in seg.optional_list(optic, "val_list.txt")] == ["N0001.png"]


# --- The recipe's transforms, as PaddleSeg's ---------------------------------------------------

CITYSCAPES = {"ResizeStepScaling": {"min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.25},
              "RandomPaddingCrop": {}, "RandomHorizontalFlip": {},
              "RandomDistort": {"brightness_range": 0.4, "contrast_range": 0.4, "saturation_range": 0.4},
              "Normalize": {}}


def test_image_size_is_width_and_height():
    assert spec.image_size(64) == [64, 64] and spec.image_size([1024, 512]) == [1024, 512]
    for bad in (16, [64], [64, "x"], "big"):
        with pytest.raises(TrainError, match=r"Global.image_size=.*: expected a size in pixels \(at least 32\)"):
            spec.image_size(bad)


def test_transforms_keep_the_recipes_order_and_crops_take_the_image_size():
    """The order is PaddleSeg's list order: the recipe (and --print-recipe) keeps it."""
    specs = spec.transform_specs(CITYSCAPES, [1024, 512], "Train.transforms")
    assert [name for name, _ in specs] == list(CITYSCAPES)
    assert dict(specs)["RandomPaddingCrop"] == {"crop_size": [1024, 512]}
    assert dict(specs)["ResizeStepScaling"]["max_scale_factor"] == 2.0


def test_a_written_size_wins_and_resize_takes_the_image_size_too():
    specs = dict(spec.transform_specs({"Resize": {}, "RandomPaddingCrop": {"crop_size": [96, 96]}}, [64, 32], "T"))
    assert specs == {"Resize": {"target_size": [64, 32]}, "RandomPaddingCrop": {"crop_size": [96, 96]}}


def test_null_switches_a_transform_off():
    specs = spec.transform_specs({**CITYSCAPES, "RandomDistort": None}, [64, 64], "Train.transforms")
    assert "RandomDistort" not in dict(specs) and len(specs) == 4


def test_transforms_that_are_not_by_name_are_refused():
    with pytest.raises(TrainError, match=r"Train.transforms: expected PaddleSeg transforms by name"):
        spec.transform_specs([{"type": "Normalize"}], [64, 64], "Train.transforms")
    with pytest.raises(TrainError, match=r"Eval.transforms.Normalize=3: expected the transform's arguments"):
        spec.transform_specs({"Normalize": 3}, [64, 64], "Eval.transforms")


def test_the_exported_transforms_are_paddlesegs_deploy_list():
    specs = spec.transform_specs({"Resize": {}, "Normalize": {}}, [512, 512], "Eval.transforms")
    assert spec.deploy_transforms(specs) == [{"type": "Resize", "target_size": [512, 512]}, {"type": "Normalize"}]


@pytest.mark.parametrize("info", [[], [("resize", (40, 48))], [("resize", (40, 48)), ("padding", (64, 64))]])
def test_trans_info_survives_its_encoding(info):
    rows = spec.encode_trans_info(info, (40, 48))
    assert rows[0] == [len(info), 40, 48]          # never empty: Paddle cannot move empty arrays
    assert spec.decode_trans_info(rows) == info


# --- The learnable set ---------------------------------------------------------------------------

def test_the_learnable_set_has_a_disc_per_image_and_a_validation_split(tmp_path):
    root = sample.learnable(tmp_path / "disc", train=4, val=3, size=32)
    train = (root / "train_list.txt").read_text().splitlines()
    val = (root / "val_list.txt").read_text().splitlines()
    assert len(train) == 4 and len(val) == 3 and not set(train) & set(val)
    width, height, mask = read_png(root / val[0].split()[1])
    assert (width, height) == (32, 32) and {v for row in mask for v in row} == {0, 1}
    ones = sum(map(sum, mask))
    assert 3.14 * 4 ** 2 * 0.8 < ones < 3.14 * 8 ** 2 * 1.2     # a disc of radius size/8 .. size/4
    assert len(seg.segmentation_list(root, "val_list.txt")) == 3


def test_the_chance_level_is_the_all_background_prediction():
    masks = [sample.disc_mask(8, 4, 4, 2)]
    background = sum(row.count(0) for row in masks[0]) / 64
    assert sample.constant_miou(masks) == pytest.approx(background / 2)
    assert sample.constant_miou([[[0, 1], [255, 255]]]) == 0.25


def test_png_masks_read_back(tmp_path):
    rows = [[0, 1, 2, 255], [3, 3, 0, 1]]
    grey_png(tmp_path / "m.png", rows)
    assert read_png(tmp_path / "m.png") == (4, 2, rows)
