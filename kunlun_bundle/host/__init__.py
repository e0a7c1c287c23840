"""The host: facts that builds depend on (here: tools, binfmt emulation, disk space), the cache, and
the doctor. `doctor` reports them all; `base` and `build` require the ones they need and fail fast
with the fix.

  cache   ~/.cache/kunlun-bundle: wheels, .debs, runtime archives, rootfs tarballs, scratch
  archive a tar with a checksummed manifest (offline bundles, image archives)
  doctor  every host check with what to do about a failure; installs the host packages
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..arch import Arch
from ..errors import HostError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


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


# Last, after the checks above that they use: the cache's folders and the doctor's report.
from . import archive, cache, doctor  # noqa: E402
