"""The host: facts that builds depend on (here: tools, binfmt emulation, disk space) and the cache.
`base` and `build` require the facts they need and fail fast with the fix; the doctor
(kunlun_bundle/doctor.py, above this package) reports them all.

  cache   ~/.cache/kunlun-bundle: wheels, .debs, runtime archives, rootfs tarballs, scratch
  archive a tar with a checksummed manifest (offline bundles, image archives)
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .. import ui
from ..arch import Arch
from ..errors import HostError
from . import archive, cache  # noqa: F401

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# Host packages the bundle needs, by the command that shows they are installed.
# dpkg-scanpackages: the Packages file of the local repository the base is bootstrapped from (rootfs.py).
HOST_PACKAGES = {"mmdebstrap": "mmdebstrap", "dpkg-scanpackages": "dpkg-dev"}


def binfmt_fix(arch: Arch) -> str:
    return ("sudo apt-get install -y qemu-user-static binfmt-support && "
            f"sudo mount -t binfmt_misc binfmt_misc {BINFMT_DIR} 2>/dev/null; "
            f"sudo update-binfmts --enable qemu-{arch.name}")


def binfmt_status(arch: Arch, native: Arch, root: Path = BINFMT_DIR) -> tuple[bool, str]:
    """Can this host run `arch` binaries? Natively, or through an enabled qemu binfmt handler."""
    if arch == native:
        return True, "native"
    handler = root / f"qemu-{arch.name}"
    if not handler.exists():
        return False, f"no binfmt handler {handler}"
    state = handler.read_text().splitlines()[0].strip()
    if state != "enabled":
        return False, f"{handler} is {state}"
    return True, f"emulated by {handler}"


def require_binfmt(arch: Arch, native: Arch) -> None:
    ok, why = binfmt_status(arch, native)
    if not ok:
        raise HostError(f"this {native.name} host cannot run {arch.name} binaries ({why})",
                        hint=f"enable qemu emulation: {binfmt_fix(arch)}")


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise HostError(f"`{name}` is not installed", hint=f"sudo apt-get install -y {package}")
    return path


def free_bytes(path: Path) -> int:
    path = Path(path)
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


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
