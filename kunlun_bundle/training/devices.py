"""Kunlun XPU cards on this host: discovery, choosing cards for a container, and the CDI spec.

A card is a character device /dev/xpuN; every process using cards also needs the control node
/dev/xpuctrl. Containers get exactly the chosen nodes with `--device` (never --privileged), the
groups that own them (so the non-root user can open them), and XPU_VISIBLE_DEVICES /
FLAGS_selected_xpus naming the same cards. The device root is configurable ($KUNLUN_DEV_ROOT) so
tests can point it at stand-in nodes."""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import BundleError, UsageError

CTRL = "xpuctrl"
CARD = re.compile(r"^xpu(\d+)$")
CDI_KIND = "kunlunxin.com/xpu"          # CDI device kind: --device kunlunxin.com/xpu=0
K8S_RESOURCE = "baidu.com/xpu"          # Kunlunxin's Kubernetes device plugin resource
CDI_VERSION = "0.6.0"


def dev_root() -> Path:
    return Path(os.environ.get("KUNLUN_DEV_ROOT", "/dev"))


@dataclass(frozen=True)
class Node:
    path: Path          # on the host
    name: str           # under /dev in the container (xpu0, xpuctrl): the same name as on the host
    mode: int
    gid: int
    char: bool

    @property
    def container_path(self) -> str:
        return f"/dev/{self.name}"

    @property
    def world_rw(self) -> bool:
        return self.mode & 0o006 == 0o006

    @classmethod
    def of(cls, path: Path) -> "Node":
        st = path.stat()
        return cls(path, path.name, stat.S_IMODE(st.st_mode), st.st_gid, stat.S_ISCHR(st.st_mode))


@dataclass(frozen=True)
class Cards:
    cards: dict[int, Node]          # card index -> node
    ctrl: Optional[Node]

    @classmethod
    def discover(cls, root: Optional[Path] = None) -> "Cards":
        root = root or dev_root()
        cards = {}
        for path in root.glob("xpu*"):
            match = CARD.match(path.name)
            if match:
                cards[int(match.group(1))] = Node.of(path)
        ctrl = root / CTRL
        return cls(dict(sorted(cards.items())), Node.of(ctrl) if ctrl.exists() else None)

    def describe(self) -> str:
        return ", ".join(f"xpu{i}" for i in self.cards) or "none"

    def select(self, spec: str) -> list[int]:
        """`all`, or comma-separated card indices such as `0,1`; unknown cards are an error listing the real ones."""
        if not self.cards:
            raise UsageError(f"--xpus {spec}: no Kunlun cards on this host (no {dev_root()}/xpuN nodes)",
                             hint="check the driver with `invoke doctor`, or train on CPU without --xpus")
        if spec.strip() == "all":
            return list(self.cards)
        try:
            wanted = [int(part) for part in spec.split(",")]
        except ValueError:
            raise UsageError(f"--xpus {spec!r}: expected 'all' or card numbers like 0,1") from None
        missing = [i for i in wanted if i not in self.cards]
        if missing:
            raise UsageError(f"--xpus {spec}: no card {', '.join(f'xpu{i}' for i in missing)} on this host",
                             hint=f"cards present: {self.describe()}")
        if len(set(wanted)) != len(wanted):
            raise UsageError(f"--xpus {spec}: a card is listed twice")
        if self.ctrl is None:
            raise UsageError(f"{dev_root()}/{CTRL} is missing: the cards cannot be used without the control node",
                             hint="the Kunlun driver creates it when it loads; see `invoke doctor`")
        return wanted


def environment(indices: list[int]) -> dict[str, str]:
    """The cards a process may use (XPU_VISIBLE_DEVICES, host numbering) and the ones it selects,
    numbered within the visible set, as paddle.distributed.launch numbers them."""
    return {"XPU_VISIBLE_DEVICES": ",".join(map(str, indices)),
            "FLAGS_selected_xpus": ",".join(str(i) for i in range(len(indices)))}


def container_options(cards: Cards, indices: list[int]) -> dict:
    """docker-py run options: the chosen nodes plus xpuctrl, their owning groups, the env vars."""
    nodes = [cards.cards[i] for i in indices] + [cards.ctrl]
    # Docker copies each node's owner, group and mode; a node not open to all is opened through its group.
    groups = sorted({n.gid for n in nodes if not n.world_rw})
    options = {"devices": [f"{n.path}:{n.container_path}:rwm" for n in nodes], "environment": environment(indices)}
    if groups:
        options["group_add"] = [str(g) for g in groups]
    return options


def cdi_spec(cards: Cards) -> dict:
    """A Container Device Interface spec: one device per card and `all`, each with its node(s) and
    /dev/xpuctrl, so `docker run --device kunlunxin.com/xpu=0` (CDI-aware runtimes) works."""
    if not cards.cards:
        raise UsageError(f"no Kunlun cards under {dev_root()}: nothing to describe",
                         hint="load the driver (see `invoke doctor`) and run `invoke cdi` again")
    if cards.ctrl is None:
        raise UsageError(f"{dev_root()}/{CTRL} is missing", hint="the Kunlun driver creates it when it loads")

    def edits(indices: list[int]) -> dict:
        nodes = [cards.cards[i] for i in indices] + [cards.ctrl]
        return {"env": [f"{k}={v}" for k, v in environment(indices).items()],
                "deviceNodes": [{"path": n.container_path, "hostPath": str(n.path)} for n in nodes]}

    devices = [{"name": str(i), "containerEdits": edits([i])} for i in cards.cards]
    devices.append({"name": "all", "containerEdits": edits(list(cards.cards))})
    return {"cdiVersion": CDI_VERSION, "kind": CDI_KIND, "devices": devices}


SCHEMA = Path(__file__).with_name("schemas") / "cdi.schema.json"


def cdi_problems(spec: dict) -> list[str]:
    """Where a CDI spec breaks the schema (kunlun_bundle/schemas/cdi.schema.json); empty when valid."""
    import json

    import jsonschema
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}"
            for e in sorted(validator.iter_errors(spec), key=lambda e: list(map(str, e.absolute_path)))]


def cdi_text(spec: dict) -> str:
    """The spec as YAML, after checking it against the schema (a failure is a bug of ours)."""
    import yaml
    problems = cdi_problems(spec)
    if problems:
        raise BundleError("the generated CDI spec is not valid:\n  " + "\n  ".join(problems))
    return yaml.safe_dump(spec, sort_keys=False)


def write_cdi(spec: dict, path: Path) -> None:
    text = cdi_text(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)   # CDI runtimes watch the directory: never let them read half a file
