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


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @classmethod
    def from_env(cls, env=os.environ) -> "World":
        """The launcher sets PADDLE_TRAINER_ID / PADDLE_TRAINERS_NUM in every worker."""
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


def launch_command(devices: list[str], argv: list[str], log_dir: str) -> list[str]:
    """The launcher command that runs one worker per device with the same training arguments.
    On CPU, --nproc_per_node starts that many gloo workers; --devices picks cards on XPU."""
    return [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(len(devices)),
            "--log_dir", log_dir, str(WORKER), *argv]


def worker_args(argv: list[str], threads: int) -> list[str]:
    """What each worker gets: the same arguments, one device, and its share of the threads
    (--threads counts the whole container's)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--devices", "--threads"):
            skip = True
        elif not arg.startswith(("--devices=", "--threads=")):
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


def mean(value: float, world: World) -> float:
    """The loss averaged over ranks, so every rank logs and checks the same number."""
    if not world.distributed:
        return value
    import paddle
    import paddle.distributed as dist
    t = paddle.to_tensor([value], dtype="float32")
    dist.all_reduce(t)
    return float(t) / world.size
