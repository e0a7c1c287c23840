"""The small wrapper around the Docker SDK the bundle uses: connect with a clear error, look up
images, build from a context tarball with the network off. Containers: container.py."""
from __future__ import annotations

from typing import Callable, Optional

import docker
import docker.errors

from ..errors import BuildError, BundleError, HostError


def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=900)
        c.ping()
        return c
    except docker.errors.DockerException as exc:
        raise HostError(f"the Docker daemon is not reachable: {exc}",
                        hint="start it (`sudo service docker start` or `sudo systemctl start docker`) "
                             "and check that this user may use /var/run/docker.sock") from None


def image(c: docker.DockerClient, ref: str, missing: Optional[BundleError] = None):
    """The local image a tag or id names: None when there is none, or `missing` raised if given."""
    try:
        return c.images.get(ref)
    except docker.errors.ImageNotFound:
        if missing is not None:
            raise missing from None
        return None


def build(c: docker.DockerClient, context, tag: str, platform: str, *, nocache: bool = False,
          labels: Optional[dict] = None, on_line: Callable[[str], None] = lambda line: None) -> str:
    """Build an image from a context tarball with no network; returns the image id."""
    built_id, log = None, []
    try:
        stream = c.api.build(fileobj=context, custom_context=True, tag=tag, platform=platform,
                             network_mode="none", rm=True, forcerm=True, nocache=nocache, pull=False,
                             labels=labels or {}, decode=True)
        for chunk in stream:
            if "error" in chunk:
                raise BuildError(f"building {tag} failed: {chunk['error'].strip()}\n    "
                                 + "\n    ".join(log[-25:]))
            if "aux" in chunk and "ID" in chunk["aux"]:
                built_id = chunk["aux"]["ID"]
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    log.append(line.rstrip())
                    on_line(line.rstrip())
    except docker.errors.APIError as exc:
        raise BuildError(f"building {tag} failed: {exc.explanation or exc}") from None
    return built_id or image(c, tag, missing=BuildError(f"building {tag} reported success but the image is missing")).id
