"""How many CPUs this container may actually use: the affinity mask (--cpuset-cpus) and the CFS
quota (--cpus), cgroup v1 or v2. Paddle on CPU uses one thread unless told, about 2x slower here."""
from __future__ import annotations

import math
import os
from pathlib import Path


def cfs_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the CFS quota, or None when unlimited."""
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    for directory in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota_file = root / directory / "cpu.cfs_quota_us"
        if quota_file.is_file():
            quota = int(quota_file.read_text())
            period = int((root / directory / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    return None


def usable_cpus(root: Path = Path("/sys/fs/cgroup"), affinity: int | None = None) -> tuple[int, str]:
    """(thread count, why) for the CPUs this process may use."""
    cpus = affinity if affinity is not None else len(os.sched_getaffinity(0))
    why = f"{cpus} CPUs in the affinity mask"
    limit = cfs_limit(root)
    if limit is not None and math.ceil(limit) < cpus:
        cpus, why = max(1, math.ceil(limit)), f"CPU quota of {limit:g} CPUs"
    return cpus, why


def apply_threads(threads: int) -> None:
    """Must run before Paddle is imported: OpenMP reads these once."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# Where Paddle and the suites write at import and while training, besides --output: the temp dir and
# caches under $HOME (the image sets these variables; see templates/paddle.Dockerfile.j2).
CACHE_VARIABLES = ("XDG_CACHE_HOME", "MPLCONFIGDIR", "PPNLP_HOME", "SEG_HOME")


def writable_scratch(env=os.environ, fallback: str = "/dev/shm/kunlun",
                     writable=lambda path: os.access(path, os.W_OK)) -> str | None:
    """With `docker run --read-only`, /tmp and $HOME cannot be written, and Paddle stops at import.
    Docker still mounts a tmpfs at /dev/shm: point the temp dir, $HOME and the caches there (before
    Paddle is imported). Returns a one-line notice when it did, else None."""
    import tempfile
    home = env.get("HOME", "/tmp")
    temp = env.get("TMPDIR") or "/tmp"   # not tempfile.gettempdir(): it raises when none is usable
    if writable(temp) and writable(home):
        return None
    for name in ("tmp", "home"):
        os.makedirs(os.path.join(fallback, name), exist_ok=True)
    env["TMPDIR"] = tempfile.tempdir = os.path.join(fallback, "tmp")
    new_home = os.path.join(fallback, "home")
    for var in ("HOME", *CACHE_VARIABLES):
        value = env.get(var)
        env[var] = new_home if var == "HOME" else (value.replace(home, new_home, 1) if value else new_home)
    return f"read-only root filesystem: temporary files and caches go to {fallback} (tmpfs)"
