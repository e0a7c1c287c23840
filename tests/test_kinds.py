"""Each layer kind is one type that knows its place in the chain, its template, lock, labels and
build context (kunlun_bundle/images/kinds.py); the rest of the bundle only asks it."""
from __future__ import annotations

import json
from pathlib import Path

from kunlun_bundle.images import chain, kinds, labels
from kunlun_bundle.images.context import BuildContext


def test_a_chain_is_base_framework_suite_model_each_on_its_parent_kind(matrix):
    top = chain.model_layer(matrix, "bert-base", "cpu", matrix.arch_registry["x86_64"])
    assert [layer.kind for layer in top.ancestry()] == ["base", "paddle", "suite", "model"]
    assert [layer.kind for layer in top.ancestry()] == list(kinds.KINDS)[:4]
    for layer in top.ancestry()[1:]:
        assert layer.kind.parent is layer.parent.kind
    assert [layer.name for layer in top.ancestry()] == ["bookworm", "cpu", "paddlenlp", "bert-base"]


def test_a_serving_image_sits_on_the_serving_layer_on_the_framework(matrix, tmp_path):
    export = tmp_path / "inference"
    export.mkdir()
    for name in ("inference.json", "inference.pdiparams"):
        (export / name).write_bytes(b"weights " + name.encode())
    (export / "inference.yml").write_text('{"Global": {"model": "resnet50", "task": "classification"}}\n')
    top = chain.package_layer(matrix, "resnet50", "cpu", matrix.arch_registry["aarch64"], export)
    assert [layer.kind for layer in top.ancestry()] == ["base", "paddle", "serving", "package"]
    base, paddle, serving, package = top.ancestry()
    assert [str(layer.lock) for layer in (paddle, serving)] == ["locks/aarch64/cpu/paddle.txt",
                                                                "locks/aarch64/cpu/paddleclas-serving.txt"]
    assert [layer.cell for layer in (serving, package)] == ["paddleclas-serving/cpu-aarch64", "paddleclas-package/cpu-aarch64"]
    assert serving.image == "kunlun/paddleclas-serving:2.6.0-paddle3.2.2-cpu-aarch64"
    # The tag is the export's digest; another export is another tag, the same Dockerfile
    assert top.image.startswith("kunlun/resnet50-serving:") and top.image.endswith("-cpu-aarch64")
    (export / "inference.pdiparams").write_bytes(b"other weights")
    other = chain.package_layer(matrix, "resnet50", "cpu", matrix.arch_registry["aarch64"], export)
    assert other.image != top.image and other.dockerfile == top.dockerfile


def test_each_kind_names_its_template_lock_and_cell(matrix):
    base, paddle, suite, model = chain.model_layer(matrix, "resnet50", "cpu", matrix.arch_registry["aarch64"]).ancestry()
    assert [layer.template for layer in (base, paddle, suite, model)] == [
        "base.Dockerfile.j2", "paddle.Dockerfile.j2", "suite.Dockerfile.j2", "model.Dockerfile.j2"]
    assert [str(layer.lock) for layer in (paddle, suite)] == ["locks/aarch64/cpu/paddle.txt", "locks/aarch64/cpu/paddleclas.txt"]
    assert base.lock is None and model.lock is None
    assert [layer.cell for layer in (base, paddle, suite, model)] == [
        "base/bookworm-aarch64", "paddle/cpu-aarch64", "paddleclas/cpu-aarch64", "resnet50/cpu-aarch64"]


def test_a_kind_is_its_name_where_a_string_is_wanted(matrix):
    """Templates (io.kunlun.layer), the build log and bench key on the kind's name."""
    assert kinds.FRAMEWORK == "paddle" and str(kinds.SUITE) == "suite"
    assert json.dumps({kinds.MODEL: 1}) == '{"model": 1}'


def test_the_committed_dockerfile_labels_list_the_common_facts_then_the_kinds_own(matrix, root):
    model = chain.model_layer(matrix, "resnet50", "cpu", matrix.arch_registry["x86_64"])
    found = labels.in_dockerfile(matrix, model)
    assert list(found)[:6] == [labels.TITLE, labels.VERSION, labels.LAYER, labels.ARCH, labels.FLAVOUR,
                               labels.PADDLE_VERSION]
    assert found[labels.MODEL] == "resnet50" and found[labels.SUITE] == "paddleclas"
    assert labels.instruction(found, sort=False) in (root / model.dockerfile).read_text()


def test_each_kind_puts_its_own_files_into_the_build_context(matrix, root):
    base, paddle, suite, model = chain.model_layer(matrix, "dqn", "cpu", matrix.arch_registry["x86_64"]).ancestry()
    ctx = BuildContext(0)
    model.kind.add_context(ctx, matrix, model, root, matrix.arch_registry.native())
    assert "recipe.json" in ctx.names() and any(n.startswith("entrypoints/kunlun_train/") for n in ctx.names())
    assert json.loads(kinds.recipe_json(matrix, "dqn"))["Bundle"]["suite"] == "parl"
    assert suite.kind.downloads(matrix, suite) == [] and paddle.kind.downloads(matrix, paddle) == []   # CPU: no runtime


def test_the_inputs_digest_follows_what_a_layer_is_built_from(matrix, repo_copy):
    """io.kunlun.inputs.sha256: a suite's changes when its lock does, a model's with its parent's and its recipe,
    and nothing else moves it (the doctor tells current from stale images by it)."""
    from kunlun_bundle.images import labels
    (repo_copy / "entrypoints").symlink_to(Path(__file__).resolve().parents[1] / "entrypoints")
    top = chain.model_layer(matrix, "resnet50", "cpu", matrix.arch_registry["x86_64"])
    suite = top.parent
    before = (labels.inputs_digest(matrix, suite, repo_copy), labels.inputs_digest(matrix, top, repo_copy))
    assert before == (labels.inputs_digest(matrix, suite, repo_copy), labels.inputs_digest(matrix, top, repo_copy))
    lock = repo_copy / suite.lock
    lock.write_text(lock.read_text() + "# a comment changes the lock's bytes\n")
    after = (labels.inputs_digest(matrix, suite, repo_copy), labels.inputs_digest(matrix, top, repo_copy))
    assert after[0] != before[0] and after[1] != before[1]
