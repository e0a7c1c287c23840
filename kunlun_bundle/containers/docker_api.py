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


def build(c: docker.DockerClient, context, tag: Optional[str], platform: str, *, nocache: bool = False,
          target: Optional[str] = None, labels: Optional[dict] = None,
          on_line: Callable[[str], None] = lambda line: None) -> str:
    """Build an image (or a `target` stage of it) from a context tarball with no network; returns its id."""
    built_id, log = None, []
    what = tag or f"stage {target}"
    try:
        stream = c.api.build(fileobj=context, custom_context=True, tag=tag, platform=platform, target=target,
                             network_mode="none", rm=True, forcerm=True, nocache=nocache, pull=False,
                             labels=labels or {}, decode=True)
        for chunk in stream:
            if "error" in chunk:
                raise BuildError(f"building {what} failed: {chunk['error'].strip()}\n    "
                                 + "\n    ".join(log[-25:]))
            if "aux" in chunk and "ID" in chunk["aux"]:
                built_id = chunk["aux"]["ID"]
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    log.append(line.rstrip())
                    on_line(line.rstrip())
    except docker.errors.APIError as exc:
        raise BuildError(f"building {what} failed: {exc.explanation or exc}") from None
    if built_id:
        return built_id
    return image(c, tag, missing=BuildError(f"building {what} reported success but the image is missing")).id


class Tree:
    """Files of an image read out without running it: a created (never started) container whose
    paths are exported as tars (the daemon's get_archive). A context manager that removes it."""

    def __init__(self, c: docker.DockerClient, image_id: str, scratch):
        self.scratch = scratch
        try:
            self.handle = c.containers.create(image_id, command=["true"], network_disabled=True)
        except docker.errors.APIError as exc:
            raise BuildError(f"could not open {image_id[:19]} to copy from it: {exc.explanation or exc}") from None
        self.saved: list = []

    def __enter__(self) -> "Tree":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove(force=True)
        for path in self.saved:
            path.unlink(missing_ok=True)

    def export(self, path: str):
        """The tar of `path` (its top entry is the path's basename), saved to a temporary file."""
        import tempfile
        from pathlib import Path
        fd, name = tempfile.mkstemp(dir=self.scratch, suffix=".stage.tar")
        self.saved.append(Path(name))
        try:
            stream, _ = self.handle.get_archive(path)
            with open(fd, "wb") as out:
                for chunk in stream:
                    out.write(chunk)
        except docker.errors.NotFound:
            raise BuildError(f"COPY --from: {path} is not in the install stage") from None
        return Path(name)


def load(c: docker.DockerClient, archive, expected_id: str, what: str) -> None:
    """`docker load` an archive; the image must come out with the id it was assembled to have."""
    try:
        # The daemon reports progress and errors (a layer that does not match its diff id, say) in the
        # response stream: read it all, or the image may not be there yet and an error goes unseen.
        for message in c.api.load_image(archive, quiet=True):
            if isinstance(message, dict) and message.get("error"):
                raise BuildError(f"loading {what} failed: {message['error']}")
    except docker.errors.APIError as exc:
        raise BuildError(f"loading {what} failed: {exc.explanation or exc}") from None
    found = image(c, expected_id)
    if found is None:
        raise BuildError(f"loading {what} did not give image {expected_id}")
