"""`invoke run`: the container's options and the output directory the non-root container user writes."""
import os

import pytest

from kunlun_bundle import layout
from kunlun_bundle.images import chain
from kunlun_bundle.training import run
from kunlun_bundle.errors import RunError


@pytest.fixture
def layer(matrix):
    return chain.select(matrix, ["resnet50"], None, [matrix.arch_registry.native()])[0]


@pytest.mark.skipif(os.getuid() != 0, reason="the ownership hand-over happens when invoke runs as root")
def test_a_new_output_directory_is_created_for_the_container_user(layer, tmp_path):
    options = run.container_options(layer, None, str(tmp_path / "out"), [])
    assert (tmp_path / "out").stat().st_uid == layout.USER.uid
    assert options["volumes"][str(tmp_path / "out")] == {"bind": "/output", "mode": "rw"}


@pytest.mark.skipif(os.getuid() != 0, reason="only root can hand out a directory the container user cannot write")
def test_an_existing_directory_the_container_user_cannot_write_is_refused_with_the_fix(layer, tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(RunError) as info:
        run.container_options(layer, None, str(private), [])
    assert "not writable by the container's user (uid 1000)" in info.value.message
    assert f"chown 1000 {private}" in info.value.hint


def test_the_shared_memory_fits_the_loader_workers(layer, tmp_path):
    assert run.container_options(layer, None, None, [])["shm_size"] == "1g"


@pytest.mark.skipif(os.getuid() != 0, reason="only root can hand over a dataset the container user cannot read")
def test_a_dataset_the_container_user_cannot_read_is_refused_with_the_fix(layer, tmp_path):
    private = tmp_path / "data"
    private.mkdir(mode=0o700)
    with pytest.raises(RunError) as info:
        run.container_options(layer, str(private), None, [])
    assert "not readable by the container's user (uid 1000)" in info.value.message
    assert f"chmod -R a+rX {private}" in info.value.hint


# --- `invoke serve`: an export behind the image's server -----------------------------------------

def export_dir(tmp_path):
    out = tmp_path / "inference"
    out.mkdir()
    for name in ("inference.json", "inference.pdiparams", "inference.yml"):
        (out / name).write_text("{}")
    out.chmod(0o755)
    return out


def test_serving_mounts_the_export_read_only_and_publishes_the_port(layer, tmp_path):
    options = run.serve_options(layer, str(export_dir(tmp_path)), 9000, "127.0.0.1", ["--max-batch-size", "4"])
    assert options["command"] == ["serve", "--model", "/model", "--max-batch-size", "4"]
    assert options["volumes"] == {str(tmp_path / "inference"): {"bind": "/model", "mode": "ro"}}
    assert options["ports"] == {"8000/tcp": ("127.0.0.1", 9000)}
    assert options["read_only"] is True and "network_mode" not in options     # the bridge, for the port only


def test_serving_a_directory_with_no_export_says_how_to_make_one(layer, tmp_path):
    with pytest.raises(RunError) as info:
        run.serve_options(layer, str(tmp_path), 8000)
    assert "no exported model there" in info.value.message and "-- export" in info.value.hint
    with pytest.raises(RunError, match="--port 70000: expected a TCP port"):
        run.serve_options(layer, str(export_dir(tmp_path)), 70000)
