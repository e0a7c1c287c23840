"""Image names and tags: the one place they are spelled. Everything else calls these."""
from __future__ import annotations

from .matrix import Matrix


def base_image(m: Matrix, base: str, arch: str) -> str:
    return f"{m.bundle.namespace}/base:{m.bases[base].release}-{arch}"


def base_dated_image(m: Matrix, base: str, arch: str, date: str) -> str:
    """A second tag on the base showing when it was bootstrapped, e.g. kunlun/base:bookworm-x86_64-20261123."""
    return f"{base_image(m, base, arch)}-{date}"


def paddle_image(m: Matrix, flavour: str, arch: str) -> str:
    return f"{m.bundle.namespace}/paddle:{m.paddle_version(flavour, arch)}-{flavour}-{arch}"


def suite_image(m: Matrix, suite: str, flavour: str, arch: str) -> str:
    version = m.suites[suite].version
    return f"{m.bundle.namespace}/{suite}:{version}-paddle{m.paddle_version(flavour, arch)}-{flavour}-{arch}"


def model_version(m: Matrix, flavour: str, arch: str) -> str:
    """The bundle version plus the Paddle version it was built with, e.g. 0.1.0-paddle3.2.2."""
    return f"{m.bundle.version}-paddle{m.paddle_version(flavour, arch)}"


def model_image(m: Matrix, model: str, flavour: str, arch: str) -> str:
    return f"{m.bundle.namespace}/{model}:{model_version(m, flavour, arch)}-{flavour}-{arch}"


def model_latest(m: Matrix, model: str) -> str:
    """What `docker run kunlun/<model>` finds: the host arch's default-flavour build."""
    return f"{m.bundle.namespace}/{model}:latest"


def default_flavour(m: Matrix) -> str:
    """The flavour `latest` points at and builds default to: the first ready one in the matrix."""
    return m.ready_flavours()[0]
