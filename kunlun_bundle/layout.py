"""Where things live inside the images. Templates, the runner and tests read these names."""
from __future__ import annotations

from dataclasses import dataclass

VENV = "/opt/kunlun/venv"                 # the Paddle layer's Python environment
SUITES = "/opt/kunlun/suites"             # one directory per suite layer
ENTRYPOINTS = "/opt/kunlun/entrypoints"   # entrypoints/ of this repository
DATA_MOUNT = "/data"                      # where `invoke run --data` mounts the dataset (read-only)
OUTPUT_MOUNT = "/output"                  # where `invoke run --output` mounts the output directory
PACKAGED_MODEL = "/opt/kunlun/model"      # where a serving image (`invoke package`) holds its export
SBOM_DIR = "/opt/kunlun/sbom"             # a published image's SBOM files (publishing/sbom.py)


@dataclass(frozen=True)
class User:
    name: str = "kunlun"
    uid: int = 1000
    home: str = "/home/kunlun"


USER = User()


def suite_dir(suite: str) -> str:
    return f"{SUITES}/{suite}"


def xpu_dir(version: str) -> str:
    """Where an XPU runtime (XRE) is unpacked; /usr/local/xpu links to it."""
    return f"/usr/local/xpu-{version}"
