"""The host cache of downloaded and built inputs (wheels, runtime archives, rootfs tarballs). Never in git.
$KUNLUN_CACHE overrides the default ~/.cache/kunlun-bundle (or $XDG_CACHE_HOME/kunlun-bundle);
a cache shared across clones keeps CI and rebuilds warm."""
from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    if os.environ.get("KUNLUN_CACHE"):
        return Path(os.environ["KUNLUN_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "kunlun-bundle"


def _dir(name: str) -> Path:
    path = root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def wheels() -> Path:
    return _dir("wheels")


def downloads() -> Path:
    """Inputs other than wheels: XPU runtime archives."""
    return _dir("downloads")


def rootfs() -> Path:
    return _dir("rootfs")


def assembled() -> Path:
    """What each assembled image was made from (a key of its inputs) -> its image id: a rebuild with the
    same inputs finds the image instead of assembling it again."""
    return _dir("assembled")


def scratch() -> Path:
    """Temporary files (build contexts, partial downloads); safe to delete at any time."""
    return _dir("tmp")


def debs() -> Path:
    """The locked Debian packages of the bases (locks/<arch>/base-<base>.txt)."""
    return _dir("debs")
