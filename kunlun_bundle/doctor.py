"""`invoke doctor`: every host check the bundle depends on, each failure with what to do."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from . import cache, docker_api, host, naming, ui
from .errors import BundleError, HostError
from .matrix import Matrix

MIN_FREE = 20 * 10**9      # one arch's full chain plus the wheel cache, with room to spare

# Host packages the bundle needs, by the command that shows they are installed.
HOST_PACKAGES = {"mmdebstrap": "mmdebstrap"}


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
    for tool, package in HOST_PACKAGES.items():
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
    if client is not None:
        for arch in m.arch_registry:
            for base in m.bases:
                tag = naming.base_image(m, base, arch.name)
                present = docker_api.image(client, tag) is not None
                results.append(Check(f"base image {tag}", present, "present" if present else "missing",
                                     f"invoke base --arch {arch.name}", required=False))
    return results


def report(m: Matrix) -> bool:
    results = checks(m)
    rows = [["ok" if r.ok else ("FAIL" if r.required else "warn"), r.name, r.detail, "" if r.ok else r.fix]
            for r in results]
    ui.table(["", "check", "detail", "what to do"], rows, title="Host checks")
    return all(r.ok for r in results if r.required)


def install_host_packages() -> None:
    """Install the Debian packages the bundle needs, when missing (as root; otherwise say how)."""
    missing = [pkg for tool, pkg in HOST_PACKAGES.items() if not shutil.which(tool)]
    if not missing:
        return
    if os.getuid() != 0:
        raise HostError(f"missing host packages: {' '.join(missing)}",
                             hint=f"sudo apt-get install -y {' '.join(missing)}")
    with ui.step(f"install host packages: {' '.join(missing)}"):
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
