"""Segmentation list files (optic_disc_seg layout): a good layout parses, every kind of bad layout
names the file (and line); the mask value check the trainer runs on each decoded mask. Also: the
paddleseg suite's reviewed patches still apply to the locked wheel."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kunlun_train.datasets import segmentation as seg
from kunlun_train.errors import TrainError

from tests.sample_data import segmentation as sample
from tests.patching import patched_wheel

ROOT = Path(__file__).resolve().parents[1]


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


# --- The suite's reviewed patches (patches/paddleseg/, matrix.yaml suites.paddleseg.patches) ---

def test_every_patch_file_is_listed_in_the_matrix(matrix):
    listed = matrix.suites["paddleseg"].patches
    on_disk = sorted(p.name for p in (ROOT / "patches/paddleseg").glob("*.patch"))
    assert listed == on_disk and listed, "patches/paddleseg/ and matrix.yaml disagree"


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_patches_apply_to_the_locked_paddleseg_wheel(matrix, tmp_path, arch):
    """Exactly as the suite image applies them (no fuzz), to the wheel the lock pins."""
    site = patched_wheel(matrix, "paddleseg", arch, tmp_path)
    loss = (site / "paddleseg/models/losses/cross_entropy_loss.py").read_text()
    assert "paddle.ones_like(label, dtype='float32')" in loss and "paddle.ones_like(label)\n" not in loss
    compile(loss, "cross_entropy_loss.py", "exec")
