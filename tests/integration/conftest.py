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
- Overlap: a build is minutes of mostly one core (qemu runs one process at a time; pip, tar and
  hashing are single processes), and the x86_64 tests leave about a third of the second core idle
  (small models train in mostly Python). So chains build ahead, in one background thread, one after
  the other: first the emulated archs' (EMULATED_MODELS) from the start of the run, then the native
  chains of the later modules (AHEAD), once the foreground has built a native chain (the base and
  Paddle they share; never two builds of one layer at once). The aarch64 module runs last;
  `build(...)` of a model the background builds waits for it. Measured on a fresh 2-core machine:
  the aarch64 chain alone before any x86_64 test took 8 min 40 s of a 67-minute run (bench/README.md,
  "CI on a fresh machine").
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kunlun_bundle import host

from .helpers import MATRIX as M, PUBLISH_NAMESPACE, ROOT, docker, invoke, require_emulation


HERE = Path(__file__).parent
# The models built for the emulated archs: test_aarch64.py trains and serves resnet50, test_publish.py
# publishes it for every arch.
EMULATED_MODELS = ("resnet50",)
# The native chains built ahead (the suites that no earlier module builds), by the module that uses them.
AHEAD = {"test_paddlenlp.py": ("bert-base", "ernie-base"), "test_paddleseg.py": ("deeplabv3", "unet"),
         "test_parl.py": ("dqn",)}
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


@dataclass
class Job:
    """One `invoke build` of the background thread."""
    arch: str
    models: tuple[str, ...]
    after_native: bool = False        # only once the foreground has built a native chain
    state: str = "queued"             # -> running -> ended; or taken (by a caller that could not wait)
    ended: threading.Event = field(default_factory=threading.Event)
    result: subprocess.CompletedProcess | None = None


class Background:
    """The chains built ahead, one job after the other in a thread (the module docstring says why).
    wait(arch, models): a job building any of them that is running is waited for (its failure fails the
    caller, with its output); one not begun yet is taken off the queue, and the caller builds it itself."""

    def __init__(self, items):
        native = M.arch_registry.native()
        collected = {item.path.name for item in items if HERE in item.path.parents}
        self.jobs: list[Job] = []
        if any(item.get_closest_marker("emulated") for item in items):
            self.jobs += [Job(a.name, EMULATED_MODELS) for a in M.arch_registry
                          if a != native and host.binfmt_status(a, native)[0]]
        ahead = tuple(m for module, models in AHEAD.items() if module in collected for m in models)
        if ahead:
            self.jobs.append(Job(native.name, ahead, after_native=True))
        self.native_built = threading.Event()   # set by `build` after a native chain
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        for job in self.jobs:
            with self.lock:
                if job.state == "taken" or (job.after_native and not self.native_built.is_set()):
                    job.state = "taken"
                    continue
                job.state = "running"
            job.result = subprocess.run(
                [sys.executable, "-m", "invoke", "build", "--arch", job.arch, *[a for m in job.models for a in ("--model", m)]],
                cwd=ROOT, capture_output=True, text=True)
            job.state = "ended"
            job.ended.set()

    def wait(self, arch: str, models) -> None:
        for job in self.jobs:
            if job.arch != arch or not set(models) & set(job.models):
                continue
            with self.lock:
                if job.state in ("queued", "taken"):
                    job.state = "taken"
                    continue
            job.ended.wait()
            if job.result.returncode != 0:
                pytest.fail(f"the background build of {', '.join(job.models)} for {arch} exited "
                            f"{job.result.returncode}:\n{job.result.stdout}\n{job.result.stderr}")


@pytest.fixture(scope="session", autouse=True)
def background(fresh_images, request):
    """Start the background builds (after the fresh-images guard). Every locked download is fetched
    first, in the foreground: two builds fetching into one cache at once could race on a shared file."""
    chains = Background(request.session.items)
    if chains.jobs:
        invoke("fetch", "--arch", "all")
        chains.thread.start()
    yield chains
    if chains.thread.is_alive():
        chains.thread.join()   # no build left running into the unit tests (or the next run)


@pytest.fixture(scope="session")
def build(background):
    """build(*models, arch="native"): `invoke build` for those models (each asked once a session), after
    the background builds of any of them (then it is all cache hits)."""
    done: set[tuple[str, str]] = set()
    native = M.arch_registry.native().name

    def build(*models: str, arch: str = "native") -> None:
        archs = [a.name for a in M.arch_registry.resolve(arch)]
        for name in archs:
            require_emulation(name)
            background.wait(name, models)
        wanted = [m for m in models if any((m, a) not in done for a in archs)]
        if not wanted:
            return
        result = invoke("build", "--arch", arch, *[arg for m in wanted for arg in ("--model", m)])
        assert "0 failed, 0 skipped" in result.stderr, result.stderr
        done.update((m, a) for m in wanted for a in archs)
        if native in archs:
            background.native_built.set()
    return build
