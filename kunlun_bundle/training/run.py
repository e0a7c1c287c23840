"""Running a model's container: mounts, CPU limits and the entrypoint's arguments filled in,
network off, logs streamed, the container removed afterwards (also on Ctrl-C)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from rich.markup import escape

from .. import layout, ui
from ..containers import container, docker_api
from ..errors import RunError
from ..images.chain import Layer
from ..matrix import Matrix
from . import devices


def _output_dir(path: str) -> Path:
    """Create the output directory if needed, writable by the container's user."""
    out = Path(path).expanduser().resolve()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0 and created:
        # Root on the host, non-root in the container: hand a directory we created to that user.
        os.chown(out, layout.USER.uid, layout.USER.uid)
    elif os.getuid() == 0 and not _writable_by(out, layout.USER.uid):
        raise RunError(f"--output {path}: not writable by the container's user (uid {layout.USER.uid})",
                       hint=f"`sudo chown {layout.USER.uid} {out}`, or give a directory that does not exist yet "
                            "(it is created for that user)")
    return out


def _readable_by(directory: Path, uid: int) -> bool:
    """Whether `uid` may list and enter `directory` (and so read the dataset under it)."""
    st = directory.stat()
    bits = 0o500 if st.st_uid == uid else (0o050 if st.st_gid == uid else 0o005)
    return st.st_mode & bits == bits


def _writable_by(directory: Path, uid: int) -> bool:
    """Whether `uid` (no supplementary groups assumed) may create files in `directory`."""
    st = directory.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o200)
    return bool(st.st_mode & 0o002) or (st.st_gid == uid and bool(st.st_mode & 0o020))


def container_options(layer: Layer, data: Optional[str], output: Optional[str], args: list[str],
                      cpus: Optional[float] = None, xpus: Optional[str] = None, host_network: bool = False) -> dict:
    """The docker run options for a training container (no Docker calls: unit-tested). `xpus`
    ('0,1' or 'all') maps exactly those Kunlun cards plus /dev/xpuctrl, never --privileged."""
    volumes, command = {}, list(args)
    if data:
        src = Path(data).expanduser().resolve()
        if not src.is_dir():
            raise RunError(f"--data {data}: not a directory")
        if os.getuid() == 0 and not _readable_by(src, layout.USER.uid):
            raise RunError(f"--data {data}: not readable by the container's user (uid {layout.USER.uid})",
                           hint=f"`chmod -R a+rX {src}` (or chown it to {layout.USER.uid})")
        volumes[str(src)] = {"bind": layout.DATA_MOUNT, "mode": "ro"}
        command += ["--data", layout.DATA_MOUNT]
    if output:
        volumes[str(_output_dir(output))] = {"bind": layout.OUTPUT_MOUNT, "mode": "rw"}
        command += ["--output", layout.OUTPUT_MOUNT]
    # No network, except for one node of a job across hosts: it must reach the other nodes.
    options = dict(image=layer.image, command=command, volumes=volumes, network_mode="host" if host_network else "none",
                   platform=layer.arch.platform, shm_size="1g", labels={"io.kunlun.run": layer.name})
    if os.getuid() != 0:
        options["user"] = f"{os.getuid()}:{os.getgid()}"   # files in --output belong to the caller
    return _with_resources(options, cpus, xpus)


def _with_resources(options: dict, cpus: Optional[float], xpus: Optional[str]) -> dict:
    """A CPU limit and exactly the Kunlun cards asked for (plus /dev/xpuctrl), never --privileged."""
    if cpus:
        options["nano_cpus"] = int(float(cpus) * 1e9)
    if xpus:
        cards = devices.Cards.discover()
        options.update(devices.container_options(cards, cards.select(xpus)))
    return options


def require_built(client, layer: Layer):
    """The layer's local image, or a RunError saying how to build it."""
    return docker_api.image(client, layer.image, missing=RunError(
        f"image {layer.image} is not built", hint=f"run `invoke build --model {layer.name} --arch {layer.arch.name}`"))


def run(m: Matrix, layer: Layer, data: Optional[str] = None, output: Optional[str] = None,
        args: list[str] = (), cpus: Optional[float] = None, xpus: Optional[str] = None,
        host_network: bool = False) -> int:
    """Run the container to completion, streaming its output; returns its exit code."""
    client = docker_api.client()
    require_built(client, layer)
    options = container_options(layer, data, output, list(args), cpus, xpus, host_network)
    ui.info(f"[bold]run[/] {escape(layer.image + ' ' + ' '.join(options['command']))}")
    return _follow(client, options, stop_seconds=10)


def _follow(client, options: dict, stop_seconds: int) -> int:
    """Start the container, stream its output until it exits; Ctrl-C stops it (SIGTERM, then up to
    stop_seconds for it to finish) and goes on up."""
    with container.start(client, options.pop("image"), options.pop("command"), **options) as running:
        try:
            running.stream()
            return running.wait()
        except KeyboardInterrupt:
            running.stop(timeout=stop_seconds)
            raise


SERVE_PORT = 8000        # the server's port inside the container (entrypoint `serve --port`)
MODEL_MOUNT = "/model"   # where `invoke serve` mounts the export, read-only


def serve_options(layer: Layer, export: str, port: int = SERVE_PORT, bind: str = "0.0.0.0", args: list[str] = (),
                  cpus: Optional[float] = None, xpus: Optional[str] = None) -> dict:
    """The docker run options for serving an export (no Docker calls: unit-tested): the export
    read-only at /model, the server's port published on `bind`:`port`, a read-only root filesystem;
    the network is the default bridge, for the port only. `xpus` as for training."""
    src = Path(export).expanduser().resolve()
    if not (src / "inference.yml").is_file() or not (src / "inference.pdiparams").is_file():
        raise RunError(f"--export {export}: no exported model there (expected inference.json, inference.pdiparams "
                       "and inference.yml)", hint="export one with `invoke run MODEL --output OUT -- export` (it writes "
                                                   "OUT/inference), or train with `-- --export /output/inference`")
    if os.getuid() == 0 and not _readable_by(src, layout.USER.uid):
        raise RunError(f"--export {export}: not readable by the container's user (uid {layout.USER.uid})",
                       hint=f"`chmod -R a+rX {src}`")
    if not 0 < int(port) < 65536:
        raise RunError(f"--port {port}: expected a TCP port, 1..65535")
    options = dict(image=layer.image, command=["serve", "--model", MODEL_MOUNT, *args],
                   volumes={str(src): {"bind": MODEL_MOUNT, "mode": "ro"}}, ports={f"{SERVE_PORT}/tcp": (bind, int(port))},
                   read_only=True, platform=layer.arch.platform, shm_size="1g", labels={"io.kunlun.serve": layer.name})
    return _with_resources(options, cpus, xpus)


def serve(layer: Layer, export: str, port: int = SERVE_PORT, bind: str = "0.0.0.0", args: list[str] = (),
          cpus: Optional[float] = None, xpus: Optional[str] = None) -> int:
    """Serve until Ctrl-C (or the server exits), streaming its log; Ctrl-C is the server's SIGTERM:
    it drains (finishes every accepted request) and exits 0."""
    client = docker_api.client()
    require_built(client, layer)
    options = serve_options(layer, export, port, bind, list(args), cpus, xpus)
    ui.info(f"[bold]serve[/] {escape(export)} with {escape(layer.image)} on http://{bind}:{port} "
            f"(Open Inference Protocol: /v2/models/{layer.name}/infer, /v2/models/{layer.name}/predict)")
    return _follow(client, options, stop_seconds=30)   # the server's drain is 20 s
