"""`invoke package MODEL --export DIR`: what an export must hold, what names the serving image, and
which models have one (kunlun_bundle/images/packaging.py, matrix.yaml `serving`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kunlun_bundle import naming
from kunlun_bundle.errors import InputError, MatrixError, UsageError
from kunlun_bundle.images import chain, kinds, labels, lock, packaging
from kunlun_bundle import matrix as matrix_mod

ROOT_FILES = ("inference.json", "inference.pdiparams")


def export(directory, model="resnet50", trained=None):
    directory.mkdir(parents=True, exist_ok=True)
    for name in ROOT_FILES:
        (directory / name).write_bytes(f"{name} of {model}".encode())
    config = {"Global": {"model": model, "task": "classification", "paddle": "3.2.2"}}
    if trained:
        config["Global"]["trained"] = trained
    (directory / "inference.yml").write_text(json.dumps(config) + "\n")
    return directory


def test_an_export_is_its_files_sha256s_and_their_digest_names_the_image(matrix, tmp_path):
    found = packaging.Export.read(export(tmp_path / "a"), "resnet50")
    assert sorted(found.files) == ["inference.json", "inference.pdiparams", "inference.yml"]
    again = packaging.Export.read(export(tmp_path / "b"), "resnet50")    # the same bytes elsewhere
    assert again.digest == found.digest
    (tmp_path / "b" / "label_list.txt").write_text("daisy\n")             # what predict reads beside it counts
    assert packaging.Export.read(tmp_path / "b", "resnet50").digest != found.digest
    assert naming.packaged_image(matrix, "resnet50", found.digest, "cpu", "x86_64") == \
        f"kunlun/resnet50-serving:{found.digest[:12]}-cpu-x86_64"


def test_an_export_that_is_not_one_is_refused_naming_what_is_missing(tmp_path):
    with pytest.raises(UsageError, match="--export DIR is required"):
        packaging.Export.read(None, "resnet50")
    with pytest.raises(UsageError, match="no such directory"):
        packaging.Export.read(tmp_path / "nowhere", "resnet50")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "inference.json").write_text("{}")
    with pytest.raises(InputError, match="no inference.pdiparams, inference.yml in it"):
        packaging.Export.read(tmp_path / "half", "resnet50")


def test_an_export_of_another_model_is_refused_with_the_right_command(tmp_path):
    with pytest.raises(UsageError) as info:
        packaging.Export.read(export(tmp_path / "e", model="mobilenetv3"), "resnet50")
    assert "an export of mobilenetv3, not resnet50" in info.value.message
    assert "invoke package mobilenetv3 --export" in info.value.hint


def test_models_whose_route_imports_the_whole_suite_have_no_serving_image(matrix):
    packaging.check_servable(matrix, "yolov3-mobilenetv1")
    with pytest.raises(UsageError) as info:
        packaging.check_servable(matrix, "bert-base")
    assert "paddlenlp's models have no serving image" in info.value.message
    assert "invoke serve bert-base --export DIR" in info.value.hint
    assert [m for m in matrix.ready_models() if matrix.servable(m)] == [
        m for m in matrix.ready_models() if matrix.models[m].suite in ("paddleclas", "paddledet", "paddleseg")]
    assert not matrix.servable("ernie-base") and not matrix.servable("dqn")


def test_a_serving_lock_is_the_suite_and_what_its_route_imports_at_the_suites_own_pins(matrix):
    """The serving layer's packages are the suite lock's versions: a served answer is the training image's code."""
    training_only = {"scikit-learn", "scipy", "faiss-cpu", "pycocotools", "matplotlib", "pandas", "requests", "tqdm"}
    for model, suite in (("resnet50", "paddleclas"), ("yolov3-mobilenetv1", "paddledet"), ("unet", "paddleseg")):
        for arch in ("x86_64", "aarch64"):
            layer = chain.serving_layer(matrix, model, "cpu", matrix.arch_registry[arch])
            assert str(layer.lock) == f"locks/{arch}/cpu/{suite}-serving.txt" and lock.is_current(matrix, layer)
            served = {w.name: w.version for w in lock.LockFile.read(layer.lock).wheels}
            pinned = {w.name: w.version for w in lock.LockFile.read(kinds.lock_path(arch, "cpu", suite)).wheels}
            assert served.items() <= pinned.items()
            assert {suite, "opencv-python-headless"} <= set(served) and not training_only & set(served)
    classification = lock.LockFile.read(kinds.lock_path("x86_64", "cpu", "paddleclas-serving"))
    assert sorted(w.name for w in classification.wheels) == ["opencv-python-headless", "paddleclas", "six"]


def test_a_serving_image_is_labelled_with_its_files_and_the_checkpoint_it_came_from(matrix, tmp_path):
    trained = {"checkpoint": "ckpt-000080", "step": 80, "workers": 1, "best": {"metric": "top1", "value": 0.9}}
    top = chain.package_layer(matrix, "resnet50", "cpu", matrix.arch_registry["x86_64"],
                              export(tmp_path / "e", trained=trained))
    built = kinds.PACKAGE.build_labels(matrix, top, Path("."))
    found = packaging.Export.read(tmp_path / "e", "resnet50")
    assert json.loads(built[labels.MODEL_FILES]) == found.files
    assert built[labels.MODEL_DIGEST] == found.digest and top.image.split(":")[1].startswith(found.digest[:12])
    assert json.loads(built[labels.MODEL_TRAINED]) == trained
    assert built[labels.MODEL] == "resnet50" and built[labels.lock_of("paddleclas-serving")]
    # the committed Dockerfile's labels name no model: one Dockerfile for every export
    assert labels.MODEL not in labels.in_dockerfile(matrix, top)


def test_a_suites_serving_list_is_bare_project_names(write_matrix):
    path = write_matrix(lambda d: d["suites"]["paddleclas"].update(serving=["scipy>=1"]))
    with pytest.raises(MatrixError, match="suites.paddleclas.serving.0: 'scipy>=1': a project name only"):
        matrix_mod.load(path)
    path = write_matrix(lambda d: d["suites"]["paddlenlp"].update(serving=["regex"]))
    with pytest.raises(MatrixError, match="suites.paddlenlp.serving: a suite that builds sdists"):
        matrix_mod.load(path)


def test_package_without_an_export_or_for_an_unservable_model_is_a_usage_error(invoke, tmp_path):
    result = invoke("package", "resnet50")
    assert result.returncode == 3 and "--export DIR is required" in result.stderr
    result = invoke("package", "bert-base", "--export", str(export(tmp_path / "e")))
    assert result.returncode == 3 and "invoke serve bert-base --export DIR" in result.stderr
    assert "Traceback" not in result.stderr

