"""The one way the bundle runs containers (kunlun_bundle.containers.container), on the real daemon with the
smallest image the bundle has, its Debian base: output followed line by line, exit codes, a timeout
that stops the container, Docker's errors as the caller's error class, and no container left behind
whatever happens inside the `with` block."""
from __future__ import annotations

import docker
import docker.errors
import pytest

from kunlun_bundle import naming
from kunlun_bundle.containers import container, docker_api
from kunlun_bundle.errors import PublishError, RunError

from .helpers import MATRIX, invoke

LABEL = {"io.kunlun.test": "container"}


@pytest.fixture(scope="module")
def base() -> str:
    """The native base image, bootstrapped (or found) by the bundle's own task."""
    invoke("base")
    native = MATRIX.arch_registry.native().name
    return naming.base_image(MATRIX, MATRIX.flavours[naming.default_flavour(MATRIX)].base, native)


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker_api.client()


def gone(client, name: str) -> bool:
    try:
        client.containers.get(name)
    except docker.errors.NotFound:
        return True
    return False


def test_a_container_runs_its_command_and_its_output_is_followed_line_by_line(client, base):
    with container.start(client, base, ["sh", "-c", "echo one; echo two >&2; echo three"],
                         network_mode="none", labels=LABEL) as running:
        # stdout and stderr both (Docker does not keep their relative order)
        assert sorted(running.lines()) == ["one", "three", "two"]
        assert running.wait() == 0
        assert running.output(stderr=False) == "one\nthree\n"
        name = running.name
    assert gone(client, name)


def test_the_exit_code_is_the_commands(client, base):
    with container.start(client, base, ["sh", "-c", "exit 3"], network_mode="none", labels=LABEL) as running:
        assert running.wait() == 3


def test_lines_are_shown_after_their_prefix(capsys):
    container.show("[resnet50] step 1/2 | loss 6.9", prefix="[rank 1]")
    assert capsys.readouterr().out == "[rank 1] [resnet50] step 1/2 | loss 6.9\n"


def test_a_container_past_its_timeout_is_stopped_and_that_is_the_callers_error(client, base):
    with container.start(client, base, ["sleep", "60"], network_mode="none", labels=LABEL) as running:
        with pytest.raises(RunError, match=r"did not finish within 1 s; it was stopped"):
            running.wait(timeout=1)
        running.handle.reload()
        assert running.handle.status == "exited"


def test_the_container_is_removed_when_the_block_fails(client, base):
    with pytest.raises(ZeroDivisionError):
        with container.start(client, base, ["sleep", "60"], network_mode="none", labels=LABEL) as running:
            name = running.name
            1 / 0
    assert gone(client, name)


def test_a_missing_image_is_not_pulled_and_is_the_callers_error(client):
    with pytest.raises(PublishError, match=r"image kunlun-test/no-such-image:1 is not built"):
        container.start(client, "kunlun-test/no-such-image:1", error=PublishError)
    assert not client.containers.list(all=True, filters={"ancestor": "kunlun-test/no-such-image:1"})


def test_a_container_that_cannot_start_is_removed_and_reported(client, base):
    before = {c.id for c in client.containers.list(all=True, filters={"label": "io.kunlun.test=container"})}
    with pytest.raises(RunError, match=rf"could not start {base}"):
        container.start(client, base, ["/no/such/program"], network_mode="none", labels=LABEL)
    after = {c.id for c in client.containers.list(all=True, filters={"label": "io.kunlun.test=container"})}
    assert after == before
