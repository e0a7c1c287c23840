"""`invoke run MODEL --nodes N`: an N-node training job on one Docker host, for trying out and
testing multi-node training without a cluster. Each node is a container on a private, internal
Docker network running the image's entrypoint with --nnodes/--rank/--master; Paddle's own launcher
does the rendezvous (rank 0 serves it) and gloo (CPU) or BKCL (XPU) the collectives. No scheduler of
ours: this module only starts the containers, shows every rank's output, and stops the job when a
rank fails, leaving no container or network behind."""
from __future__ import annotations

import queue
import secrets
import threading
from dataclasses import dataclass
from typing import Optional

import docker.errors
from rich.markup import escape

from . import docker_api, ui
from .chain import Layer
from .errors import RunError, UsageError
from .run import container_options

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
    if docker_api.image(client, layer.image) is None:
        raise RunError(f"image {layer.image} is not built",
                       hint=f"run `invoke build --model {layer.name} --arch {layer.arch.name}`")
    job = plan(layer, nodes)
    # Internal: the ranks reach each other, nothing else (training reads no network).
    network = client.networks.create(job.network, driver="bridge", internal=True, labels={JOB_LABEL: job.job})
    containers = []
    events: queue.Queue = queue.Queue()
    try:
        for rank in range(nodes):
            options = container_options(layer, data, output, [*args, *job.node_args(rank)], cpus, xpus)
            del options["network_mode"]
            options.update(name=job.name(rank), hostname=job.name(rank), network=job.network,
                           labels={**options["labels"], JOB_LABEL: job.job, "io.kunlun.rank": str(rank)})
            containers.append(client.containers.run(detach=True, **options))
        ui.info(f"[bold]job[/] {job.job}: {nodes} nodes on network {job.network}, master {job.master}")
        for rank, container in enumerate(containers):
            threading.Thread(target=_follow, args=(container, rank, events), daemon=True).start()
        return _watch(job, containers, events)
    except docker.errors.APIError as exc:
        raise RunError(f"could not start job {job.job}: {exc.explanation or exc}") from None
    except KeyboardInterrupt:
        ui.error(f"interrupted: stopping the {nodes} nodes of {job.job}")
        raise
    finally:
        _clean_up(containers, network)


def _follow(container, rank: int, events: queue.Queue) -> None:
    """Stream one rank's output line by line, then its exit code."""
    buffered = b""
    for chunk in container.logs(stream=True, follow=True):
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            events.put(("line", rank, line.decode(errors="replace")))
    if buffered:
        events.put(("line", rank, buffered.decode(errors="replace")))
    events.put(("exit", rank, container.wait()["StatusCode"]))


def _watch(job: Plan, containers, events: queue.Queue) -> int:
    """Print every rank's lines (prefixed) until all exit; the first failure stops the rest."""
    running = set(range(len(containers)))
    while running:
        kind, rank, value = events.get()
        if kind == "line":
            ui.out.print(f"[dim]\\[rank {rank}][/] {escape(value)}", highlight=False, soft_wrap=True)
            ui.out.file.flush()   # line by line also into a pipe: whoever reads it acts on the steps
            continue
        running.discard(rank)
        if value != 0:
            ui.error(f"rank {rank} ({job.name(rank)}) exited with code {value}; stopping the other "
                     f"{len(running)} rank(s) of {job.job}",
                     "its last lines are above; a rank killed from outside exits 137")
            for other in running:
                _stop(containers[other])
            return value
    return 0


def _stop(container) -> None:
    try:
        container.stop(timeout=5)
    except docker.errors.APIError:
        pass


def _clean_up(containers, network) -> None:
    for container in containers:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    try:
        network.remove()
    except docker.errors.APIError:
        pass
