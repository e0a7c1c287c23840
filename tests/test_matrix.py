"""matrix.yaml is validated on load; every problem names file:line, the key path and what was expected."""
import pytest

from kunlun_bundle import matrix
from kunlun_bundle.errors import MatrixError


def problems(path) -> str:
    with pytest.raises(MatrixError) as info:
        matrix.load(path)
    return str(info.value)


def test_the_committed_matrix_is_valid(matrix):
    assert "resnet50" in matrix.ready_models()
    assert matrix.paddle_version("cpu", "x86_64") == "3.2.2"
    assert matrix.paddle_version("cpu", "aarch64") == "3.2.2"


def test_unknown_key_lists_the_allowed_keys(write_matrix):
    path = write_matrix(lambda d: d["models"]["resnet50"].update(colour="red"))
    message = problems(path)
    assert "models.resnet50.colour: unknown key 'colour'" in message
    assert "expected one of: title, suite, task, archs, excluded, status, reason, recipes, smoke" in message
    assert f"{path}:" in message


def test_missing_field(write_matrix):
    path = write_matrix(lambda d: d["models"]["resnet50"].pop("suite"))
    assert "models.resnet50.suite: missing required key" in problems(path)


def test_wrong_type(write_matrix):
    path = write_matrix(lambda d: d["bases"]["bookworm"].update(source_date_epoch="yesterday"))
    assert "bases.bookworm.source_date_epoch: Input should be a valid integer" in problems(path)


def test_model_pointing_at_a_missing_suite(write_matrix):
    path = write_matrix(lambda d: d["models"]["resnet50"].update(suite="paddleclaz"))
    assert "models.resnet50.suite: unknown suite 'paddleclaz' (expected one of: paddleclas, paddledet" in problems(path)


def test_unknown_arch(write_matrix):
    path = write_matrix(lambda d: d["models"]["resnet50"].update(archs=["x86_64", "sparc"]))
    assert "models.resnet50.archs.1: unknown arch 'sparc' (expected one of: x86_64, aarch64)" in problems(path)


def test_an_excluded_arch_needs_a_known_name_and_cannot_also_be_listed(write_matrix):
    def exclude(d):
        d["models"]["resnet50"]["excluded"] = {"aarch64": "no wheel", "sparc": "no"}
    message = problems(write_matrix(exclude))
    assert "models.resnet50.excluded.aarch64: an arch cannot be both in archs and excluded" in message
    assert "models.resnet50.excluded.sparc: unknown arch 'sparc'" in message


def test_a_suite_patch_must_exist(write_matrix):
    path = write_matrix(lambda d: d["suites"]["paddleclas"].update(patches=["0001-missing.patch"]))
    assert "suites.paddleclas.patches.0: no such file patches/paddleclas/0001-missing.patch" in problems(path)


def test_duplicate_keys_are_caught_with_both_lines(root, write_matrix):
    text = (root / "matrix.yaml").read_text().replace("  vgg19:\n", "  vgg16:\n", 1)
    message = problems(write_matrix(text=text))
    assert "models.vgg16: duplicate key 'vgg16' (first defined at line" in message


def test_an_alias_may_name_only_one_arch(write_matrix):
    path = write_matrix(lambda d: d["archs"]["aarch64"]["aliases"].append("x86"))
    assert "'x86' already names arch 'x86_64'" in problems(path)


def test_keywords_are_not_aliases(write_matrix):
    path = write_matrix(lambda d: d["archs"]["aarch64"]["aliases"].append("all"))
    assert "'all' is a keyword" in problems(path)


def test_paddle_must_be_pinned_exactly(write_matrix):
    path = write_matrix(lambda d: d["flavours"]["cpu"]["paddle"].update(x86_64="paddlepaddle>=3"))
    assert "flavours.cpu.paddle.x86_64: Paddle must be pinned exactly" in problems(path)


def test_a_ready_model_needs_a_ready_suite(write_matrix):
    path = write_matrix(lambda d: d["suites"]["paddleclas"].update(status="planned"))
    assert "models.resnet50.status: model is ready but its suite 'paddleclas' is not" in problems(path)


def test_every_problem_is_reported_at_once(write_matrix):
    def break_twice(d):
        d["models"]["resnet50"]["archs"] = "x86_64"
        d["bundle"]["version"] = "one"
    message = problems(write_matrix(break_twice))
    assert "has 2 problems" in message
    assert "bundle.version: String should match pattern" in message
    assert "models.resnet50.archs: Input should be a valid list" in message


def test_not_yaml_names_the_line(write_matrix):
    message = problems(write_matrix(text="bundle:\n  namespace: [unclosed\n"))
    assert "not valid YAML" in message and "matrix.yaml:" in message


def test_line_numbers_point_at_the_key(root, write_matrix):
    text = (root / "matrix.yaml").read_text()
    text = text.replace("    suite: paddleclas\n    task: classification\n    archs: [x86_64, aarch64]\n    recipes:",
                        "    suite: paddleclaz\n    task: classification\n    archs: [x86_64, aarch64]\n    recipes:", 1)
    line = text.splitlines().index("    suite: paddleclaz") + 1
    assert f"matrix.yaml:{line}: models.resnet50.suite" in problems(write_matrix(text=text))
