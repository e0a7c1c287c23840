"""Downloading the build inputs (locked wheels, XPU runtime archives) into the host cache,
verifying every sha256.

A file already in the cache is re-hashed, not trusted; a download goes to a .part file and is
renamed only once its hash matches, so an interrupted fetch leaves nothing half-written behind.
Air-gapped hosts (common at Kunlun sites) bring the files on a disk: `source` (a directory given
on the command line) is used instead of downloading, and the directories in $KUNLUN_SOURCES or
under `sources:` in ~/.config/kunlun-bundle/config.yaml are looked in before downloading."""
from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

from .. import ui
from ..errors import HashMismatchError, InputError
from ..host import cache
from ..host.archive import sha256_of
from .lock import Wheel

CHUNK = 1 << 20


def verify(path: Path, expected: str, name: Optional[str] = None, origin: Optional[str] = None) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise HashMismatchError(
            f"{name or path.name}: sha256 mismatch (lock file pins {expected}, file has {actual}): {origin or path}",
            hint="the file is corrupt or was replaced; delete it and run `invoke fetch` again")


def cached(wheel: Wheel, directory: Optional[Path] = None) -> Path:
    return (directory or cache.wheels()) / wheel.filename


def config_file() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(xdg) / "kunlun-bundle" / "config.yaml"


def configured_sources() -> list[Path]:
    """Directories to look in before downloading: $KUNLUN_SOURCES (':'-separated), then the
    user config's `sources:` list."""
    found = [Path(p).expanduser() for p in os.environ.get("KUNLUN_SOURCES", "").split(":") if p]
    path = config_file()
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML: {exc}") from None
        listed = data.get("sources", []) if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise InputError(f"{path}: `sources` must be a list of directories")
        found += [Path(str(p)).expanduser() for p in listed]
    return found


def missing_hint(item, directory: Path) -> str:
    return (f"obtain {item.filename} (published at {item.url}) and put it in {directory}, or in a directory "
            f"passed with --source DIR, listed in $KUNLUN_SOURCES or under `sources:` in {config_file()}")


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
                else:
                    origin = next((d / wheel.filename for d in configured_sources()
                                   if (d / wheel.filename).is_file()), None)
                if origin is not None:
                    shutil.copyfile(origin, part)
                else:
                    try:
                        _download(wheel.url, part, lambda n: progress(wheel, n))
                    except InputError as exc:
                        raise InputError(exc.message, hint=missing_hint(wheel, path.parent)) from None
                verify(part, wheel.sha256, wheel.filename, str(origin or wheel.url))
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            part.rename(path)
        paths.append(path)
    return paths


def declared_inputs(m, flavours: list[str]) -> list[tuple[str, str, object]]:
    """(where in matrix.yaml, what, Download) for every file the flavours download besides PyPI
    wheels: XPU runtime archives and direct Paddle wheels."""
    found = []
    for name in flavours:
        f = m.flavours[name]
        for arch, wheel in f.wheels.items():
            found.append((f"flavours.{name}.wheels.{arch}", f"Paddle wheel ({name}, {arch})", wheel))
        if f.runtime:
            for arch, archive in m.runtimes[f.runtime].archives.items():
                if arch in f.paddle:
                    found.append((f"runtimes.{f.runtime}.archives.{arch}", f"XRE {m.runtimes[f.runtime].version} ({arch})", archive))
    return found


def locate(filename: str, source: Optional[Path] = None) -> Optional[Path]:
    """A local copy of an input: --source, the configured sources, then the cache."""
    places = ([Path(source)] if source else []) + configured_sources() + [cache.downloads(), cache.wheels()]
    return next((d / filename for d in places if (d / filename).is_file()), None)


def input_rows(m, flavours: list[str], source: Optional[Path] = None) -> list[list[str]]:
    """input | url | recorded sha256 | local copy and its sha256 | state: what `invoke inputs` shows."""
    rows = []
    for where, what, item in declared_inputs(m, flavours):
        local = locate(item.filename, source)
        actual = sha256_of(local) if local else None
        state = ("matches" if actual == item.sha256 else "DIFFERS from the recorded sha256") if actual and item.sha256 \
            else (f"record it at {where}.sha256" if actual else "no local copy")
        rows.append([what, item.url, item.sha256 or "not recorded", f"{local}\n{actual}" if local else "-", state])
    return rows


def show_inputs(m, flavours: list[str], source: Optional[Path] = None) -> None:
    ui.table(["input", "url", "recorded sha256", "local copy / its sha256", "state"], input_rows(m, flavours, source))
