"""One offline bundle of every input a set of cells needs, for air-gapped hosts.

`invoke bundle export FILE` writes one tar (host/archive.py: a manifest with every member's sha256):
  source.tar              the project's own sources at HEAD (`git archive`)
  locks/..., patches/...  the locks and patches of those cells (also in source.tar; listed for reading)
  cache/wheels/<file>     every locked wheel
  cache/debs/<file>       every locked Debian package of the bases
  cache/downloads/<file>  the XPU runtime archives, when present in the cache
  host/wheels/<file>      the host tools (requirements/host.txt) for this host's Python, so that
                          `./kunlun` can set up its .venv on the air-gapped host too
`invoke bundle import FILE` verifies every member before it puts any into the cache ($KUNLUN_CACHE),
so a corrupt bundle is refused naming the member, and after it a build needs no network at all."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Optional

from .. import ui
from ..errors import InputError
from ..host import archive, cache
from ..matrix import Matrix
from . import debian, fetch, lock
from .chain import Layer, unique_layers

KIND = "bundle"
CACHE_DIRS = {"wheels": cache.wheels, "debs": cache.debs, "downloads": cache.downloads}


def head(root: Path) -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"{root} is not a git checkout: the bundle carries the sources at a commit",
                         hint="export from a clone of the project")
    return proc.stdout.strip()


def git_archive(root: Path, commit: str, out: Path) -> None:
    with open(out, "wb") as f:
        proc = subprocess.run(["git", "archive", "--format=tar", commit], cwd=root, stdout=f, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise InputError(f"git archive failed: {proc.stderr.decode().strip()}")


def inputs(m: Matrix, layers: list[Layer], root: Path, fetch_missing: bool = True) -> dict[str, Path]:
    """Archive member name -> file, for everything the chains of `layers` are built from (the wheels and
    .debs fetched and verified first; runtime archives only when present in the cache)."""
    members: dict[str, Path] = {}
    for layer in unique_layers(layers):
        if layer.debian_lock:
            members[layer.debian_lock.as_posix()] = root / layer.debian_lock
            deb_lock = debian.DebLock.read(root / layer.debian_lock)
            paths = debian.fetch(deb_lock) if fetch_missing else [debian.cached(d) for d in deb_lock.debs]
            members.update({f"cache/debs/{p.name}": p for p in paths})
        if layer.lock:
            members[layer.lock.as_posix()] = root / layer.lock
            wheels = lock.LockFile.read(root / layer.lock).wheels
            paths = fetch.fetch(wheels) if fetch_missing else [fetch.cached(w) for w in wheels]
            members.update({f"cache/wheels/{p.name}": p for p in paths})
        for p in layer.kind.patches(m, layer):
            members[p.as_posix()] = root / p
        for download in layer.kind.downloads(m, layer):
            path = fetch.cached(download, cache.downloads())
            if path.exists():
                if download.sha256:
                    fetch.verify(path, download.sha256)
                members[f"cache/downloads/{path.name}"] = path
            else:
                ui.warn(f"{download.filename} is not in the cache: the bundle goes without it "
                        f"(`invoke fetch --source DIR` first to include it)")
    missing = [str(p) for p in members.values() if not p.is_file()]
    if missing:
        raise InputError(f"not in the cache: {', '.join(missing[:5])}", hint="run `invoke fetch` for those archs")
    return members


def host_wheels(root: Path) -> dict[str, Path]:
    """The host tools' wheels for this host's Python (pip download into the cache's host-wheels/);
    a failure is a warning: the bundle still builds wherever the tools are installed."""
    directory = cache.root() / "host-wheels"
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--only-binary=:all:", "-d", str(directory), "-r", str(root / "requirements/host.txt")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        ui.warn(f"the host tools' wheels are not in the bundle (pip download failed: "
                f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode})")
        return {}
    return {f"host/wheels/{p.name}": p for p in sorted(directory.iterdir()) if p.is_file()}


def export(m: Matrix, layers: list[Layer], root: Path, out: Path) -> dict:
    """Write the bundle; returns its manifest."""
    commit = head(root)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        ui.warn(f"the checkout has uncommitted changes: the bundle carries the sources at {commit[:12]} (HEAD) without them")
    with ui.step(f"collect the inputs of {len(unique_layers(layers))} image(s)"):
        members = inputs(m, layers, root)
        members.update(host_wheels(root))
    scratch = cache.scratch()
    source = scratch / f"source-{commit}.tar"
    try:
        git_archive(root, commit, source)
        members["source.tar"] = source
        cells = sorted({layer.cell for layer in unique_layers(layers)})
        with ui.step(f"write {out} ({len(members)} files)"):
            manifest = archive.write(out, KIND, members, {"commit": commit, "cells": cells},
                                     mtime=m.bases[layers[0].base].source_date_epoch if layers else 0)
    finally:
        source.unlink(missing_ok=True)
    return manifest


def import_(path: Path, root: Path, checkout: Optional[Path] = None) -> dict:
    """Verify the bundle and fill the cache (and, with `checkout`, unpack the sources there); returns
    the manifest. Nothing reaches the cache unless every member is verified."""
    with archive.verified(path, KIND, cache.scratch()) as bundle:
        placed = 0
        for name, staged in sorted(bundle.files.items()):
            parts = name.split("/")
            if parts[0] == "cache" and len(parts) == 3 and parts[1] in CACHE_DIRS:
                target = CACHE_DIRS[parts[1]]() / parts[2]
                if not (target.is_file() and archive.sha256_of(target) == bundle.manifest["files"][name]["sha256"]):
                    shutil.move(staged, target.with_name(target.name + ".part"))
                    os.replace(target.with_name(target.name + ".part"), target)
                placed += 1
        if checkout is not None:
            checkout = Path(checkout)
            if checkout.exists() and any(checkout.iterdir()):
                raise InputError(f"{checkout} is not empty", hint="give a new directory for the sources")
            checkout.mkdir(parents=True, exist_ok=True)
            with tarfile.open(bundle["source.tar"]) as tar:
                tar.extractall(checkout, filter="data")
        differing = [name for name in bundle.files if name.startswith(("locks/", "patches/"))
                     and (not (root / name).is_file()
                          or archive.sha256_of(root / name) != bundle.manifest["files"][name]["sha256"])]
    manifest = dict(bundle.manifest, placed=placed, differing=differing)
    return manifest
