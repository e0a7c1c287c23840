"""Shared memory for the DataLoader's worker processes.

Paddle's DataLoader hands batches from its workers to the trainer through /dev/shm. Docker gives a
container 64 MB of it unless told otherwise (`docker run --shm-size`), and a worker that runs out
dies with a bus error, mid-run. So the engine checks first: when the batches in flight would not fit,
it passes them through pipes instead (slower, never a crash) and says which --shm-size would do.
Paddle-free, so it is unit-tested on the host."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

PREFETCH = 2          # batches each worker keeps ready (paddle.io.DataLoader's prefetch_factor default)
HEADROOM = 1.5        # the loader's own buffers, pinned copies and fragmentation


@dataclass(frozen=True)
class Decision:
    use_shared_memory: bool
    needed: int                  # bytes the batches in flight take
    free: int | None             # bytes free in /dev/shm (None: no /dev/shm)
    notice: str = ""


def free_bytes(path: str = "/dev/shm") -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def suggested_size(needed: int) -> str:
    """A --shm-size value comfortably above `needed`, rounded up to a power of two MB (at least 256m)."""
    mb = max(256, 2 ** math.ceil(math.log2(max(1, needed) / 2 ** 20)))
    return f"{mb // 1024}g" if mb >= 1024 else f"{mb}m"


def decide(workers: int, batch_bytes: int, free: int | None) -> Decision:
    if workers == 0:
        return Decision(False, 0, free)
    needed = int(batch_bytes * workers * PREFETCH * HEADROOM)
    if free is not None and free >= needed:
        return Decision(True, needed, free)
    have = "no /dev/shm" if free is None else f"{free / 2 ** 20:.0f} MB of /dev/shm free"
    return Decision(False, needed, free,
                    f"{workers} loader worker(s) need about {needed / 2 ** 20:.0f} MB of shared memory and there is "
                    f"{have}: batches go through pipes instead (slower). Give the container more with "
                    f"`docker run --shm-size {suggested_size(needed)}` (`invoke run` does)")
