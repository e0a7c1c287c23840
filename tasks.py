"""The bundle's tasks: argument parsing and wiring only. The logic lives in kunlun_bundle/.

    ./kunlun --list        (or `invoke --list` inside .venv) lists them; --help TASK explains one.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

from invoke import Exit, task

from kunlun_bundle import base as base_rootfs
from kunlun_bundle import build as builder
from kunlun_bundle import chain, doctor as host_doctor, lock as locker, matrix
from kunlun_bundle import naming, render as renderer, run as runner, ui
from kunlun_bundle.errors import BundleError

ROOT = Path(__file__).resolve().parent
MATRIX = Path(os.environ.get("KUNLUN_MATRIX", ROOT / "matrix.yaml"))   # tests point it elsewhere


def bundle_task(*args, **kwargs):
    """@task that turns a BundleError into its message, hint and exit code: never a traceback."""
    def decorate(body):
        @functools.wraps(body)
        def wrapper(c, *a, **kw):
            os.chdir(ROOT)
            try:
                return body(c, *a, **kw)
            except BundleError as exc:
                ui.error(exc.message, exc.hint)
                raise Exit(code=exc.exit_code)
            except OSError as exc:   # disk full, permissions: the OS's words are the message
                ui.error(str(exc))
                raise Exit(code=1)
            except KeyboardInterrupt:
                ui.error("interrupted")
                raise Exit(code=130)
        return task(**kwargs)(wrapper)
    if len(args) == 1 and callable(args[0]) and not kwargs:   # used bare: @bundle_task
        return decorate(args[0])
    return decorate


def _extra_args() -> list[str]:
    """Arguments after `--`, verbatim (invoke would join them into one string)."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []


def _cells(m, arch, models, flavour):
    flavours = [f.strip() for f in flavour.split(",")] if flavour else None
    return chain.select(m, list(models) or None, flavours, m.arch_registry.resolve(arch))


@bundle_task(name="list")
def list_(c):
    """Show the matrix: every model, its suite, state, archs, flavours and image tags."""
    m = matrix.load(MATRIX)
    rows = []
    for name, model in m.models.items():
        suite = m.suites[model.suite]
        if model.status is matrix.Status.ready:
            tags = [naming.model_image(m, name, f, a) for f in m.ready_flavours() for a in m.model_archs(name, f)]
            state = "ready"
        else:
            tags, state = [], f"planned: {model.reason}" if model.reason else "planned"
        flavours = [f for f in m.flavours if m.model_archs(name, f)]
        archs = model.archs + [f"not {arch}: {why}" for arch, why in model.excluded.items()]
        rows.append([name, f"{model.suite} {suite.version}", state, "\n".join(archs),
                     ", ".join(flavours), "\n".join(tags) or "-"])
    ui.table(["model", "suite", "state", "archs", "flavours", "image tags"], rows)


@bundle_task(help={"check": "Change nothing; exit 1 and list the files rendering would change."})
def render(c, check=False):
    """Render dockerfiles/ from templates/ and matrix.yaml (deterministic; committed)."""
    m = matrix.load(MATRIX)
    rendered = renderer.render_all(m, ROOT)
    drift = renderer.check(rendered, ROOT) if check else renderer.write(rendered, ROOT)
    for d in drift:
        ui.out.print(f"{d.change:8} {d.path}")
    if check and drift:
        ui.error(f"{len(drift)} Dockerfile(s) out of date with templates/ or matrix.yaml",
                 "run `invoke render` and commit the result")
        raise Exit(code=1)
    ui.info(f"{len(rendered)} Dockerfiles {'checked' if check else 'rendered'}, {len(drift)} "
            f"{'out of date' if check else 'changed'}")


@bundle_task(help={"arch": "Arch(s): x86_64/x86/amd64/intel, aarch64/arm/arm64/phytium, native (default) or all.",
                   "force": "Bootstrap again from the current Debian packages, even if the base exists."})
def base(c, arch=None, force=False):
    """Bootstrap the Debian base image(s) from packages (mmdebstrap); skipped when present."""
    m = matrix.load(MATRIX)
    layers = {layer.image: layer for top in chain.all_ready(m) for layer in top.ancestry()[:1]
              if layer.arch in m.arch_registry.resolve(arch)}
    if force:   # the cached rootfs tarball would otherwise be reused as it is
        for layer in layers.values():
            base_rootfs.rootfs_path(m, layer.name, layer.arch).unlink(missing_ok=True)
    results = builder.build_layers(m, [*layers.values()], ROOT, no_cache=force)
    builder.summarise([*results.values()])


@bundle_task(help={"arch": "Arch(s) to lock (default: all).",
                   "check": "Change nothing; exit 1 if a lock file is missing or out of date with matrix.yaml."})
def lock(c, arch="all", check=False):
    """Resolve every environment to exact versions with sha256 hashes (locks/<arch>/<flavour>/*.txt)."""
    m = matrix.load(MATRIX)
    archs = m.arch_registry.resolve(arch)
    layers = [layer for layer in chain.unique_layers(chain.all_ready(m)) if layer.lock and layer.arch in archs]
    stale = []
    for layer in layers:   # parents first: a suite's lock is resolved against its framework's
        if locker.is_current(m, layer, ROOT):
            ui.detail(f"{layer.lock} is current")
            continue
        stale.append(layer.lock)
        if not check:
            with ui.step(f"resolve {layer.cell} for {layer.arch.name}"):
                lockfile = locker.resolve(m, layer, ROOT)
                (ROOT / layer.lock).parent.mkdir(parents=True, exist_ok=True)
                (ROOT / layer.lock).write_text(lockfile.text(), encoding="utf-8")
    if check and stale:
        ui.error(f"lock files out of date: {', '.join(map(str, stale))}", "run `invoke lock` and commit the result")
        raise Exit(code=1)


@bundle_task(help={"arch": "Arch(s) whose wheels to fetch (default: native).",
                   "source": "Copy wheels from this directory instead of downloading (air-gapped hosts)."})
def fetch(c, arch=None, source=None):
    """Download every locked wheel into the cache, verifying each sha256."""
    m = matrix.load(MATRIX)
    layers = chain.unique_layers(chain.select(m, None, None, m.arch_registry.resolve(arch)))
    builder.fetch_inputs(m, layers, ROOT, Path(source) if source else None)


@bundle_task(iterable=["model"],
             help={"arch": "Arch(s): native (default), all, or a name/alias such as arm or x86.",
                   "model": "Model to build; repeat for several (default: every ready model).",
                   "flavour": "Device flavour(s), comma-separated (default: cpu).",
                   "no-cache": "Rebuild every layer, bases included, without Docker's cache.",
                   "verbose": "Show the full build output."})
def build(c, arch=None, model=None, flavour=None, no_cache=False, verbose=False):
    """Build the image chain base -> paddle -> suite -> model for the cells asked, network off."""
    m = matrix.load(MATRIX)
    results = builder.build(m, _cells(m, arch, model or [], flavour), ROOT, no_cache=no_cache, verbose=verbose)
    builder.summarise(results)


@bundle_task(help={"model": "The model to train, e.g. resnet50.",
                   "arch": "Image arch (default: native).",
                   "flavour": "Image flavour (default: cpu).",
                   "data": "Dataset directory on the host, mounted read-only at /data.",
                   "output": "Directory on the host for checkpoints, mounted at /output.",
                   "cpus": "Limit the container to this many CPUs (docker --cpus).",
                   "devices": "Data-parallel workers in the container: a count (2) or device ids (0,1)."})
def run(c, model, arch=None, flavour=None, data=None, output=None, cpus=None, devices=None):
    """Train MODEL in its container. Arguments after `--` go to the entrypoint (try `-- --help`)."""
    m = matrix.load(MATRIX)
    [cell] = _cells(m, arch, [model], flavour)[:1]
    args = (["--devices", str(devices)] if devices else []) + _extra_args()
    code = runner.run(m, cell, data=data, output=output, args=args, cpus=cpus)
    if code:
        raise Exit(code=code)


@bundle_task
def doctor(c):
    """Check the host (Docker, binfmt emulation, tools, disk, base images) and say how to fix each failure."""
    m = matrix.load(MATRIX)
    if not host_doctor.report(m):
        raise Exit(code=1)


@bundle_task(help={"model": "Model to build and run (default: resnet50).",
                   "steps": "Training steps for the demo run."})
def quickstart(c, model="resnet50", steps=5):
    """Set up the host, bootstrap the base, build MODEL and train it for a few steps."""
    host_doctor.install_host_packages()
    m = matrix.load(MATRIX)
    cells = _cells(m, None, [model], None)
    builder.summarise(builder.build(m, cells, ROOT))
    code = runner.run(m, cells[0], args=["--steps", str(steps)])
    if code:
        raise Exit(code=code)
    ui.info(f"\nDone. Train again with `docker run --rm {naming.model_latest(m, model).rsplit(':', 1)[0]}`"
            " (add --help for the options).")


@bundle_task(help={"fast": "Only the unit tests (no Docker, no network); a few seconds."})
def test(c, fast=False):
    """Run the test suite: unit tests, then the Docker integration tests (what CI runs)."""
    args = [sys.executable, "-m", "pytest", *(["-m", "not docker"] if fast else []), *_extra_args()]
    code = subprocess.call(args, cwd=ROOT)
    if code:
        raise Exit(code=code)
