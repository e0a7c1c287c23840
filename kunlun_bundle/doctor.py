"""`invoke doctor`: every host check the bundle depends on, each failure with what to do.

It reports on the host, the Docker engine, the images and the Kunlun cards, so it stands above all the
subpackages (which therefore never import it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import host, naming, ui
from .containers import docker_api
from .errors import BundleError
from .host import cache
from .images import chain, labels
from .matrix import Matrix
from .training import devices

MIN_FREE = 20 * 10**9      # one arch's full chain plus the wheel cache, with room to spare


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True   # a failed optional check is a warning


def checks(m: Matrix) -> list[Check]:
    results = []
    client = None
    try:
        client = docker_api.client()
        version = client.version()
        results.append(Check("Docker daemon", True, f"reachable, Docker {version.get('Version')}"))
    except BundleError as exc:
        results.append(Check("Docker daemon", False, exc.message, exc.hint or ""))
    for tool, package in host.HOST_PACKAGES.items():
        path = shutil.which(tool)
        results.append(Check(f"{tool}", bool(path), path or "not installed", f"sudo apt-get install -y {package}"))
    native = m.arch_registry.native()
    for arch in m.arch_registry:
        ok, why = host.binfmt_status(arch, native)
        results.append(Check(f"run {arch.name} binaries", ok, why, host.binfmt_fix(arch), required=arch == native))
    docker_root = "/var/lib/docker"
    if client is not None:
        docker_root = client.info().get("DockerRootDir", docker_root)
    for label, path in (("disk: Docker data", docker_root), ("disk: cache", str(cache.root()))):
        free = host.free_bytes(path)
        results.append(Check(label, free >= MIN_FREE, f"{ui.size(free)} free at {path}",
                             f"free space below {path} (at least {ui.size(MIN_FREE)}), e.g. `docker system prune`"))
    results += xpu_checks(client)
    if client is not None:
        results.append(images_check(m, client))
    if client is not None:
        for arch in m.arch_registry:
            for base in {m.flavours[f].base for f in m.ready_flavours()}:
                tag = naming.base_image(m, base, arch.name)
                present = docker_api.image(client, tag) is not None
                results.append(Check(f"base image {tag}", present, "present" if present else "missing",
                                     f"invoke base --arch {arch.name}", required=False))
    return results


def proc_root() -> Path:
    return Path(os.environ.get("KUNLUN_PROC_ROOT", "/proc"))


VERSION = re.compile(r"\d+\.\d+(?:\.\d+)*")


def driver_version() -> Optional[str]:
    """The loaded Kunlun driver's version, from /proc/xpu/version when the driver provides it."""
    path = proc_root() / "xpu" / "version"
    if path.is_file():
        match = VERSION.search(path.read_text(errors="replace"))
        return match.group(0) if match else None
    return None


def driver_loaded() -> tuple[bool, str]:
    if (proc_root() / "xpu").is_dir():
        return True, f"{proc_root() / 'xpu'} present"
    modules = proc_root() / "modules"
    if modules.is_file():
        names = [line.split()[0] for line in modules.read_text().splitlines() if line.strip()]
        found = [n for n in names if n in ("kunlun", "xpu_driver")]
        if found:
            return True, f"module {found[0]} loaded"
    return False, f"no {proc_root() / 'xpu'} and no kunlun module in lsmod"


def xpu_checks(client) -> list[Check]:
    """Only on hosts that look like Kunlun hosts (cards, driver); elsewhere one line saying CPU only."""
    cards = devices.Cards.discover()
    loaded, why = driver_loaded()
    if not cards.cards and not loaded:
        return [Check("Kunlun XPU", True, f"no cards under {devices.dev_root()} and no driver: CPU training only",
                      required=False)]
    results = [Check("Kunlun driver", loaded, why, "install and load the Kunlun driver (kunlun.ko): "
                     "`sudo modprobe kunlun`; the container needs only the device nodes, the host needs the driver")]
    results.append(Check("XPU device nodes", bool(cards.cards), cards.describe(),
                         f"no {devices.dev_root()}/xpuN nodes: the driver creates them when it loads"))
    for index, node in cards.cards.items():
        ok = node.char and node.world_rw
        detail = f"{node.path} {'char device' if node.char else 'NOT a char device'}, mode {oct(node.mode)}"
        fix = "" if ok else ("recreate it (the driver does)" if not node.char else
                             f"`sudo chmod 666 {node.path}`, or rely on the bundle adding the group {node.gid} "
                             "to the container (invoke run does)")
        results.append(Check(f"xpu{index} node", ok, detail, fix, required=node.char))
    ctrl = cards.ctrl
    results.append(Check("xpuctrl node", ctrl is not None and ctrl.char,
                         str(ctrl.path) if ctrl else f"{devices.dev_root()}/{devices.CTRL} missing",
                         "every process using a card needs /dev/xpuctrl; reload the driver"))
    smi = shutil.which("xpu_smi") or shutil.which("xpu-smi")
    if smi is None:
        results.append(Check("xpu_smi", False, "not on PATH", "install the XRE runtime on the host "
                             "(it ships bin/xpu_smi) or the driver's tools", required=False))
    else:
        try:
            proc = subprocess.run([smi], capture_output=True, text=True, timeout=30)
            ok, detail = proc.returncode == 0, (proc.stdout or proc.stderr).strip().splitlines()[:1]
            results.append(Check("xpu_smi", ok, f"{smi}: {detail[0] if detail else 'no output'}",
                                 "xpu_smi failing usually means a missing or mismatched driver: check `lsmod | grep kunlun`"))
        except (OSError, subprocess.TimeoutExpired) as exc:
            results.append(Check("xpu_smi", False, f"{smi}: {exc}", "check the driver installation"))
    host = driver_version()
    if client is not None:
        for image in client.images.list(filters={"label": "io.kunlun.xpu.runtime.version"}):
            wanted = image.labels["io.kunlun.xpu.runtime.version"]
            tag = image.tags[0] if image.tags else image.short_id
            if host is None:
                results.append(Check(f"driver for {tag}", False, f"image runtime {wanted}; host driver version unknown "
                                     f"(no {proc_root() / 'xpu/version'})", "check `xpu_smi` on the host", required=False))
            else:
                same = host.split(".")[0] == wanted.split(".")[0]
                results.append(Check(f"driver for {tag}", same, f"host driver {host}, image runtime {wanted}",
                                     f"use an image whose runtime matches driver {host.split('.')[0]}.x "
                                     "(the xpu flavours in matrix.yaml), or update the host driver"))
    return results


def images_check(m: Matrix, client, root: Path = Path(".")) -> Check:
    """Whether the images here are what this checkout builds: their io.kunlun.inputs.sha256 label
    against the digest computed from the checkout (the commit's own facts aside). The images are
    reproducible, so the same inputs mean the same image."""
    native = m.arch_registry.native()
    current, stale, missing = [], [], 0
    for top in chain.all_ready(m):
        if top.arch != native:
            continue
        found = docker_api.image(client, top.image)
        if found is None:
            missing += 1
        elif (found.labels or {}).get(labels.INPUTS) == labels.inputs_digest(m, top, root):
            current.append(top.name)
        else:
            stale.append(top.name)
    detail = f"{len(current)} current, {len(stale)} built from other inputs, {missing} not built"
    if stale:
        detail += f" (stale: {', '.join(stale)})"
    return Check("images of this checkout", not stale, detail,
                 "rebuild them: `invoke build --model " + " --model ".join(stale) + "`" if stale else "", required=False)


def report(m: Matrix) -> bool:
    results = checks(m)
    rows = [["ok" if r.ok else ("FAIL" if r.required else "warn"), r.name, r.detail, "" if r.ok else r.fix]
            for r in results]
    ui.table(["", "check", "detail", "what to do"], rows, title="Host checks")
    return all(r.ok for r in results if r.required)

