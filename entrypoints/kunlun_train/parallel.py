"""Data-parallel training through Paddle's own launcher: `--devices N` re-runs this entrypoint as N
workers under `python -m paddle.distributed.launch` (N processes over gloo on CPU, N cards on XPU).
Each worker learns its rank from the launcher's environment; trainers shard data and seeds by it."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import TrainError

# The file the launcher runs in each worker (it takes a script path, not a module). It sits beside
# the package, not in it: a script's directory goes first on sys.path, and the package's module
# names (datasets, parallel) would shadow libraries of the same name.
WORKER = Path(__file__).resolve().parents[1] / "launch_worker.py"
LAUNCHED_ENV = "KUNLUN_LAUNCHED"   # set for the launcher and so inherited by every worker it starts


def launcher_env(env=os.environ) -> dict:
    """The launcher's environment: ours, marked as launched, without PADDLE_* variables set by
    others (an operator's PADDLE_TRAINER_ID, PADDLE_TRAINERS_NUM, ...), which the launcher would
    read as its own settings; everything it needs is on its command line."""
    clean = {k: v for k, v in env.items() if not k.startswith("PADDLE_")}
    return {**clean, LAUNCHED_ENV: "1",
            "GLOG_minloglevel": env.get("GLOG_minloglevel", "1"),   # keep Paddle's C++ warnings, drop info
            "PYTHONWARNINGS": "ignore:No ccache found"}             # the launcher imports Paddle too


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @classmethod
    def from_env(cls, env=os.environ) -> "World":
        """In a worker we launched (LAUNCHED_ENV set), the launcher's PADDLE_TRAINER_ID /
        PADDLE_TRAINERS_NUM. Anywhere else those variables are someone else's (a PaddleJob's pods
        carry them too) and this process is not a worker yet."""
        if env.get(LAUNCHED_ENV) != "1":
            return cls()
        return cls(int(env.get("PADDLE_TRAINER_ID", 0)), int(env.get("PADDLE_TRAINERS_NUM", 1)))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Rank 0 logs and writes checkpoints; every rank trains."""
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's share of a dataset (every rank gets at least one item)."""
        mine = items[self.rank::self.size]
        return mine or items[:1]

    def seed(self, base: int) -> int:
        """Different synthetic batches per rank, reproducible per rank."""
        return base + self.rank


def parse_devices(value: str | None) -> list[str]:
    """`--devices 2` -> ['0', '1']; `--devices 0,2` -> ['0', '2']; None -> ['0']."""
    if value is None:
        return ["0"]
    value = value.strip()
    if value.isdigit():
        if int(value) < 1:
            raise TrainError("--devices must be at least 1")
        return [str(i) for i in range(int(value))]
    ids = [v.strip() for v in value.split(",")]
    if not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise TrainError(f"--devices {value!r}: expected a count (2) or distinct device ids (0,1)")
    return ids


@dataclass(frozen=True)
class Nodes:
    """A multi-node job as the launcher sees it: how many nodes, where rank 0 serves the
    rendezvous, and this node's rank."""
    nnodes: int
    master: str
    rank: int

    def launcher_master(self) -> str:
        """Rank 0 serves the rendezvous: Paddle's launcher only starts the server when the master
        address is its own IP or 127.0.0.1, and then listens on every interface. A name that
        resolves to rank 0 (a container or Kubernetes pod name) is therefore given as 127.0.0.1
        on rank 0 itself; the other ranks dial the name."""
        port = self.master.rsplit(":", 1)[1]
        return f"127.0.0.1:{port}" if self.rank == 0 else self.master


def parse_nodes(nnodes: int, master: str | None, rank: int | None) -> Nodes | None:
    """None for a single-node run; a Nodes, checked, for a multi-node one."""
    if nnodes < 1:
        raise TrainError("--nnodes must be at least 1")
    if nnodes == 1:
        return None
    if not master or ":" not in master or not master.rsplit(":", 1)[1].isdigit():
        raise TrainError(f"--nnodes {nnodes} needs --master HOST:PORT (rank 0's address), got {master!r}")
    if rank is None or not 0 <= rank < nnodes:
        raise TrainError(f"--nnodes {nnodes} needs --rank between 0 and {nnodes - 1} for this node, got {rank}")
    return Nodes(nnodes, master, rank)


def launch_command(devices: list[str], argv: list[str], log_dir: str, kind: str = "cpu",
                   nodes: Nodes | None = None) -> list[str]:
    """The launcher command that runs one worker per device with the same training arguments.
    On CPU, --nproc_per_node starts that many gloo workers; on XPU, --devices names the cards (the
    launcher gives each worker one through XPU_VISIBLE_DEVICES / FLAGS_selected_xpus, over BKCL).
    Multi-node adds the rendezvous: every node's launcher meets at --master."""
    which = ["--devices", ",".join(devices)] if kind == "xpu" else ["--nproc_per_node", str(len(devices))]
    if nodes:
        which += ["--master", nodes.launcher_master(), "--nnodes", str(nodes.nnodes), "--rank", str(nodes.rank)]
    return [sys.executable, "-m", "paddle.distributed.launch", *which, "--log_dir", log_dir, str(WORKER), *argv]


LAUNCHER_OPTIONS = ("--devices", "--threads", "--nnodes", "--master", "--rank")


def worker_args(argv: list[str], threads: int) -> list[str]:
    """What each worker gets: the same arguments, one device, and its share of the threads
    (--threads counts the whole container's); the launcher options are the launcher's."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCHER_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LAUNCHER_OPTIONS)):
            out.append(arg)
    return out + ["--threads", str(threads)]


def init(world: World):
    """Join the process group (gloo on CPU) before any collective op or DataParallel."""
    if world.distributed:
        import paddle.distributed as dist
        dist.init_parallel_env()


def wrap(model, world: World):
    """DataParallel averages gradients across ranks; one rank trains the model as is."""
    if not world.distributed:
        return model
    import paddle
    return paddle.DataParallel(model)


def agree(value: float, stop: bool, world: World) -> tuple[float, bool]:
    """The loss averaged over ranks, and whether any rank was asked to stop: one all-reduce, so
    every rank logs the same number and all stop after the same step (a rank that stopped alone
    would leave the others waiting in the next step's collective)."""
    if not world.distributed:
        return value, stop
    import paddle
    import paddle.distributed as dist
    t = paddle.to_tensor([value, 1.0 if stop else 0.0], dtype="float32")
    dist.all_reduce(t)
    total, stops = t.numpy().tolist()
    return total / world.size, stops > 0


def mean(value: float, world: World) -> float:
    """The loss averaged over ranks, so every rank logs and checks the same number."""
    if not world.distributed:
        return value
    import paddle
    import paddle.distributed as dist
    t = paddle.to_tensor([value], dtype="float32")
    dist.all_reduce(t)
    return float(t) / world.size


def gather(value, world: World) -> list:
    """Every rank's `value` (anything picklable), in rank order; [value] in a single process."""
    if not world.distributed:
        return [value]
    import paddle.distributed as dist
    out: list = []
    dist.all_gather_object(out, value)
    return out


# --- which network interface the collectives use ----------------------------------------------
# Gloo (CPU) and BKCL (Kunlun cards) pick an interface themselves when not told, and inside
# containers they pick wrong: the hostname may not resolve (--network none), or docker0 / a veth is
# taken for the job's network and initialisation fails (`bkcl_init_rank failed`). The bundle tells
# them: loopback for a job on one node, and for several nodes the interface that carries this
# node's route to the master. A value the user set wins.
SOCKET_IFNAME = ("GLOO_SOCKET_IFNAME", "BKCL_SOCKET_IFNAME")


def interfaces() -> dict[str, str]:
    """{interface name: IPv4 address} of this host's (container's) interfaces."""
    import fcntl
    import socket
    import struct
    found = {}
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))   # SIOCGIFADDR
            except OSError:
                continue   # no IPv4 address
        found[name] = socket.inet_ntoa(packed[20:24])
    return found


def route_source(host: str, port: int) -> str:
    """This machine's address on the route to host (a UDP connect sends nothing)."""
    import socket
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return s.getsockname()[0]
    except OSError as exc:
        raise TrainError(f"--master {host}:{port}: no route to it from here ({exc}); check the address "
                         "and that this container is on the job's network") from None


def socket_ifname(nodes: "Nodes | None", find_interfaces=interfaces, find_source=route_source) -> str:
    if nodes is None:
        return "lo"
    host, port = nodes.master.rsplit(":", 1)
    source = find_source(host, int(port))
    named = find_interfaces()
    for name, address in named.items():
        if address == source:
            return name
    raise TrainError(f"no interface has {source}, this node's address towards the master {nodes.master} "
                     f"(interfaces: {', '.join(f'{n} {a}' for n, a in named.items())}); set GLOO_SOCKET_IFNAME "
                     "and BKCL_SOCKET_IFNAME to the job's interface")


def collective_env(nodes: "Nodes | None", env=os.environ, **finders) -> dict[str, str]:
    """GLOO_SOCKET_IFNAME and BKCL_SOCKET_IFNAME for the launcher, unless the user set them."""
    missing = [k for k in SOCKET_IFNAME if not env.get(k)]
    if not missing:
        return {}
    name = socket_ifname(nodes, **finders)
    return {k: name for k in missing}
