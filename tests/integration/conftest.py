"""What every image test may rely on, and nothing else: images it builds itself.

- Every test here is marked `docker` (by the hook below, from its directory): `./kunlun test --fast`
  (`-m "not docker"`) leaves them out.

- `build(*models, arch=...)`: a test module asks for the images it uses through the bundle's own
  `invoke build` (cached by Docker, so asking twice in a session costs seconds). No test may use an
  image it did not ask for: on a fresh machine nothing else exists.
- The guard: with KUNLUN_TEST_FRESH_IMAGES=1 (`./kunlun test --fresh-images`, which `.ci/run` uses),
  every image tag of the bundle's namespaces is removed before the first test, as on a fresh machine
  (and first any container left on them by interrupted work).
  `docker rmi --no-prune` keeps the untagged parents, i.e. Docker's build cache, so the builds the
  tests then ask for are cache hits: the check costs seconds, not a cold build.
- Emulation: the aarch64 tests need qemu-user binfmt; where it is missing they are skipped with the
  fix, unless KUNLUN_TEST_REQUIRE_ALL=1 (`.ci/run`), where a missing prerequisite is a failure.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import MATRIX as M, PUBLISH_NAMESPACE, docker, invoke, require_emulation


HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)   # before -m selects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.docker)


def bundle_tags() -> list[str]:
    prefixes = (f"{M.namespace}/", f"{PUBLISH_NAMESPACE}/")
    refs = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return sorted(r for r in refs if r.startswith(prefixes) and not r.endswith(":<none>"))


@pytest.fixture(scope="session", autouse=True)
def fresh_images():
    if os.environ.get("KUNLUN_TEST_FRESH_IMAGES") != "1":
        return
    tags = bundle_tags()
    if tags:
        # Containers left by interrupted work (a session stopped mid-test) hold their images: remove
        # them first, or the untagging fails on "image is being used by a container".
        leftovers = docker("ps", "-aq", *[f"--filter=ancestor={t}" for t in tags]).stdout.split()
        if leftovers:
            print(f"\nfresh images: removing {len(leftovers)} container(s) left by earlier work")
            docker("rm", "-f", *leftovers)
        print(f"\nfresh images: untagging {len(tags)} image(s) left by earlier work (build cache kept)")
        docker("image", "rm", "--no-prune", *tags)
    assert bundle_tags() == []


@pytest.fixture(scope="session")
def build():
    """build(*models, arch="native"): `invoke build` for those models (each asked once a session)."""
    done: set[tuple[str, str]] = set()

    def build(*models: str, arch: str = "native") -> None:
        archs = [a.name for a in M.arch_registry.resolve(arch)]
        for name in archs:
            require_emulation(name)
        wanted = [m for m in models if any((m, a) not in done for a in archs)]
        if not wanted:
            return
        result = invoke("build", "--arch", arch, *[arg for m in wanted for arg in ("--model", m)])
        assert "0 failed, 0 skipped" in result.stderr, result.stderr
        done.update((m, a) for m in wanted for a in archs)
    return build

