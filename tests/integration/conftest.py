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
- Overlap: an emulated chain is minutes of mostly one core (qemu runs one process at a time), so the
  emulated archs' chains (EMULATED_MODELS) build in the background from the start of the run, and
  the aarch64 module runs last; `build(..., arch=...)` waits for that background build. Measured on a
  fresh 2-core machine: the aarch64 chain took 8 min 40 s of a 67-minute run, alone, before any
  x86_64 test (bench/README.md, "CI on a fresh machine").
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kunlun_bundle import host

from .helpers import MATRIX as M, PUBLISH_NAMESPACE, ROOT, docker, invoke, require_emulation


HERE = Path(__file__).parent
# The models built for the emulated archs: test_aarch64.py trains and serves resnet50, test_publish.py
# publishes both for every arch.
EMULATED_MODELS = ("resnet50", "mobilenetv3")
LAST = HERE / "test_aarch64.py"   # its chain builds in the background meanwhile


@pytest.hookimpl(tryfirst=True)   # before -m selects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.docker)
    # the emulated module after the other image tests (a stable sort: the rest keep their order)
    ends = max((i for i, item in enumerate(items) if HERE in item.path.parents), default=-1) + 1
    items[:ends] = sorted(items[:ends], key=lambda item: item.path == LAST)


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


class Background:
    """`invoke build` of EMULATED_MODELS for each emulated arch this host can run, one arch after the
    other in a thread; wait(arch) returns once that arch's build has ended, failing the caller with its
    output if it failed."""

    def __init__(self):
        native = M.arch_registry.native()
        self.archs = [a.name for a in M.arch_registry if a != native and host.binfmt_status(a, native)[0]]
        self.results: dict[str, subprocess.CompletedProcess] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        for arch in self.archs:
            self.results[arch] = subprocess.run(
                [sys.executable, "-m", "invoke", "build", "--arch", arch, *[a for m in EMULATED_MODELS for a in ("--model", m)]],
                cwd=ROOT, capture_output=True, text=True)

    def wait(self, arch: str) -> None:
        if arch not in self.archs or self.thread.ident is None:   # not started: the caller builds it itself
            return
        self.thread.join()
        result = self.results[arch]
        if result.returncode != 0:
            pytest.fail(f"the background build of {', '.join(EMULATED_MODELS)} for {arch} exited {result.returncode}:\n"
                        f"{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session", autouse=True)
def emulated_chains(fresh_images, request):
    """Start the emulated archs' builds (after the fresh-images guard) when a test of this run is marked
    `emulated`. Every locked download is fetched first, in the foreground: two builds fetching into one
    cache at once could race on a shared file."""
    background = Background()
    if background.archs and any(item.get_closest_marker("emulated") for item in request.session.items):
        invoke("fetch", "--arch", "all")
        background.thread.start()
    yield background
    if background.thread.is_alive():
        background.thread.join()   # no build left running into the unit tests (or the next run)


@pytest.fixture(scope="session")
def build(emulated_chains):
    """build(*models, arch="native"): `invoke build` for those models (each asked once a session). An
    emulated arch first waits for its background build (EMULATED_MODELS)."""
    done: set[tuple[str, str]] = set()

    def build(*models: str, arch: str = "native") -> None:
        archs = [a.name for a in M.arch_registry.resolve(arch)]
        for name in archs:
            require_emulation(name)
            emulated_chains.wait(name)
        wanted = [m for m in models if any((m, a) not in done for a in archs)]
        if not wanted:
            return
        result = invoke("build", "--arch", arch, *[arg for m in wanted for arg in ("--model", m)])
        assert "0 failed, 0 skipped" in result.stderr, result.stderr
        done.update((m, a) for m in wanted for a in archs)
    return build

