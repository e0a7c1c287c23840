"""`invoke run MODEL --nodes N`: an N-node training job on one Docker host, for trying out and
testing multi-node training without a cluster. Each node is a container on a private, internal
Docker network running the image's entrypoint with --nnodes/--rank/--master; Paddle's own launcher
does the rendezvous (rank 0 serves it) and gloo (CPU) or BKCL (XPU) the collectives. No scheduler of
ours: this module only starts the containers, shows every rank's output, and stops the job when a
rank fails, leaving no container or network behind."""
from __future__ import annotations

import contextlib
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional

import docker.errors

from .. import ui
from ..containers import container, docker_api
from ..errors import BundleError, RunError, UsageError
from ..images.chain import Layer
from .run import container_options, require_built

PORT = 8090                      # the launcher's rendezvous port on rank 0
JOB_LABEL = "io.kunlun.job"      # every container and the network of one job carry its id


@dataclass(frozen=True)
class Plan:
    job: str                     # e.g. kunlun-resnet50-1a2b3c
    nodes: int

    @property
    def network(self) -> str:
        return self.job

    def name(self, rank: int) -> str:
        return f"{self.job}-{rank}"

    @property
    def master(self) -> str:
        return f"{self.name(0)}:{PORT}"

    def node_args(self, rank: int) -> list[str]:
        return ["--nnodes", str(self.nodes), "--rank", str(rank), "--master", self.master]


def plan(layer: Layer, nodes: int) -> Plan:
    if nodes < 2:
        raise UsageError(f"--nodes {nodes}: a multi-node job needs at least 2 nodes")
    return Plan(f"kunlun-{layer.name}-{secrets.token_hex(3)}", nodes)


def run_job(layer: Layer, nodes: int, data: Optional[str] = None, output: Optional[str] = None,
            args: list[str] = (), cpus: Optional[float] = None, xpus: Optional[str] = None) -> int:
    """Run the job to its end; returns 0, or the exit code of the first rank that failed."""
    client = docker_api.client()
    require_built(client, layer)
    job = plan(layer, nodes)
    events: queue.Queue = queue.Queue()
    # Unwound last in, first out: every rank's container is removed, then the network.
    with contextlib.ExitStack() as cleanup:
        try:
            # Internal: the ranks reach each other, nothing else (training reads no network).
            network = client.networks.create(job.network, driver="bridge", internal=True,
                                             labels={JOB_LABEL: job.job})
        except docker.errors.APIError as exc:
            raise RunError(f"could not start job {job.job}: {exc.explanation or exc}") from None
        cleanup.callback(_remove_network, network)
        ranks = []
        for rank in range(nodes):
            options = container_options(layer, data, output, [*args, *job.node_args(rank)], cpus, xpus)
            del options["network_mode"]
            options.update(name=job.name(rank), hostname=job.name(rank), network=job.network,
                           labels={**options["labels"], JOB_LABEL: job.job, "io.kunlun.rank": str(rank)})
            ranks.append(cleanup.enter_context(
                container.start(client, options.pop("image"), options.pop("command"), **options)))
        ui.info(f"[bold]job[/] {job.job}: {nodes} nodes on network {job.network}, master {job.master}")
        for rank, running in enumerate(ranks):
            threading.Thread(target=_follow, args=(running, rank, events), daemon=True).start()
        try:
            return _watch(job, ranks, events)
        except KeyboardInterrupt:
            ui.error(f"interrupted: stopping the {nodes} nodes of {job.job}")
            raise


def _follow(running: container.Container, rank: int, events: queue.Queue) -> None:
    """Stream one rank's output line by line, then its exit code."""
    try:
        for line in running.lines():
            events.put(("line", rank, line))
        events.put(("exit", rank, running.wait()))
    except BundleError:
        pass   # removed by the clean-up: the job is over


STOPPED = (128 + 15, 128 + 2)    # a rank stopped by SIGTERM / SIGINT: the job agreed on the step
STOP_GRACE = 10.0                # seconds the other ranks get to stop by themselves at that step


def _watch(job: Plan, ranks: list[container.Container], events: queue.Queue) -> int:
    """Print every rank's lines (prefixed) until all have exited; the first failure is the job's
    exit code. A rank that failed makes the others stop at once; a rank that was stopped (SIGTERM,
    SIGINT) gives them STOP_GRACE to finish the agreed step and save on their own. Their last lines
    (the stop line, the checkpoint) are still shown."""
    running, failed, deadline, stopped = set(range(len(ranks))), None, None, False

    def stop_the_rest() -> None:
        nonlocal deadline, stopped
        deadline, stopped = time.monotonic() + 60.0, True   # then wait (bounded) for their exits
        for other in running:
            ranks[other].stop(timeout=5)
    while running:
        try:
            kind, rank, value = events.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            if stopped:        # stopped and still not reported gone: the clean-up removes them
                break
            stop_the_rest()    # the grace is over
            continue
        if kind == "line":
            container.show(value, prefix=f"[rank {rank}]")
            continue
        running.discard(rank)
        if value == 0 or failed is not None:
            continue
        failed = value
        if value in STOPPED:
            ui.info(f"rank {rank} ({job.name(rank)}) was stopped (exit {value}); the other {len(running)} "
                    f"rank(s) of {job.job} stop after the same step")
            deadline = time.monotonic() + STOP_GRACE
        else:
            ui.error(f"rank {rank} ({job.name(rank)}) exited with code {value}; stopping the other "
                     f"{len(running)} rank(s) of {job.job}",
                     "its last lines are above; a rank killed from outside exits 137")
            stop_the_rest()
    return failed or 0


def _remove_network(network) -> None:
    try:
        network.remove()
    except docker.errors.APIError:
        pass
