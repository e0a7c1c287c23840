"""The bundle's tasks: argument parsing and wiring only. The logic lives in kunlun_bundle/.

    ./kunlun --list        (or `invoke --list` inside .venv) lists them; --help TASK explains one.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

from invoke import Exit, task

from kunlun_bundle import containers, doctor, host, images, matrix, naming, overview, publishing, training, ui
from kunlun_bundle.errors import BundleError, ReproError, UsageError
from kunlun_bundle.images import chain

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


def _model_layers(m, arch, models, flavour):
    flavours = [f.strip() for f in flavour.split(",")] if flavour else None
    return chain.select(m, list(models) or None, flavours, m.arch_registry.resolve(arch))


@bundle_task(name="list")
def list_(c):
    """Show the matrix: every model, its suite, state, archs, flavours and image tags."""
    overview.show(matrix.load(MATRIX))


@bundle_task(help={"check": "Change nothing; exit 1 and list the files rendering would change."})
def render(c, check=False):
    """Render dockerfiles/ from templates/ and matrix.yaml (deterministic; committed)."""
    m = matrix.load(MATRIX)
    rendered = images.render.render_all(m, ROOT)
    drift = images.render.check(rendered, ROOT) if check else images.render.write(rendered, ROOT)
    for d in drift:
        ui.out.print(f"{d.change:8} {d.path}")
    if check and drift:
        ui.error(f"{len(drift)} Dockerfile(s) out of date with templates/ or matrix.yaml",
                 "run `invoke render` and commit the result")
        raise Exit(code=1)
    ui.info(f"{len(rendered)} Dockerfiles {'checked' if check else 'rendered'}, {len(drift)} "
            f"{'out of date' if check else 'changed'}")


@bundle_task(help={"arch": "Arch(s): x86_64/x86/amd64/intel, aarch64/arm/arm64/phytium, native (default) or all.",
                   "force": "Bootstrap again (from the locked packages; `lock --refresh-base` takes the mirror's current ones), even if the base exists."})
def base(c, arch=None, force=False):
    """Bootstrap the Debian base image(s) from the packages of their Debian lock (mmdebstrap); skipped when present."""
    m = matrix.load(MATRIX)
    images.build.summarise(images.build.build_bases(m, m.arch_registry.resolve(arch), ROOT, force=force))


@bundle_task(help={"arch": "Arch(s) to lock (default: all).",
                   "check": "Change nothing; exit 1 if a lock file is missing or out of date with matrix.yaml.",
                   "refresh-base": "Resolve the Debian base locks again from the mirror's current packages, "
                                   "even when they match matrix.yaml (a mirror that dropped a locked version)."})
def lock(c, arch="all", check=False, refresh_base=False):
    """Resolve every environment to exact versions with sha256 hashes (locks/<arch>/<flavour>/*.txt), and
    each Debian base to its exact packages (locks/<arch>/base-<base>.txt)."""
    m = matrix.load(MATRIX)
    archs = m.arch_registry.resolve(arch)
    layers = [layer for layer in chain.every_layer(m) if layer.arch in archs]
    bases = [(layer.name, layer.arch) for layer in layers if layer.debian_lock]
    stale = images.debian.update(m, bases, ROOT, write=not check, refresh=refresh_base and not check)
    stale += images.lock.update(m, layers, ROOT, write=not check)
    if check and stale:
        ui.error(f"lock files out of date: {', '.join(map(str, stale))}", "run `invoke lock` and commit the result")
        raise Exit(code=1)


@bundle_task(help={"arch": "Arch(s) whose wheels and .debs to fetch (default: native).",
                   "source": "Copy wheels and .debs from this directory instead of downloading (air-gapped hosts)."})
def fetch(c, arch=None, source=None):
    """Download every locked wheel and Debian package into the cache, verifying each sha256."""
    m = matrix.load(MATRIX)
    layers = chain.unique_layers(chain.select(m, None, None, m.arch_registry.resolve(arch)))
    images.build.fetch_inputs(m, layers, ROOT, Path(source) if source else None, all_debs=True)


@bundle_task(iterable=["model"],
             help={"action": "export (write FILE from this checkout and the cache) or import (verify FILE, fill the cache).",
                   "file": "The bundle: a tar with a manifest of sha256s.",
                   "arch": "export: arch(s) of the cells (default: native; all for both).",
                   "model": "export: a model whose chain goes in; repeat for several (default: every ready model).",
                   "flavour": "export: device flavour(s), comma-separated (default: cpu).",
                   "checkout": "import: also unpack the project's sources at the bundle's commit into this new directory."})
def bundle(c, action, file, arch=None, model=None, flavour=None, checkout=None):
    """Offline bundle for air-gapped hosts: `bundle export FILE` writes every input the cells need (wheels,
    .debs, runtime archives in the cache, locks, patches, the sources at HEAD); `bundle import FILE` verifies
    it and fills the cache, after which a build needs no network."""
    m = matrix.load(MATRIX)
    started = time.monotonic()
    if action == "export":
        tops = _model_layers(m, arch, model or [], flavour)
        # The serving layer too, for the servable models: an air-gapped site packages what it trains there.
        tops += [chain.serving_layer(m, top.name, top.flavour, top.arch) for top in tops if m.servable(top.name)]
        manifest = images.bundle.export(m, tops, ROOT, Path(file))
        ui.info(f"wrote {file}: {len(manifest['files'])} files, {ui.size(Path(file).stat().st_size)}, sources at "
                f"{manifest['commit'][:12]}, in {ui.seconds(time.monotonic() - started)}")
    elif action == "import":
        manifest = images.bundle.import_(Path(file), ROOT, Path(checkout) if checkout else None)
        ui.info(f"verified {len(manifest['files'])} files of {file} (sources at {manifest['commit'][:12]}); "
                f"{manifest['placed']} in the cache {host.cache.root()}, in {ui.seconds(time.monotonic() - started)}")
        if manifest["differing"]:
            ui.warn(f"this checkout's {', '.join(manifest['differing'][:5])} differ from the bundle's: build from "
                    f"the bundle's sources (`--checkout DIR`, or `git checkout {manifest['commit'][:12]}`)")
    else:
        raise UsageError(f"unknown bundle action {action!r}", hint="`invoke bundle export FILE` or `invoke bundle import FILE`")


@bundle_task(iterable=["model", "image"],
             help={"file": "The archive to write: the images (docker save) with a manifest of sha256s and image ids.",
                   "model": "A model whose chain (base, paddle, suite, model) is saved; repeat (default: resnet50, "
                            "unless --image is given).",
                   "image": "Also an image by its tag, e.g. a serving image `invoke package` built; repeat.",
                   "arch": "Arch(s) (default: native).",
                   "flavour": "Device flavour(s), comma-separated (default: cpu)."})
def save(c, file, model=None, arch=None, flavour=None, image=None):
    """Save built images to FILE for a host without a registry (`invoke load FILE` there)."""
    m = matrix.load(MATRIX)
    started = time.monotonic()
    models = model or ([] if image else ["resnet50"])
    tags = [layer.image for layer in chain.unique_layers(_model_layers(m, arch, models, flavour))] if models else []
    tags += [tag for tag in image or [] if tag not in tags]
    manifest = containers.images_archive.save(tags, Path(file))
    ui.info(f"wrote {file}: {len(manifest['images'])} image(s), {ui.size(Path(file).stat().st_size)}, "
            f"in {ui.seconds(time.monotonic() - started)}")


@bundle_task(help={"file": "An archive written by `invoke save`."})
def load(c, file):
    """Verify an image archive (`invoke save`) and load it; each image comes back with the id it was saved with."""
    started = time.monotonic()
    loaded = containers.images_archive.load(Path(file))
    for entry in loaded:
        ui.info(f"loaded {entry['tag']} {entry['id'][:19]}")
    ui.info(f"{len(loaded)} image(s) verified and loaded in {ui.seconds(time.monotonic() - started)}")


@bundle_task(help={"flavour": "Flavours to show (default: all that download more than PyPI wheels).",
                   "source": "Also look for the files in this directory."})
def inputs(c, flavour=None, source=None):
    """The files the XPU flavours need besides PyPI wheels: URL, recorded sha256, and the sha256 of a local copy."""
    m = matrix.load(MATRIX)
    names = [f.strip() for f in flavour.split(",")] if flavour else list(m.flavours)
    images.fetch.show_inputs(m, names, Path(source) if source else None)


@bundle_task(iterable=["model"],
             help={"arch": "Arch(s): native (default), all, or a name/alias such as arm or x86.",
                   "model": "Model to build; repeat for several (default: every ready model).",
                   "flavour": "Device flavour(s), comma-separated (default: cpu).",
                   "no-cache": "Rebuild every layer, bases included, without Docker's cache.",
                   "verbose": "Show the full build output."})
def build(c, arch=None, model=None, flavour=None, no_cache=False, verbose=False):
    """Build the image chain base -> paddle -> suite -> model for the cells asked, network off."""
    m = matrix.load(MATRIX)
    results = images.build.build(m, _model_layers(m, arch, model or [], flavour), ROOT, no_cache=no_cache, verbose=verbose)
    images.build.summarise(results)


def _package_layers(m, model, export, arch, flavour):
    images.packaging.check_servable(m, model)
    return [chain.package_layer(m, layer.name, layer.flavour, layer.arch, Path(export) if export else None, required=True)
            for layer in _model_layers(m, arch, [model], flavour)]


@bundle_task(help={"model": "The model the export is of, e.g. resnet50 (a PaddleClas, PaddleDetection or PaddleSeg model).",
                   "export": "The exported model directory (inference.json, .pdiparams, .yml), e.g. OUT/inference.",
                   "arch": "Image arch(s) (default: this host's; all for both).",
                   "flavour": "Device flavour (default: cpu).", "verbose": "Show the full build output."})
def package(c, model, export=None, arch=None, flavour=None, verbose=False):
    """Build a serving image of one export of MODEL (base -> paddle -> serving -> the export, network off), tagged
    kunlun/MODEL-serving:<digest of the model files>-<flavour>-<arch>; `docker run -p 8000:8000 IMAGE` serves it."""
    m = matrix.load(MATRIX)
    tops = _package_layers(m, model, export, arch, flavour)
    results = images.build.build_layers(m, chain.unique_layers(tops), ROOT, verbose=verbose)
    images.build.summarise(list(results.values()))
    for top in tops:
        ui.info(f"serve it: docker run --rm -p 8000:8000 {top.image}   (then GET /v2/models/{model})")


@bundle_task(iterable=["model"],
             help={"model": "Model whose chain to check (repeatable; default: resnet50).",
                   "arch": "Arch (default: native).",
                   "flavour": "Device flavour (default: cpu).",
                   "against_built": "Build once from scratch and compare with the chain as built (`invoke build`); "
                                    "default: build twice from scratch.",
                   "start": "The lowest layer built again: base (default: the whole chain), paddle, suite, model, "
                            "serving or package; the layers below are taken as built.",
                   "export": "Check the serving image of this export of --model (`invoke package`) instead."})
def repro(c, model=None, arch=None, flavour=None, against_built=False, start="base", export=None):
    """Build the chain from scratch and compare image by image; a difference names the layer and files."""
    m = matrix.load(MATRIX)
    if export:
        if len(model or []) != 1:
            raise UsageError("--export needs exactly one --model: the model the export is of")
        layers = _package_layers(m, model[0], export, arch, flavour)
    else:
        layers = _model_layers(m, arch, model or ["resnet50"], flavour)
    started = time.monotonic()
    differences = images.repro.run(m, layers, ROOT, against_built=against_built, start=start)
    ids = {layer.cell: layer.image for layer in chain.unique_layers(layers)}
    if differences:
        for d in differences:
            ui.error(d.describe())
        raise ReproError(f"{len(differences)} of {len(ids)} image(s) differ between the builds",
                         hint="the files named above are written differently each build: normalise them in the template")
    ui.info(f"reproducible: {len(ids)} image(s) identical ({', '.join(ids)}) in {ui.seconds(time.monotonic() - started)}")


@bundle_task(help={"model": "The model to train, e.g. resnet50.",
                   "arch": "Image arch (default: native).",
                   "flavour": "Image flavour (default: cpu).",
                   "data": "Dataset directory on the host, mounted read-only at /data.",
                   "output": "Directory on the host for checkpoints, mounted at /output.",
                   "cpus": "Limit the container to this many CPUs (docker --cpus).",
                   "devices": "Data-parallel workers in the container: a count (2) or device ids (0,1).",
                   "xpus": "Kunlun cards to map in: 0,1 or all (with /dev/xpuctrl; never --privileged).",
                   "nodes": "Run an N-node job on this Docker host: N containers on a private network.",
                   "nnodes": "Nodes of a job across hosts (run this on every host, each with its --rank).",
                   "rank": "This host's rank in a job across hosts (0 is the master).",
                   "master": "Rank 0's address HOST:PORT for a job across hosts."})
def run(c, model, arch=None, flavour=None, data=None, output=None, cpus=None, devices=None, xpus=None,
        nodes=None, nnodes=None, rank=None, master=None):
    """Train MODEL in its container. Arguments after `--` go to the entrypoint (try `-- --help`)."""
    m = matrix.load(MATRIX)
    [layer] = _model_layers(m, arch, [model], flavour)[:1]
    args = _extra_args() + (["--devices", str(devices)] if devices else [])   # after a command (eval ...)
    if nodes:
        code = training.multinode.run_job(layer, int(nodes), data=data, output=output, args=args, cpus=cpus, xpus=xpus)
    else:
        across = [f"--{k}={v}" for k, v in (("nnodes", nnodes), ("rank", rank), ("master", master)) if v is not None]
        code = training.run.run(m, layer, data=data, output=output, args=args + across, cpus=cpus, xpus=xpus,
                          host_network=bool(across))
    if code:
        raise Exit(code=code)


@bundle_task(help={"export": "The exported model directory (inference.json, .pdiparams, .yml), e.g. OUT/inference.",
                   "port": "Host port for the server (default 8000).",
                   "bind": "Host address to publish it on (default 0.0.0.0; 127.0.0.1 for this host only).",
                   "arch": "Image arch (default: this host's).", "flavour": "Device flavour (default: cpu, or xpu with --xpus).",
                   "cpus": "CPU limit for the container, e.g. 2.", "xpus": "Kunlun cards to serve on: 0,1 or all."})
def serve(c, model, export, port=8000, bind="0.0.0.0", arch=None, flavour=None, cpus=None, xpus=None):
    """Serve an export of MODEL over HTTP (Open Inference Protocol / KServe V2) from its image. Arguments after `--`
    go to the server (try `-- --help`: batching, workers, threads, drain)."""
    m = matrix.load(MATRIX)
    [layer] = _model_layers(m, arch, [model], flavour or ("xpu" if xpus else None))[:1]
    code = training.run.serve(layer, export, int(port), bind, _extra_args(), cpus, xpus)
    if code:
        raise Exit(code=code)


@bundle_task(help={"output": "Where to write the spec (default /etc/cdi/kunlunxin-xpu.yaml; '-' prints it).",
                   "dev_root": "Where the device nodes are (default /dev, or $KUNLUN_DEV_ROOT)."})
def cdi(c, output="/etc/cdi/kunlunxin-xpu.yaml", dev_root=None):
    """Write a Container Device Interface spec for this host's Kunlun cards (kunlunxin.com/xpu=0, ..., =all)."""
    spec = training.devices.cdi_spec(training.devices.Cards.discover(Path(dev_root) if dev_root else None))
    if output == "-":
        print(training.devices.cdi_text(spec), end="")
        return
    training.devices.write_cdi(spec, Path(output))
    names = ", ".join(f"{training.devices.CDI_KIND}={d['name']}" for d in spec["devices"])
    ui.info(f"wrote {output}: {names}")
    ui.info(f"use with a CDI-aware runtime, e.g. `docker run --device {training.devices.CDI_KIND}=0 ...` (Docker 25+, CDI enabled)")


@bundle_task(iterable=["model"],
             help={"registry": "Where to publish: HOST[:PORT]/NAMESPACE (credentials: $KUNLUN_REGISTRY_USER and "
                               "$KUNLUN_REGISTRY_PASSWORD, or `docker login`).",
                   "model": "Model to publish; repeat for several (default: every ready model). With --export: the one "
                            "model the export is of.",
                   "export": "Publish the serving images (`invoke package`) of this export of --model instead of the "
                             "model's training images, e.g. OUT/inference; smoke test: 1 inference through the server.",
                   "flavour": "Device flavour(s), comma-separated (default: cpu).",
                   "arch": "Arch(s) whose images this run smoke-tests and pushes (default: all; none: manifest lists only); the "
                           "manifest lists then take the other archs from the registry, from this commit only.",
                   "push": "Push and put the manifest lists; without it only the plan is printed.",
                   "force": "Overwrite immutable tags that name other images.",
                   "manifests": "Put the manifest lists (default); --no-manifests pushes the per-arch images only.",
                   "report": "Directory for report.json and the SBOMs (default .cache/publish-report); "
                             "rerun an interrupted publish with the same one.",
                   "smoke_args": "Extra entrypoint arguments for the smoke test: of the 1-step training, e.g. "
                                 "'-o Global.image_size=64'; with --export, of `serve --self-test`, e.g. '--threads 2'."})
def publish(c, registry, model=None, flavour=None, arch="all", push=False, force=False, manifests=True,
            report=".cache/publish-report", smoke_args="", export=None):
    """Plan or push model images (or, with --export, one export's serving images) with their multi-arch
    manifest lists, tags, labels and SBOMs."""
    m = matrix.load(MATRIX)
    archs = [a.name for a in m.arch_registry.resolve(arch)] if arch not in ("none", "") else []
    if export is not None:
        if len(model or []) != 1:
            raise UsageError(f"--export needs exactly one --model: the model the export is of"
                             f"{f' (got {len(model)}: ' + ', '.join(model) + ')' if model else ''}",
                             hint="e.g. `invoke publish --registry HOST/NS --model resnet50 --export OUT/inference`")
        layers = _package_layers(m, model[0], export, "all", flavour)
    else:
        layers = _model_layers(m, "all", model or [], flavour)
    publishing.publish(m, layers, ROOT, registry, archs, push=push, force=force, manifests=manifests,
                      report_dir=Path(report), smoke_args=smoke_args.split())


@bundle_task(iterable=["arg"],
             help={"model": "The model to train (or serve), e.g. resnet50.",
                   "nodes": "Pods (ranks) in the job (default 2).",
                   "xpus_per_node": "Kunlun cards per pod, requested as baidu.com/xpu (0: CPU).",
                   "registry": "Registry prefix the images are pushed under, e.g. registry.example:5000/kunlun.",
                   "flavour": "Image flavour (default: xpu with --xpus-per-node/--xpus-per-replica, else cpu).",
                   "arch": "Image arch (default: native).",
                   "data_claim": "PersistentVolumeClaim holding the dataset (mounted read-only at /data).",
                   "output_claim": "PersistentVolumeClaim for checkpoints, shared by all ranks (/output).",
                   "output": "Directory for the manifests (default k8s/MODEL).",
                   "arg": "An entrypoint (with --serve: a `serve`) argument, repeatable: --arg=--steps --arg=100.",
                   "serve": "Serving manifests instead: a KServe ServingRuntime + InferenceService (V2 protocol) "
                            "and a Deployment + Service.",
                   "image": "--serve: the image to serve, e.g. a serving image with the model in it.",
                   "replicas": "--serve: pods serving the model (default 1).",
                   "xpus_per_replica": "--serve: Kunlun cards per pod, one predictor each (default 0: CPU).",
                   "model_dir": f"--serve: the model's directory in the image (default {training.serving_k8s.MODEL_DIR}).",
                   "model_claim": "--serve: PersistentVolumeClaim with the export, mounted read-only at /output "
                                  "(model /output/inference); without --image the training image serves it."})
def k8s(c, model, nodes=None, xpus_per_node=None, registry=None, flavour=None, arch=None, data_claim=None,
        output_claim=None, output=None, arg=None, serve=False, image=None, replicas=None, xpus_per_replica=None,
        model_dir=None, model_claim=None):
    """Write Kubernetes manifests: a multi-node job (a PaddleJob and an Indexed Job + headless Service), or
    with --serve a served model (a KServe ServingRuntime + InferenceService and a Deployment + Service)."""
    training_only = {"--nodes": nodes, "--xpus-per-node": xpus_per_node, "--data-claim": data_claim,
                     "--output-claim": output_claim}
    serving_only = {"--image": image, "--replicas": replicas, "--xpus-per-replica": xpus_per_replica,
                    "--model-dir": model_dir, "--model-claim": model_claim}
    wrong = [flag for flag, value in (training_only if serve else serving_only).items() if value is not None]
    if wrong:
        raise UsageError(f"{', '.join(wrong)}: {'not' if serve else 'only'} with --serve")
    out = Path(output or ROOT / "k8s" / model)
    m = matrix.load(MATRIX)
    if serve:
        def training_image():
            xpus = training.k8s.count("--xpus-per-replica", xpus_per_replica, 0)
            [layer] = _model_layers(m, arch, [model], flavour or ("xpu" if xpus else None))[:1]
            return layer.image
        serving = training.serving_k8s.plan(model, image, training_image, registry, replicas, xpus_per_replica,
                                            model_dir, model_claim, list(arg or []))
        paths = training.serving_k8s.write(serving, out)
    else:
        xpus = training.k8s.count("--xpus-per-node", xpus_per_node, 0)
        [layer] = _model_layers(m, arch, [model], flavour or ("xpu" if xpus else None))[:1]
        job = training.k8s.Job(name=f"kunlun-{model}", image=naming.registry_image(layer.image, registry),
                               nodes=training.k8s.count("--nodes", nodes, 2), xpus_per_node=xpus,
                               data_claim=data_claim, output_claim=output_claim, args=list(arg or []))
        paths = training.k8s.write(job, out)
    for path in paths:
        ui.info(f"wrote {path}")


@bundle_task(name="doctor")
def doctor_(c):
    """Check the host (Docker, binfmt emulation, tools, disk, base images) and say how to fix each failure."""
    m = matrix.load(MATRIX)
    if not doctor.report(m):
        raise Exit(code=1)


@bundle_task(help={"model": "Model to build and run (default: resnet50).",
                   "steps": "Training steps for the demo run."})
def quickstart(c, model="resnet50", steps=5):
    """Set up the host, bootstrap the base, build MODEL and train it for a few steps."""
    host.install_host_packages()
    m = matrix.load(MATRIX)
    layers = _model_layers(m, None, [model], None)
    images.build.summarise(images.build.build(m, layers, ROOT))
    code = training.run.run(m, layers[0], args=["--steps", str(steps)])
    if code:
        raise Exit(code=code)
    ui.info(f"\nDone. Train again with `docker run --rm {naming.model_latest(m, model).rsplit(':', 1)[0]}`"
            " (add --help for the options).")


@bundle_task(help={"fast": "Only the unit tests (no Docker, no network); a few seconds.",
                   "fresh-images": "First untag every image of the bundle's namespaces (Docker's build cache is "
                                   "kept), so a test that uses an image no test built fails as on a fresh machine "
                                   "(CI does this)."})
def test(c, fast=False, fresh_images=False):
    """Run the test suite: unit tests, then the Docker integration tests (what CI runs).

    Arguments after `--` go to pytest, e.g. `./kunlun test -- tests/integration/test_publish.py`."""
    args = [sys.executable, "-m", "pytest", *(["-m", "not docker"] if fast else []), *_extra_args()]
    env = {**os.environ, **({"KUNLUN_TEST_FRESH_IMAGES": "1"} if fresh_images else {})}
    code = subprocess.call(args, cwd=ROOT, env=env)
    if code:
        raise Exit(code=code)
