"""The Kunlun XPU path without Kunlun hardware. STAND-INS: the "cards" here are character devices
made with mknod carrying /dev/null's numbers (1, 3) in a temporary directory, never real XPUs; the
runtime and wheel inputs are files the tests write. What is real: the discovery, selection, Docker
options, CDI spec and schema check, device choice, doctor checks, locking and fetching code."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from kunlun_bundle import matrix
from kunlun_bundle import doctor
from kunlun_bundle.images import fetch, lock
from kunlun_bundle.training import devices
from kunlun_bundle.errors import InputError, MatrixError, UsageError
from kunlun_train import device
from kunlun_train.errors import TrainError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def stand_in_cards(root, cards=(0, 1), ctrl=True, mode=0o666):
    """Stand-in Kunlun nodes: character devices with /dev/null's major/minor."""
    root.mkdir(exist_ok=True)
    names = [f"xpu{i}" for i in cards] + (["xpuctrl"] if ctrl else [])
    for name in names:
        os.mknod(root / name, stat.S_IFCHR | mode, os.makedev(1, 3))
        os.chmod(root / name, mode)
    return root


# --- discovery and selection ---------------------------------------------------------------

@needs_root
def test_cards_are_discovered_in_order_with_the_control_node(tmp_path):
    cards = devices.Cards.discover(stand_in_cards(tmp_path / "dev", cards=(1, 0, 10)))
    assert list(cards.cards) == [0, 1, 10] and cards.ctrl is not None and cards.ctrl.char
    assert cards.describe() == "xpu0, xpu1, xpu10"


@needs_root
def test_asking_for_a_missing_card_lists_the_real_ones(tmp_path):
    cards = devices.Cards.discover(stand_in_cards(tmp_path / "dev"))
    assert cards.select("all") == [0, 1] and cards.select("1") == [1]
    with pytest.raises(UsageError) as info:
        cards.select("0,3")
    assert "no card xpu3 on this host" in info.value.message and info.value.hint == "cards present: xpu0, xpu1"
    with pytest.raises(UsageError, match="expected 'all' or card numbers"):
        cards.select("first")


@needs_root
def test_cards_without_the_control_node_are_refused(tmp_path):
    cards = devices.Cards.discover(stand_in_cards(tmp_path / "dev", ctrl=False))
    with pytest.raises(UsageError, match="xpuctrl is missing"):
        cards.select("0")


def test_a_host_without_cards_says_so(tmp_path):
    with pytest.raises(UsageError, match="no Kunlun cards on this host"):
        devices.Cards.discover(tmp_path).select("0")


@needs_root
def test_container_options_map_exactly_the_chosen_nodes_and_never_privileged(tmp_path):
    root = stand_in_cards(tmp_path / "dev", cards=(0, 1, 2))
    options = devices.container_options(devices.Cards.discover(root), [0, 2])
    assert options["devices"] == [f"{root}/xpu0:/dev/xpu0:rwm", f"{root}/xpu2:/dev/xpu2:rwm",
                                  f"{root}/xpuctrl:/dev/xpuctrl:rwm"]
    assert options["environment"] == {"XPU_VISIBLE_DEVICES": "0,2", "FLAGS_selected_xpus": "0,1"}
    assert "privileged" not in options and "group_add" not in options   # 0666 nodes: no group needed


@needs_root
def test_nodes_closed_to_others_are_opened_through_their_group(tmp_path):
    root = stand_in_cards(tmp_path / "dev", cards=(0,), mode=0o660)
    for node in root.iterdir():
        os.chown(node, 0, 44)
    options = devices.container_options(devices.Cards.discover(root), [0])
    assert options["group_add"] == ["44"]


# --- CDI ------------------------------------------------------------------------------------

@needs_root
def test_the_cdi_spec_has_one_device_per_card_plus_all_and_is_schema_valid(tmp_path):
    root = stand_in_cards(tmp_path / "dev")
    spec = devices.cdi_spec(devices.Cards.discover(root))
    assert spec["kind"] == "kunlunxin.com/xpu"
    assert [d["name"] for d in spec["devices"]] == ["0", "1", "all"]
    nodes = {d["name"]: [n["path"] for n in d["containerEdits"]["deviceNodes"]] for d in spec["devices"]}
    assert nodes == {"0": ["/dev/xpu0", "/dev/xpuctrl"], "1": ["/dev/xpu1", "/dev/xpuctrl"],
                     "all": ["/dev/xpu0", "/dev/xpu1", "/dev/xpuctrl"]}
    assert "XPU_VISIBLE_DEVICES=1" in spec["devices"][1]["containerEdits"]["env"]
    assert devices.cdi_problems(spec) == []
    devices.write_cdi(spec, tmp_path / "cdi" / "kunlunxin-xpu.yaml")
    assert "kind: kunlunxin.com/xpu" in (tmp_path / "cdi" / "kunlunxin-xpu.yaml").read_text()


def test_the_cdi_schema_rejects_what_runtimes_would():
    bad = {"cdiVersion": "0.6.0", "kind": "kunlunxin", "devices": [
        {"name": "-0", "containerEdits": {"deviceNodes": [{"path": "dev/xpu0"}]}}]}
    problems = "\n".join(devices.cdi_problems(bad))
    assert "kind" in problems and "devices.0.name" in problems and "devices.0.containerEdits.deviceNodes.0.path" in problems


# --- the entrypoint's device choice ------------------------------------------------------------

def test_visible_xpus_come_from_the_env_var_or_the_nodes(tmp_path):
    (tmp_path / "xpu1").touch(), (tmp_path / "xpu0").touch(), (tmp_path / "xpuctrl").touch()
    assert device.visible_xpus({}, tmp_path) == ["0", "1"]
    assert device.visible_xpus({"XPU_VISIBLE_DEVICES": "3"}, tmp_path) == ["3"]
    assert device.visible_xpus({"XPU_VISIBLE_DEVICES": ""}, tmp_path) == []


@pytest.mark.parametrize("visible, has_xpu, require, expected", [
    (["0", "1"], True, False, ("xpu", ["0", "1"])),
    ([], False, False, ("cpu", [])),
    ([], True, False, ("cpu", [])),
])
def test_the_device_is_chosen_from_what_is_visible_and_what_paddle_can_do(visible, has_xpu, require, expected):
    choice = device.choose(device.Facts(visible, has_xpu, "xpu" if has_xpu else "cpu", require))
    assert (choice.kind, choice.ids) == expected
    if choice.kind == "cpu":
        assert choice.notice.startswith("no Kunlun XPU visible: training on CPU")


def test_xpus_visible_to_a_cpu_image_is_an_error_naming_the_flavour(monkeypatch):
    monkeypatch.setenv("KUNLUN_MODEL", "resnet50")
    with pytest.raises(TrainError) as info:
        device.choose(device.Facts(["0"], False, "cpu"))
    assert "this image is the 'cpu' flavour" in str(info.value) and "--flavour xpu" in str(info.value)


def test_require_xpu_turns_the_cpu_fallback_into_an_error():
    with pytest.raises(TrainError, match="--require-xpu: no Kunlun XPU visible"):
        device.choose(device.Facts([], True, "xpu", require_xpu=True))


# --- doctor on an XPU host (stand-in /dev and /proc) ------------------------------------------

@needs_root
def test_doctor_checks_driver_nodes_and_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("KUNLUN_DEV_ROOT", str(stand_in_cards(tmp_path / "dev", cards=(0,), mode=0o660)))
    monkeypatch.setenv("KUNLUN_PROC_ROOT", str(tmp_path / "proc"))
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/modules").write_text("ext4 1 0 - Live 0x0\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    checks = {c.name: c for c in doctor.xpu_checks(client=None)}
    assert not checks["Kunlun driver"].ok and "modprobe kunlun" in checks["Kunlun driver"].fix
    assert checks["XPU device nodes"].ok and checks["XPU device nodes"].detail == "xpu0"
    assert not checks["xpu0 node"].ok and "chmod 666" in checks["xpu0 node"].fix
    assert checks["xpuctrl node"].ok
    assert not checks["xpu_smi"].ok and not checks["xpu_smi"].required

    (tmp_path / "proc/xpu").mkdir()
    (tmp_path / "proc/xpu/version").write_text("kunlun driver 4.31.2\n")
    assert doctor.driver_loaded()[0] and doctor.driver_version() == "4.31.2"


def test_doctor_on_a_host_without_cards_says_cpu_only(tmp_path, monkeypatch):
    monkeypatch.setenv("KUNLUN_DEV_ROOT", str(tmp_path))
    monkeypatch.setenv("KUNLUN_PROC_ROOT", str(tmp_path))
    [check] = doctor.xpu_checks(client=None)
    assert check.ok and "CPU training only" in check.detail


# --- matrix, lock and fetch for the xpu flavours -----------------------------------------------

def test_the_xpu_flavours_are_declared_but_wait_for_their_inputs(matrix):
    assert matrix.flavours["xpu"].runtime == "kunlun2" and matrix.runtimes["kunlun2"].chips == ["R200", "R480"]
    assert matrix.bases[matrix.flavours["xpu-p800"].base].python == "3.9"   # P800 wheels: cp39/cp310
    assert "xpu" not in matrix.ready_flavours()


def test_a_ready_xpu_flavour_needs_every_input_hashed(write_matrix):
    path = write_matrix(lambda d: d["flavours"]["xpu"].update(status="ready"))
    with pytest.raises(MatrixError) as info:
        matrix.load(path)
    assert "runtimes.kunlun2.archives.x86_64: no sha256 for xre-ubuntu_2004_x86_64.tar.gz" in str(info.value)


def test_a_direct_wheel_takes_its_dependencies_from_the_cpu_build(monkeypatch):
    calls = []

    def resolve(reqs, target, **kw):
        calls.append(reqs)
        return [lock.Wheel("paddlepaddle", "3.2.2", "1" * 64, "https://pypi/paddlepaddle.whl"),
                lock.Wheel("numpy", "1.26.4", "2" * 64, "https://pypi/numpy.whl")]
    monkeypatch.setattr(lock, "pip_resolve", resolve)
    values = {"requirements": ["paddlepaddle-xpu==3.2.2", "numpy==1.26.4"], "dependencies_of": "paddlepaddle",
              "wheel": {"url": "https://example/paddlepaddle_xpu-3.2.2-cp311-cp311-linux_x86_64.whl", "sha256": "3" * 64}}
    wheels = lock.direct_wheel(values, lock.Target("manylinux_2_36_x86_64", "3.11"))
    assert calls == [["paddlepaddle==3.2.2", "numpy==1.26.4"]]
    assert [(w.name, w.sha256) for w in wheels] == [("numpy", "2" * 64), ("paddlepaddle-xpu", "3" * 64)]


def test_a_missing_runtime_archive_says_which_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    archive = lock.Wheel("xre", "4.31.0", "0" * 64, "http://127.0.0.1:9/xre-ubuntu_2004_x86_64.tar.gz")
    with pytest.raises(InputError) as info:
        fetch.fetch([archive], directory=tmp_path / "cache")
    assert "obtain xre-ubuntu_2004_x86_64.tar.gz (published at http://127.0.0.1:9/" in info.value.hint
    assert str(tmp_path / "cache") in info.value.hint and "--source DIR" in info.value.hint


def test_configured_source_directories_serve_air_gapped_hosts(tmp_path, monkeypatch):
    disk = tmp_path / "kunlun-sdk"
    disk.mkdir()
    (disk / "xre-ubuntu_2004_x86_64.tar.gz").write_bytes(b"stand-in runtime")
    sha = hashlib.sha256(b"stand-in runtime").hexdigest()
    (tmp_path / "config/kunlun-bundle").mkdir(parents=True)
    (tmp_path / "config/kunlun-bundle/config.yaml").write_text(f"sources: [{disk}]\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    archive = lock.Wheel("xre", "4.31.0", sha, "http://127.0.0.1:9/xre-ubuntu_2004_x86_64.tar.gz")
    (tmp_path / "cache").mkdir()
    [path] = fetch.fetch([archive], directory=tmp_path / "cache")   # the URL is never tried
    assert path.read_bytes() == b"stand-in runtime"
