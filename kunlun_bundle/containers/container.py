"""Containers, one way. Every container the bundle starts (a training run, the ranks of a multi-node
job, a publish smoke test, the SBOM listing) goes through `start()`: created from a local image and
never pulled, followed, waited for with an optional timeout, and removed however the caller leaves
the `with` block. Docker's exceptions stop here and come out as the caller's BundleError class."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import docker.errors
import requests
from rich.markup import escape

from .. import ui
from ..errors import BundleError, RunError


class Container:
    """A started container; a context manager that removes it on exit."""

    def __init__(self, handle, image: str, error: type[BundleError]):
        self.handle, self.image, self.error = handle, image, error

    @property
    def name(self) -> str:
        return self.handle.name

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def chunks(self) -> Iterator[bytes]:
        """The output (stdout and stderr) as it comes, until the container exits."""
        try:
            yield from self.handle.logs(stream=True, follow=True)
        except docker.errors.APIError as exc:
            raise self.error(f"lost the output of {self.image}: {exc.explanation or exc}") from None

    def lines(self) -> Iterator[str]:
        """The output line by line (a last line without a newline too)."""
        buffered = b""
        for chunk in self.chunks():
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            yield from (line.decode(errors="replace") for line in lines)
        if buffered:
            yield buffered.decode(errors="replace")

    def stream(self) -> None:
        """Copy the output to the console unchanged (progress bars and partial lines included)."""
        for chunk in self.chunks():
            ui.out.file.write(chunk.decode(errors="replace"))
            ui.out.file.flush()

    def wait(self, timeout: Optional[float] = None) -> int:
        """The exit code. Past `timeout` seconds the container is stopped and that is an error."""
        try:
            return self.handle.wait(timeout=timeout)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            if timeout is None:
                raise
            self.stop(timeout=5)
            raise self.error(f"{self.image} did not finish within {timeout:g} s; it was stopped") from None
        except docker.errors.APIError as exc:
            raise self.error(f"waiting for {self.image} failed: {exc.explanation or exc}") from None

    def output(self, stderr: bool = True) -> str:
        """Everything the container printed so far (after `wait`: all of it)."""
        try:
            return self.handle.logs(stdout=True, stderr=stderr).decode(errors="replace")
        except docker.errors.APIError as exc:
            raise self.error(f"could not read the output of {self.image}: {exc.explanation or exc}") from None

    def stop(self, timeout: int = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; a container already gone is fine."""
        try:
            self.handle.stop(timeout=timeout)
        except docker.errors.APIError:
            pass

    def remove(self) -> None:
        try:
            self.handle.remove(force=True)
        except docker.errors.NotFound:
            pass


def start(client, image: str, command: Sequence[str] = (), *, error: type[BundleError] = RunError,
          **options) -> Container:
    """Create and start a container from a local image; `options` are the Docker SDK's
    (`containers.create`). Created, not `run`: `run` would try to pull an image that is missing."""
    try:
        handle = client.containers.create(image, list(command), **options)
    except docker.errors.ImageNotFound:
        raise error(f"image {image} is not built") from None
    except docker.errors.APIError as exc:
        raise error(f"could not start {image}: {exc.explanation or exc}") from None
    container = Container(handle, image, error)
    try:
        handle.start()
    except docker.errors.APIError as exc:
        container.remove()
        raise error(f"could not start {image}: {exc.explanation or exc}") from None
    return container


def show(line: str, prefix: Optional[str] = None) -> None:
    """Print one line of a container's output, after a dim prefix such as `[rank 1]`; flushed, so that
    whoever reads a pipe of it acts on each step as it comes."""
    text = f"[dim]{escape(prefix)}[/] {escape(line)}" if prefix else escape(line)
    ui.out.print(text, highlight=False, soft_wrap=True)
    ui.out.file.flush()
