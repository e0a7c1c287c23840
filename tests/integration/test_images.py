"""The real thing, on a real Docker daemon: bootstrap the base from Debian packages, build the
ResNet50 chain with the network off, train in the container. Slow (minutes cold); marked `docker`."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from kunlun_bundle import naming
from kunlun_bundle.host import cache
from kunlun_bundle.images import lock

from tests.sample_data.classification import flowers as sample_flowers

from .helpers import MATRIX, ROOT, docker, image, invoke, training

IMAGE = image("resnet50")
BASE = naming.base_image(MATRIX, "bookworm", "x86_64")
SUITE = naming.suite_image(MATRIX, "paddleclas", "cpu", "x86_64")


@pytest.fixture(scope="module")
def built(build):
    """`invoke build --model resnet50`: bootstraps the base if missing, then the whole chain."""
    build("resnet50")


@pytest.fixture
def flowers(tmp_path) -> Path:
    return sample_flowers(tmp_path / "flowers")


def test_the_base_is_bootstrapped_debian_with_the_right_platform(built):
    info = json.loads(docker("image", "inspect", BASE).stdout)[0]
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Config"]["Labels"]["io.kunlun.base.release"] == "bookworm"
    assert any(re.fullmatch(re.escape(BASE) + r"-\d{8}", tag) for tag in info["RepoTags"])
    release = docker("run", "--rm", "--network", "none", BASE, "cat", "/etc/debian_version").stdout
    assert release.startswith("12.")


def test_images_record_what_they_were_built_from(built):
    labels = json.loads(docker("image", "inspect", IMAGE).stdout)[0]["Config"]["Labels"]
    assert labels["io.kunlun.model"] == "resnet50" and labels["io.kunlun.paddle.version"] == "3.2.2"
    suite = json.loads(docker("image", "inspect", SUITE).stdout)[0]
    lock_file = ROOT / "locks/x86_64/cpu/paddleclas.txt"
    assert suite["Config"]["Labels"]["io.kunlun.lock.sha256"] == hashlib.sha256(lock_file.read_bytes()).hexdigest()


def test_resnet50_trains_on_synthetic_data_without_network_as_non_root(built):
    result = docker("run", "--rm", "--network", "none", IMAGE, "--steps", "2")
    steps, summary = training(result.stdout)
    assert [(s, total) for s, total, _ in steps] == [(1, 2), (2, 2)]
    assert all(loss == loss and abs(loss) < 1e6 for _, _, loss in steps)     # finite
    assert summary["loss_finite"] and summary["data"] == "synthetic" and summary["unit"] == "images/s"
    assert summary["throughput"] > 0
    assert docker("run", "--rm", "--entrypoint", "id", IMAGE, "-u").stdout.strip() == "1000"


def test_threads_follow_the_containers_cpu_limit(built):
    result = docker("run", "--rm", "--network", "none", "--cpus", "1", IMAGE, "--steps", "1", "-o", "Global.image_size=64")
    assert "device cpu x1 (CPU quota of 1 CPUs)" in result.stdout
    assert training(result.stdout)[1]["threads"] == 1


def test_trains_on_a_flowers_dataset_saves_and_resumes(built, flowers, tmp_path):
    out = tmp_path / "out"
    first = invoke("run", "resnet50", "--data", str(flowers), "--output", str(out),
                   "--", "--steps", "2", "-o", "Arch.class_num=3", "-o", "Global.image_size=64")
    steps, summary = training(first.stdout)
    assert [s for s, _, _ in steps] == [1, 2] and summary["data"] == "4 images from a list file"
    assert (out / "ckpt-000002" / "model.pdparams").is_file()

    resumed = invoke("run", "resnet50", "--data", str(flowers), "--output", str(out),
                     "--", "--steps", "3", "--resume", "-o", "Arch.class_num=3", "-o", "Global.image_size=64")
    steps, summary = training(resumed.stdout)
    assert "resumed from /output/ckpt-000002 (step 2)" in resumed.stdout
    assert [s for s, _, _ in steps] == [3] and summary["first_step"] == 3
    assert (out / "ckpt-000003" / "state.json").is_file()


def test_a_malformed_dataset_names_the_line(built, flowers):
    (flowers / "train_list.txt").write_text("jpg/image_00001.png 0\njpg/image_00002.png\n")
    result = invoke("run", "resnet50", "--data", str(flowers), "--", "--steps", "1", check=False)
    assert result.returncode == 2
    assert "/data/train_list.txt:2: expected '<image path> <integer label>'" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unchanged_rebuild_is_all_cache_hits(built):
    result = invoke("build", "--model", "resnet50")
    assert "4 cached" in result.stderr and "0 built" in result.stderr, result.stderr


def test_a_tampered_wheel_fails_the_build_naming_the_file(built, tmp_path):
    """A cache where one locked wheel was altered after download: the build stops with a hash error."""
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    locked = lock.LockFile.read(ROOT / "locks/x86_64/cpu/paddleclas.txt").wheels
    victim = min(locked, key=lambda w: (cache.wheels() / w.filename).stat().st_size)
    for path in cache.wheels().glob("*.whl"):
        (wheels / path.name).symlink_to(path)
    (wheels / victim.filename).unlink()
    shutil.copy(cache.wheels() / victim.filename, wheels / victim.filename)
    with open(wheels / victim.filename, "ab") as f:
        f.write(b"tampered")
    result = invoke("build", "--model", "resnet50", env={"KUNLUN_CACHE": str(tmp_path / "cache")}, check=False)
    assert result.returncode == 6, result.stderr
    assert f"{victim.filename}: sha256 mismatch" in result.stderr and "Traceback" not in result.stderr
