"""The tasks as a user meets them: errors are messages with exit codes, never tracebacks;
`--help` explains; the run task fills in mounts and turns the network off."""
import pytest

from kunlun_bundle import layout
from kunlun_bundle.images import chain
from kunlun_bundle.training.run import container_options


def test_a_bad_arch_lists_the_valid_ones(invoke):
    result = invoke("build", "--arch", "sparc")
    assert result.returncode == 3
    assert "unknown arch 'sparc'" in result.stderr and "aarch64 (arm, arm64, phytium)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_matrix_is_a_message_with_exit_code_2(invoke, write_matrix):
    path = write_matrix(lambda d: d["models"]["resnet50"].update(suite="nope"))
    result = invoke("list", env={"KUNLUN_MATRIX": str(path)})
    assert result.returncode == 2
    assert "models.resnet50.suite: unknown suite 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_model_is_named(invoke):
    result = invoke("build", "--model", "resnet5")
    assert result.returncode == 3 and "unknown model 'resnet5'" in result.stderr


def test_list_shows_every_model_and_its_tags(invoke):
    result = invoke("list")
    assert result.returncode == 0
    for model in ("resnet50", "vgg16", "mask-rcnn", "dqn"):
        assert model in result.stdout
    assert "kunlun/resnet50:0.1.0-paddle3.2.2-cpu-x86_64" in result.stdout


@pytest.mark.parametrize("name", ["build", "run", "render", "base", "lock", "fetch", "doctor", "list"])
def test_every_task_has_help(invoke, name):
    result = invoke("--help", name)
    docstring = result.stdout.split("Docstring:")[1].split("Options:")[0].strip()
    assert result.returncode == 0 and docstring != "none" and len(docstring) > 20


def test_render_check_passes_on_the_repository(invoke):
    result = invoke("render", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_options_mount_data_read_only_and_disable_the_network(matrix, tmp_path):
    layer = chain.select(matrix, ["resnet50"], None, [matrix.arch_registry["x86_64"]])[0]
    (tmp_path / "data").mkdir()
    options = container_options(layer, str(tmp_path / "data"), str(tmp_path / "out"), ["--steps", "2"], cpus=1.5)
    assert options["network_mode"] == "none"
    assert options["volumes"][str(tmp_path / "data")] == {"bind": layout.DATA_MOUNT, "mode": "ro"}
    assert options["volumes"][str(tmp_path / "out")] == {"bind": layout.OUTPUT_MOUNT, "mode": "rw"}
    assert options["command"] == ["--steps", "2", "--data", "/data", "--output", "/output"]
    assert options["nano_cpus"] == 1_500_000_000 and options["platform"] == "linux/amd64"
    assert "privileged" not in options


def test_run_rejects_a_missing_data_directory(matrix, tmp_path):
    from kunlun_bundle.errors import RunError
    layer = chain.select(matrix, ["resnet50"], None, [matrix.arch_registry["x86_64"]])[0]
    with pytest.raises(RunError, match="--data .*: not a directory"):
        container_options(layer, str(tmp_path / "nope"), None, [])
