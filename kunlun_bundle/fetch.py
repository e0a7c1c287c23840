"""Downloading the locked wheels into the host cache, verifying every sha256.

A wheel already in the cache is re-hashed, not trusted; a download goes to a .part file and is
renamed only once its hash matches, so an interrupted fetch leaves nothing half-written behind.
`source` (a directory) serves air-gapped hosts: wheels are copied from it instead of downloaded."""
from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

from . import cache
from .errors import HashMismatchError, InputError
from .lock import Wheel

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str, name: Optional[str] = None, origin: Optional[str] = None) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise HashMismatchError(
            f"{name or path.name}: sha256 mismatch (lock file pins {expected}, file has {actual}): {origin or path}",
            hint="the file is corrupt or was replaced; delete it and run `invoke fetch` again")


def cached(wheel: Wheel, directory: Optional[Path] = None) -> Path:
    return (directory or cache.wheels()) / wheel.filename


def _download(url: str, dest: Path, progress: Callable[[int], None]) -> None:
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                progress(len(block))
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"could not download {url}: {exc}",
                         hint="check the network, or fetch on another machine and pass `--source DIR`") from None


def fetch(wheels: Iterable[Wheel], source: Optional[Path] = None, directory: Optional[Path] = None,
          progress: Callable[[Wheel, int], None] = lambda w, n: None) -> list[Path]:
    """Make every wheel present and verified in the cache; returns their paths."""
    paths = []
    for wheel in wheels:
        path = cached(wheel, directory)
        if path.exists():
            verify(path, wheel.sha256)
        else:
            part = path.with_name(path.name + ".part")
            try:
                if source is not None:
                    origin = Path(source) / wheel.filename
                    if not origin.is_file():
                        raise InputError(f"{wheel.filename} is not in {source}",
                                         hint=f"copy it there; it is downloadable from {wheel.url}")
                    shutil.copyfile(origin, part)
                else:
                    _download(wheel.url, part, lambda n: progress(wheel, n))
                verify(part, wheel.sha256, wheel.filename, str(source / wheel.filename) if source else wheel.url)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            part.rename(path)
        paths.append(path)
    return paths
