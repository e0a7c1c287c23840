"""Image names and tags are derived in one place (kunlun_bundle/naming.py) from the matrix."""
from kunlun_bundle import naming
from kunlun_bundle.images import chain


def test_model_tags_are_version_flavour_arch(small_matrix):
    assert naming.model_image(small_matrix, "resnet50", "cpu", "x86_64") == "testns/resnet50:9.8.7-paddle3.0.0-cpu-x86_64"
    assert naming.model_image(small_matrix, "resnet50", "cpu", "aarch64") == "testns/resnet50:9.8.7-paddle2.6.2-cpu-aarch64"
    assert naming.model_latest(small_matrix, "resnet50") == "testns/resnet50:latest"


def test_layer_images(small_matrix):
    assert naming.base_image(small_matrix, "trixie", "aarch64") == "testns/base:trixie-aarch64"
    assert naming.base_dated_image(small_matrix, "trixie", "aarch64", "20261123") == "testns/base:trixie-aarch64-20261123"
    assert naming.paddle_image(small_matrix, "cpu", "x86_64") == "testns/paddle:3.0.0-cpu-x86_64"
    assert naming.suite_image(small_matrix, "paddleclas", "cpu", "x86_64") == "testns/paddleclas:2.5.0-paddle3.0.0-cpu-x86_64"


def test_the_chain_links_each_layer_to_its_parent(small_matrix):
    top = chain.model_layer(small_matrix, "resnet50", "cpu", small_matrix.arch_registry["arm64"])
    assert [layer.image for layer in top.ancestry()] == [
        "testns/base:trixie-aarch64", "testns/paddle:2.6.2-cpu-aarch64",
        "testns/paddleclas:2.5.0-paddle2.6.2-cpu-aarch64", "testns/resnet50:9.8.7-paddle2.6.2-cpu-aarch64"]
    assert [str(layer.dockerfile) for layer in top.ancestry()] == [
        "dockerfiles/base/trixie-aarch64.Dockerfile", "dockerfiles/paddle/cpu-aarch64.Dockerfile",
        "dockerfiles/paddleclas/cpu-aarch64.Dockerfile", "dockerfiles/resnet50/cpu-aarch64.Dockerfile"]
    assert [str(layer.lock) for layer in top.ancestry()] == [
        "None", "locks/aarch64/cpu/paddle.txt", "locks/aarch64/cpu/paddleclas.txt", "None"]


def test_shared_layers_are_built_once(small_matrix):
    layers = chain.unique_layers(chain.all_ready(small_matrix))
    assert len(layers) == 11   # 2 archs x (base, paddle, suite, model) for cpu, plus paddle, suite, model for xpu (x86_64 only)
    assert len({layer.image for layer in layers}) == 11


def test_planned_models_are_not_built(small_matrix):
    import pytest
    from kunlun_bundle.errors import UsageError
    with pytest.raises(UsageError, match="model 'vgg16' is not ready"):
        chain.select(small_matrix, ["vgg16"], None, list(small_matrix.arch_registry))
    with pytest.raises(UsageError, match="unknown model 'vgg61'"):
        chain.select(small_matrix, ["vgg61"], None, list(small_matrix.arch_registry))


def test_a_namespace_override_retags_local_images_but_not_the_dockerfiles(monkeypatch, root):
    """$KUNLUN_NAMESPACE (several checkouts or test runs on one Docker host): local tags move, the
    committed Dockerfiles keep the matrix's namespace, and the build points FROM at the parent's id."""
    from kunlun_bundle import matrix
    from kunlun_bundle.images import build, render
    monkeypatch.setenv("KUNLUN_NAMESPACE", "kunlun-dev")
    m = matrix.load(root / "matrix.yaml")
    top = chain.model_layer(m, "resnet50", "cpu", m.arch_registry["x86_64"])
    assert top.image == "kunlun-dev/resnet50:0.1.0-paddle3.2.2-cpu-x86_64"
    assert naming.model_latest(m, "resnet50") == "kunlun-dev/resnet50:latest"
    assert render.check(render.render_all(m, root), root) == []          # no drift
    suite = top.parent
    text = build.from_parent((root / suite.dockerfile).read_bytes(), naming.declared(m, suite.parent.image),
                             "sha256:" + "a" * 64).decode()
    assert [line for line in text.splitlines() if line.startswith("FROM")] == \
        [f"FROM sha256:{'a' * 64} AS install", f"FROM sha256:{'a' * 64}"]


def test_a_bad_namespace_override_is_named(monkeypatch, root):
    import pytest
    from kunlun_bundle import matrix
    from kunlun_bundle.errors import MatrixError
    monkeypatch.setenv("KUNLUN_NAMESPACE", "Bad Name")
    with pytest.raises(MatrixError, match="KUNLUN_NAMESPACE='Bad Name': not a usable image namespace"):
        matrix.load(root / "matrix.yaml")
