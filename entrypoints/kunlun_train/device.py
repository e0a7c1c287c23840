"""Which device a run trains on, decided before Paddle is imported from facts gathered here:

  XPUs visible + Paddle built for XPU       -> train on the XPUs
  XPUs visible + Paddle without XPU support -> error: this image's flavour can't use them
  no XPUs visible                           -> CPU, with a one-line notice (--require-xpu: error)

The container sees the cards `invoke run --xpus` (or `docker run --device`) mapped in: the
/dev/xpuN nodes, and XPU_VISIBLE_DEVICES when set. Paddle's XPU build is the wheel named
paddlepaddle-xpu; the image's flavour is in $KUNLUN_FLAVOUR (set by the framework layer)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .errors import TrainError

CARD = re.compile(r"^xpu(\d+)$")


@dataclass(frozen=True)
class Facts:
    visible: list[str]          # XPU ids this container may use
    paddle_has_xpu: bool
    flavour: str                # the image's flavour
    require_xpu: bool = False


@dataclass(frozen=True)
class Choice:
    kind: str                   # "xpu" or "cpu"
    ids: list[str] = field(default_factory=list)
    notice: str = ""


def visible_xpus(env=os.environ, dev: Path = Path("/dev")) -> list[str]:
    """XPU_VISIBLE_DEVICES when it is set (the cards' host numbers); else the /dev/xpuN nodes present."""
    if "XPU_VISIBLE_DEVICES" in env:
        return [i.strip() for i in env["XPU_VISIBLE_DEVICES"].split(",") if i.strip()]
    found = [int(m.group(1)) for p in dev.glob("xpu*") if (m := CARD.match(p.name))]
    return [str(i) for i in sorted(found)]


def paddle_has_xpu() -> bool:
    try:
        metadata.distribution("paddlepaddle-xpu")
        return True
    except metadata.PackageNotFoundError:
        return False


def facts(require_xpu: bool) -> Facts:
    return Facts(visible_xpus(), paddle_has_xpu(), os.environ.get("KUNLUN_FLAVOUR", "cpu"), require_xpu)


def choose(f: Facts) -> Choice:
    model = os.environ.get("KUNLUN_MODEL", "MODEL")
    if f.visible and f.paddle_has_xpu:
        return Choice("xpu", list(f.visible))
    if f.visible:
        raise TrainError(
            f"{len(f.visible)} Kunlun XPU(s) visible (ids {','.join(f.visible)}) but this image is the "
            f"'{f.flavour}' flavour: its Paddle has no XPU support. Run the xpu flavour instead "
            f"(`invoke build --model {model} --flavour xpu`, then `invoke run {model} --flavour xpu --xpus ...`), "
            "or start this image without the XPU devices to train on CPU")
    if f.require_xpu:
        raise TrainError("--require-xpu: no Kunlun XPU visible in this container (no /dev/xpuN nodes); "
                         f"map cards in with `invoke run {model} --xpus 0` or `docker run --device /dev/xpu0 "
                         "--device /dev/xpuctrl ...`")
    notice = "no Kunlun XPU visible: training on CPU"
    if f.paddle_has_xpu:
        notice += " (this is an XPU image; map cards in with --xpus to use them)"
    return Choice("cpu", notice=notice)
