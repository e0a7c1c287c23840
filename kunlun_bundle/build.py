"""Building the image chain: base -> paddle -> suite -> model, each layer once, parents first.

Before any image is built, every input is checked: Dockerfiles match their templates, lock files
match matrix.yaml, wheels are in the cache with the pinned hashes. Builds run with the network
off. A failed layer skips the layers above it; the rest go on, and the summary says what happened."""
from __future__ import annotations

import datetime
import functools
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import base as base_rootfs
from . import cache, docker_api, fetch, host, lock, naming, render, ui
from .chain import Layer, unique_layers
from .context import BuildContext
from .errors import BuildError, BundleError, InputError
from .matrix import Matrix, patch_path


@dataclass
class Result:
    layer: Layer
    status: str                 # built | cached | failed | skipped
    seconds: float = 0.0
    size: Optional[int] = None
    error: Optional[str] = None


BASE_INPUTS_LABEL = "io.kunlun.base.inputs.sha256"


def recipe_json(m: Matrix, model: str) -> bytes:
    """The model's default recipe as the entrypoint reads it (/opt/kunlun/recipe.json)."""
    spec = m.models[model]
    recipe = {"Bundle": {"model": model, "title": spec.title, "task": spec.task, "suite": spec.suite},
              **spec.recipe}
    return (json.dumps(recipe, indent=2, sort_keys=True) + "\n").encode()


def check_inputs(m: Matrix, layers: list[Layer], root: Path) -> None:
    """Fail before building anything if a Dockerfile or lock file is out of date."""
    stale = [f"{layer.dockerfile}" for layer in layers
             if not (root / layer.dockerfile).is_file()
             or (root / layer.dockerfile).read_text(encoding="utf-8") != render.render_layer(m, layer, root)]
    if stale:
        raise InputError(f"Dockerfiles out of date with templates/ or matrix.yaml: {', '.join(stale)}",
                         hint="run `invoke render` and commit the result")
    stale = [f"{layer.lock}" for layer in layers if layer.lock and not lock.is_current(m, layer, root)]
    if stale:
        raise InputError(f"lock files missing or out of date with matrix.yaml: {', '.join(stale)}",
                         hint="run `invoke lock` and commit the result")


def context_for(m: Matrix, layer: Layer, root: Path, native, parent_id: Optional[str] = None) -> BuildContext:
    """parent_id: the image id of the parent just built; the Dockerfile's FROM names it, so the
    layer sits on exactly that image whatever namespace the tags are under."""
    ctx = BuildContext(mtime=m.bases[layer.base].source_date_epoch)
    dockerfile = dockerfile_with_labels(root / layer.dockerfile, labels_for(m, layer, root))
    if layer.parent is not None:
        dockerfile = from_parent(dockerfile, naming.declared(m, layer.parent.image), parent_id)
    ctx.add_bytes("Dockerfile", dockerfile)
    if layer.kind == "base":
        with ui.step(f"bootstrap Debian {m.bases[layer.name].release} rootfs for {layer.arch.name}"):
            ctx.add_file("rootfs.tar", base_rootfs.bootstrap(m, layer.name, layer.arch, native, ui.detail))
    elif layer.lock:
        locked = lock.LockFile.read(root / layer.lock)
        ctx.add_file("lock.txt", root / layer.lock)
        for wheel in locked.wheels:
            path = fetch.cached(wheel)
            if not path.exists():
                raise InputError(f"{wheel.filename} is not in the cache ({path.parent})", hint="run `invoke fetch`")
            ctx.add_file(f"wheels/{wheel.filename}", path, sha256=wheel.sha256)
        archive = runtime_archive(m, layer)
        if archive is not None:
            path = fetch.cached(archive, cache.downloads())
            if not path.exists():
                raise InputError(f"{archive.filename} (XPU runtime) is not in the cache ({path.parent})",
                                 hint="run `invoke fetch`")
            ctx.add_file(f"runtime/{archive.filename}", path, sha256=archive.sha256)
        if layer.kind == "suite":
            for patch in m.suites[layer.name].patches:
                ctx.add_file(f"patches/{patch}", root / patch_path(layer.name, patch))
    else:
        ctx.add_tree("entrypoints", root / "entrypoints")
        ctx.add_bytes("recipe.json", recipe_json(m, layer.name))
    return ctx


# The licence of what the images hold: PaddlePaddle and its suites (PaddleClas, -Detection, -Seg,
# -NLP, PARL) are Apache-2.0.
LICENSES = "Apache-2.0"


def from_parent(dockerfile: bytes, declared_parent: str, parent_id: Optional[str]) -> bytes:
    """FROM <parent as the matrix names it> becomes FROM <the parent's image id>."""
    if parent_id is None:
        raise BuildError(f"the parent image {declared_parent} is not built")
    lines = dockerfile.decode("utf-8").split("\n")
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "FROM" and words[1] == declared_parent:
            lines[i] = " ".join(["FROM", parent_id, *words[2:]])
    return "\n".join(lines).encode("utf-8")


def dockerfile_with_labels(path: Path, labels: dict[str, str]) -> bytes:
    """The committed Dockerfile plus one LABEL instruction with the build-time labels. (Docker's
    own build-time labels cost the legacy builder one committed step per label.)"""
    text = path.read_text(encoding="utf-8")
    if labels:
        # Quoted with escapes; `$` escaped too, or Docker would substitute variables in the value.
        pairs = " \\\n      ".join(f"{key}={json.dumps(value, ensure_ascii=False).replace('$', chr(92) + '$')}"
                                    for key, value in sorted(labels.items()))
        text = text.rstrip("\n") + f"\n# Build-time labels (kunlun_bundle/build.py labels_for)\nLABEL {pairs}\n"
    return text.encode("utf-8")


def labels_for(m: Matrix, layer: Layer, root: Path) -> dict[str, str]:
    """Labels that depend on more than the Dockerfile (the lock file's or the rootfs inputs' hash),
    and on model images, the published ones, the OCI annotations and what the image was built from.

    The commit-dependent labels (revision, created) go on the model layer only: a label on a lower
    layer changes that image's id, and every layer above it then misses Docker's cache (a suite
    layer is minutes to build, under emulation many). On the model layer a new commit costs one
    label step. `created` is the commit time, not the clock, so a rebuild of a commit is the same."""
    if layer.kind == "base":
        return {BASE_INPUTS_LABEL: base_rootfs.inputs_sha256(m, layer.name, layer.arch)}
    if layer.lock:
        return {"io.kunlun.lock.sha256": fetch.sha256_of(root / layer.lock)}
    if layer.kind != "model":
        return {}
    spec, suite, flavour = m.models[layer.name], layer.parent, m.flavours[layer.flavour]
    runtime = m.runtimes[flavour.runtime] if flavour.runtime else None
    # The model template already sets title, version, arch, flavour, Paddle and suite versions;
    # only what it cannot know is added here (a published image carries both, see publish.py).
    labels = {
        "org.opencontainers.image.description":
            f"Trains {spec.title} ({spec.task}, {spec.suite} {m.suites[spec.suite].version}) with PaddlePaddle "
            f"{m.paddle_version(layer.flavour, layer.arch.name)} on {runtime_name(m, layer.flavour)}; "
            f"`docker run IMAGE --help` lists the options",
        "org.opencontainers.image.licenses": LICENSES,
        "io.kunlun.runtime.version": runtime.version if runtime else "none",
        "io.kunlun.lock.paddle.sha256": fetch.sha256_of(root / suite.parent.lock),
        f"io.kunlun.lock.{spec.suite}.sha256": fetch.sha256_of(root / suite.lock),
    }
    return labels | {f"org.opencontainers.image.{k}": v for k, v in git_facts(root).items()}


def runtime_name(m: Matrix, flavour: str) -> str:
    runtime = m.flavours[flavour].runtime
    return f"Kunlun XPU (XRE {m.runtimes[runtime].version})" if runtime else "CPU"


@functools.lru_cache(maxsize=None)
def git_facts(root: Path) -> dict[str, str]:
    """source, revision and created (the commit time) for the OCI labels; what git cannot tell is left out."""
    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""
    facts = {"revision": git("rev-parse", "HEAD"), "created": git("log", "-1", "--format=%cI")}
    source = os.environ.get("KUNLUN_SOURCE_URL") or (
        f"{os.environ['GITHUB_SERVER_URL']}/{os.environ['GITHUB_REPOSITORY']}"
        if os.environ.get("GITHUB_SERVER_URL") and os.environ.get("GITHUB_REPOSITORY") else git("remote", "get-url", "origin"))
    facts["source"] = public_url(source)
    return {k: v for k, v in facts.items() if v}


def public_url(url: str) -> str:
    """A remote URL without credentials (https://user:token@host/x -> https://host/x)."""
    return re.sub(r"^([a-z+]+://)[^/@]*@", r"\1", url.strip())


def build_layer(client, m: Matrix, layer: Layer, root: Path, native, no_cache: bool, verbose: bool) -> Result:
    start = time.monotonic()
    existing = docker_api.image(client, layer.image)
    before = existing.id if existing else None
    if layer.kind == "base" and existing and not no_cache:
        # Bases are bootstrapped once, and again only when their inputs in matrix.yaml change
        # (or on `invoke base --force`): a bootstrap is minutes, under emulation many.
        if (existing.labels or {}).get(BASE_INPUTS_LABEL) == labels_for(m, layer, root)[BASE_INPUTS_LABEL]:
            return Result(layer, "cached", 0.0, existing.attrs["Size"])
    with ui.step(f"build {layer.image}"):
        parent = docker_api.image(client, layer.parent.image) if layer.parent else None
        parent_id = parent.id if parent else None
        ctx = context_for(m, layer, root, native, parent_id)
        with ctx.tarball(cache.scratch()) as tarball:
            def show(line: str) -> None:
                if verbose or line.startswith("Step ") or line.startswith(" ---> Using cache"):
                    ui.detail(line)
            new_id = docker_api.build(client, tarball, layer.image, layer.arch.platform, nocache=no_cache,
                                      on_line=show)
    if layer.kind == "base":
        dated = naming.base_dated_image(m, layer.name, layer.arch.name, datetime.date.today().strftime("%Y%m%d"))
        client.images.get(new_id).tag(*dated.rsplit(":", 1))
    size = client.images.get(new_id).attrs["Size"]
    result = Result(layer, "cached" if before == new_id else "built", time.monotonic() - start, size)
    if result.status == "built":
        record(result)
    return result


def record(result: Result) -> None:
    """Append a built layer's time and size to the cache's build log (bench/ reads it)."""
    entry = {"image": result.layer.image, "kind": result.layer.kind, "arch": result.layer.arch.name,
             "seconds": round(result.seconds, 1), "size": result.size,
             "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with open(cache.root() / "build-log.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def runtime_archive(m: Matrix, layer: Layer):
    """The XPU runtime archive a framework layer installs, or None (CPU flavours)."""
    if layer.kind != "paddle" or not m.flavours[layer.flavour].runtime:
        return None
    return m.runtimes[m.flavours[layer.flavour].runtime].archives[layer.arch.name]


def fetch_inputs(m: Matrix, layers: list[Layer], root: Path, source: Optional[Path] = None) -> None:
    wheels = {w.filename: w for layer in layers if layer.lock
              for w in lock.LockFile.read(root / layer.lock).wheels}
    missing = [w for w in wheels.values() if not fetch.cached(w).exists()]
    label = f"fetch {len(missing)} of {len(wheels)} wheels into {cache.wheels()}" if missing \
        else f"verify {len(wheels)} cached wheels"
    with ui.step(label):
        fetch.fetch(wheels.values(), source=source)
    archives = {a.filename: a for a in filter(None, (runtime_archive(m, layer) for layer in layers))}
    if archives:
        with ui.step(f"fetch or verify {len(archives)} XPU runtime archive(s) in {cache.downloads()}"):
            fetch.fetch(archives.values(), source=source, directory=cache.downloads())


def build_layers(m: Matrix, layers: list[Layer], root: Path = Path("."), no_cache: bool = False,
                 verbose: bool = False) -> dict[str, Result]:
    """Build the given layers (parents first) and return their results by image."""
    check_inputs(m, layers, root)
    native = m.arch_registry.native()
    for arch in {layer.arch for layer in layers}:
        host.require_binfmt(arch, native)   # fail now, not after an hour of building
    fetch_inputs(m, layers, root)
    client = docker_api.client()
    results: dict[str, Result] = {}
    for layer in layers:
        parent = results.get(layer.parent.image) if layer.parent else None
        if parent and parent.status in ("failed", "skipped"):
            results[layer.image] = Result(layer, "skipped", error=f"{layer.parent.image} {parent.status}")
            continue
        try:
            results[layer.image] = build_layer(client, m, layer, root, native, no_cache, verbose)
        except BundleError as exc:
            ui.error(exc.message, exc.hint)
            results[layer.image] = Result(layer, "failed", error=exc.message.splitlines()[0])
    return results


def build(m: Matrix, model_layers: list[Layer], root: Path = Path("."), no_cache: bool = False,
          verbose: bool = False) -> list[Result]:
    """Build the chains of the given model layers, then tag the host's default builds `latest`."""
    results = build_layers(m, unique_layers(model_layers), root, no_cache, verbose)
    native, default = m.arch_registry.native(), naming.default_flavour(m)
    client = docker_api.client()
    for layer in model_layers:
        if results[layer.image].status in ("built", "cached") and layer.arch == native and layer.flavour == default:
            client.images.get(layer.image).tag(*naming.model_latest(m, layer.name).rsplit(":", 1))
    return list(results.values())


def summarise(results: list[Result]) -> None:
    rows = [[r.layer.image, r.status, ui.size(r.size), ui.seconds(r.seconds) if r.status == "built" else "-",
             r.error or ""] for r in results]
    ui.table(["image", "status", "size", "build time", "note"], rows, title="Build summary", console=ui.err)
    counts = {s: sum(r.status == s for r in results) for s in ("built", "cached", "failed", "skipped")}
    ui.info(", ".join(f"{n} {s}" for s, n in counts.items()))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BuildError(f"{len(failed)} image(s) failed to build: {', '.join(r.layer.image for r in failed)}")
