"""Bootstrapping the OS base from Debian packages: mmdebstrap writes a rootfs tarball into the
cache (reproducible: SOURCE_DATE_EPOCH fixes every timestamp), and the base image is
`FROM scratch` + `ADD rootfs.tar` (dockerfiles/base/), built by build.py like any other layer."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Callable

from .. import host
from ..arch import Arch
from ..errors import HostError
from ..host import cache
from ..matrix import Matrix


def inputs_sha256(m: Matrix, base: str, arch: Arch) -> str:
    """A hash of everything that decides the rootfs (release, mirror, packages, epoch, arch)."""
    key = json.dumps({"base": m.bases[base].model_dump(), "arch": arch.debian}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def rootfs_path(m: Matrix, base: str, arch: Arch) -> Path:
    """The cached tarball, named by its inputs' hash."""
    return cache.rootfs() / f"{m.bases[base].release}-{arch.name}-{inputs_sha256(m, base, arch)[:12]}.tar"


def mmdebstrap_command(m: Matrix, base: str, arch: Arch, out: Path) -> list[str]:
    b = m.bases[base]
    return ["mmdebstrap", "--variant=apt", "--format=tar", f"--architectures={arch.debian}",
            f"--include={','.join(b.packages)}",
            '--aptopt=Acquire::Retries "3"',
            b.release, str(out), b.mirror]


def bootstrap(m: Matrix, base: str, arch: Arch, native: Arch,
              on_line: Callable[[str], None] = lambda line: None) -> Path:
    """The rootfs tarball for (base, arch), bootstrapping it if the cache lacks it."""
    out = rootfs_path(m, base, arch)
    if out.exists():
        return out
    host.require_tool("mmdebstrap", "mmdebstrap")
    host.require_binfmt(arch, native)
    part = out.with_name(out.name + ".part")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(m.bases[base].source_date_epoch))
    cmd = mmdebstrap_command(m, base, arch, part)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        on_line(line.rstrip())
    if proc.wait() != 0:
        part.unlink(missing_ok=True)
        raise HostError(f"mmdebstrap failed for {m.bases[base].release}/{arch.debian} (exit {proc.returncode}):\n    "
                        + "\n    ".join(lines[-15:]),
                        hint=f"check that {m.bases[base].mirror} is reachable; the full command was: {' '.join(cmd)}")
    part.rename(out)
    return out
