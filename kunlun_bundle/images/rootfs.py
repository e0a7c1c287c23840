"""Bootstrapping the OS base from Debian packages: mmdebstrap writes a rootfs tarball into the
cache (reproducible: SOURCE_DATE_EPOCH fixes every timestamp), and the base image is
`FROM scratch` + `ADD rootfs.tar` (dockerfiles/base/), built by build.py like any other layer.

The packages are exactly those of the base's Debian lock (debian.py, locks/<arch>/base-<base>.txt):
the .debs are fetched into the cache with their sha256 checked, put in a local repository with a
generated Packages file, and mmdebstrap installs from that alone (no network). The rootfs keeps the
real mirror in /etc/apt/sources.list, and what was installed is checked against the lock."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

from .. import host
from ..arch import Arch
from ..errors import HostError, InputError
from ..host import cache
from ..matrix import Matrix
from . import debian

def inputs_sha256(m: Matrix, base: str, arch: Arch, root: Path = Path(".")) -> str:
    """A hash of everything that decides the rootfs (release, mirror, packages, epoch, arch, and the
    Debian lock: the exact packages)."""
    path = root / debian.lock_path(base, arch)
    lock = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    key = json.dumps({"base": m.bases[base].model_dump(), "arch": arch.debian, "lock": lock}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def rootfs_path(m: Matrix, base: str, arch: Arch, root: Path = Path(".")) -> Path:
    """The cached tarball, named by its inputs' hash."""
    return cache.rootfs() / f"{m.bases[base].release}-{arch.name}-{inputs_sha256(m, base, arch, root)[:12]}.tar"


def mmdebstrap_command(m: Matrix, base: str, arch: Arch, out: Path, repo: Path) -> list[str]:
    """Install from the local repository `repo` only; the rootfs's sources.list names the real mirror."""
    b = m.bases[base]
    sources = f"deb {b.mirror} {b.release} main"
    return ["mmdebstrap", "--variant=apt", "--format=tar", f"--architectures={arch.debian}",
            f"--include={','.join(b.packages)}",
            f"--customize-hook=echo '{sources}' > \"$1/etc/apt/sources.list\"",
            b.release, str(out), f"deb [trusted=yes] copy://{repo} ./"]


def local_repository(lock: debian.DebLock, debs: list[Path], repo: Path) -> None:
    """A flat repository of the locked .debs with a generated Packages file (dpkg-scanpackages)."""
    for path in debs:
        try:
            os.link(path, repo / path.name)
        except OSError:
            shutil.copyfile(path, repo / path.name)
    proc = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=repo,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostError(f"dpkg-scanpackages failed: {proc.stderr.strip()}")
    (repo / "Packages").write_text(proc.stdout, encoding="utf-8")


def installed_packages(tarball: Path) -> dict[str, tuple[str, str]]:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("./var/lib/dpkg/status")
        return debian.installed(member.read().decode("utf-8"))


def bootstrap(m: Matrix, base: str, arch: Arch, native: Arch,
              on_line: Callable[[str], None] = lambda line: None, root: Path = Path(".")) -> Path:
    """The rootfs tarball for (base, arch), bootstrapping it from the locked .debs if the cache lacks it."""
    out = rootfs_path(m, base, arch, root)
    if out.exists():
        return out
    if not debian.is_current(m, base, arch, root):
        raise InputError(f"{debian.lock_path(base, arch)} is missing or out of date with matrix.yaml",
                         hint="run `invoke lock` and commit the result")
    lock = debian.DebLock.read(root / debian.lock_path(base, arch))
    host.require_tool("mmdebstrap", "mmdebstrap")
    host.require_tool("dpkg-scanpackages", "dpkg-dev")
    host.require_binfmt(arch, native)
    debs = debian.fetch(lock)
    part = out.with_name(out.name + ".part")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(m.bases[base].source_date_epoch))
    with tempfile.TemporaryDirectory(prefix="debrepo-", dir=cache.scratch()) as tmp:
        repo = Path(tmp)
        os.chmod(repo, 0o755)
        local_repository(lock, debs, repo)
        cmd = mmdebstrap_command(m, base, arch, part, repo)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip())
            on_line(line.rstrip())
        if proc.wait() != 0:
            part.unlink(missing_ok=True)
            raise HostError(f"mmdebstrap failed for {m.bases[base].release}/{arch.debian} (exit {proc.returncode}):\n    "
                            + "\n    ".join(lines[-15:]),
                            hint=f"the packages came from {debian.lock_path(base, arch)}; if apt cannot install them, "
                                 f"{debian.REFRESH_HINT}. The full command was: {' '.join(cmd)}")
    wrong = debian.differences(lock, installed_packages(part))
    if wrong:
        part.unlink(missing_ok=True)
        raise InputError(f"the bootstrap of {lock.cell} did not install exactly its lock: " + "; ".join(wrong[:10]),
                         hint=debian.REFRESH_HINT)
    part.rename(out)
    return out
