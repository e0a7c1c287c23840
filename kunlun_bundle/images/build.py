"""Building the image chain: base -> paddle -> suite -> model, each layer once, parents first.

Before any image is built, every input is checked: Dockerfiles match their templates, lock files
match matrix.yaml, wheels are in the cache with the pinned hashes. Builds run with the network
off. A failed layer skips the layers above it; the rest go on, and the summary says what happened."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import host, naming, ui
from ..arch import Arch
from ..containers import docker_api
from ..errors import BuildError, BundleError, InputError
from ..host import cache
from ..matrix import Matrix
from . import assemble, debian, fetch, labels, lock, render, rootfs
from .chain import Layer, all_ready, unique_layers
from .context import BuildContext


@dataclass
class Result:
    layer: Layer
    status: str                 # built | cached | failed | skipped
    seconds: float = 0.0
    size: Optional[int] = None
    error: Optional[str] = None


def check_inputs(m: Matrix, layers: list[Layer], root: Path) -> None:
    """Fail before building anything if a Dockerfile or lock file is out of date."""
    stale = [f"{layer.dockerfile}" for layer in layers
             if not (root / layer.dockerfile).is_file()
             or (root / layer.dockerfile).read_text(encoding="utf-8") != render.render_layer(m, layer, root)]
    if stale:
        raise InputError(f"Dockerfiles out of date with templates/ or matrix.yaml: {', '.join(stale)}",
                         hint="run `invoke render` and commit the result")
    stale = [f"{layer.lock}" for layer in layers if layer.lock and not lock.is_current(m, layer, root)]
    stale += [f"{layer.debian_lock}" for layer in layers
              if layer.debian_lock and not debian.is_current(m, layer.name, layer.arch, root)]
    if stale:
        raise InputError(f"lock files missing or out of date with matrix.yaml: {', '.join(stale)}",
                         hint="run `invoke lock` and commit the result")


def context_for(m: Matrix, layer: Layer, root: Path, native, parent_id: Optional[str] = None) -> BuildContext:
    """The committed Dockerfile with the build-time labels, and what the layer's kind puts beside it.
    parent_id: the image id of the parent just built; the Dockerfile's FROM names it, so the layer
    sits on exactly that image whatever namespace the tags are under."""
    ctx = BuildContext(mtime=m.bases[layer.base].source_date_epoch)
    dockerfile = dockerfile_with_labels(root / layer.dockerfile, labels.at_build(m, layer, root))
    if layer.parent is not None:
        dockerfile = from_parent(dockerfile, naming.declared(m, layer.parent.image), parent_id)
    ctx.add_bytes("Dockerfile", dockerfile)
    ctx.dockerfile = dockerfile
    layer.kind.add_context(ctx, m, layer, root, native)
    return ctx


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


def dockerfile_with_labels(path: Path, build_labels: dict[str, str]) -> bytes:
    """The committed Dockerfile plus one LABEL instruction with the build-time labels."""
    text = path.read_text(encoding="utf-8")
    if build_labels:
        text = (text.rstrip("\n") + "\n# Build-time labels (kunlun_bundle/images/labels.py at_build)\n"
                + labels.instruction(build_labels) + "\n")
    return text.encode("utf-8")


def build_layer(client, m: Matrix, layer: Layer, root: Path, native, no_cache: bool, verbose: bool,
                images: dict, keep: Optional[Path] = None) -> Result:
    """Docker runs the install stage (if the Dockerfile has one); the image itself is assembled
    (assemble.py): the same inputs give the same image id, and a rebuild with the same inputs finds
    the image it made before. `images` carries the chain's assembled configs from parent to child."""
    start = time.monotonic()
    existing = docker_api.image(client, layer.image)
    if existing and not no_cache and layer.kind.reuse(m, layer, root, existing):
        image = known(m, layer, root, existing, images)
        if image is not None:
            images[layer.image] = image
            return Result(layer, "cached", 0.0, existing.attrs["Size"])
    with ui.step(f"build {layer.image}"):
        parent = docker_api.image(client, layer.parent.image) if layer.parent else None
        ctx = context_for(m, layer, root, native, parent.id if parent else None)
        stages = assemble.parse(ctx.dockerfile.decode("utf-8"))
        final, install = stages[-1], (stages[-2] if len(stages) > 1 else None)
        parent_image = images[layer.parent.image] if layer.parent else \
            assemble.Image(layer.arch.platform, m.bases[layer.base].source_date_epoch)
        key = assembly_key(ctx, m.bases[layer.base].source_date_epoch)
        made = cache.assembled() / key
        found = docker_api.image(client, made.read_text().strip()) if made.is_file() and not no_cache else None
        image = replayed(final, parent_image, found) if found is not None else None
        if image is not None:   # made from these very inputs before: the image as it was
            found.tag(*layer.image.rsplit(":", 1))
        else:
            found, stage_id = None, None
            if install is not None:
                with ctx.tarball(cache.scratch()) as tarball:
                    def show(line: str) -> None:
                        if verbose or line.startswith("Step ") or line.startswith(" ---> Using cache"):
                            ui.detail(line)
                    stage_id = docker_api.build(client, tarball, None, layer.arch.platform, nocache=no_cache,
                                                target=install.name, on_line=show)
            image = assemble_and_load(client, layer, final, parent_image, ctx.sources(), stage_id, keep)
            made.write_text(image.id + "\n")
    images[layer.image] = image
    built = client.images.get(layer.image)
    layer.kind.built(m, layer, built)
    result = Result(layer, "cached" if found is not None else "built", time.monotonic() - start, built.attrs["Size"])
    if result.status == "built":
        record(result)
    return result


def assembly_key(ctx, epoch: int) -> str:
    """Everything an image is made from: its Dockerfile (whose FROM names the parent's id) and every
    file of its build context (the wheels by the sha256 their lock pins). The same key, the same image:
    that is what `invoke repro` checks, and what lets a rebuild skip Docker altogether."""
    files = dict(sorted(ctx.digests().items()))
    text = json.dumps({"files": files, "epoch": epoch, "assembly": ASSEMBLY_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


ASSEMBLY_VERSION = 1   # bump when assemble.py changes what it writes: old keys then no longer match


def assemble_and_load(client, layer: Layer, final: assemble.Stage, parent: assemble.Image, sources: dict,
                      stage_id: Optional[str], keep: Optional[Path] = None) -> assemble.Image:
    """Assemble the final stage and load the image; `keep`: a directory where the new layer tars are
    kept (named <diff id>.layer.tar), for `invoke repro` to compare."""
    scratch = cache.scratch()
    with contextlib.ExitStack() as stack:
        tree = stack.enter_context(docker_api.Tree(client, stage_id, scratch)) if stage_id else None
        made = assemble.assemble(final, parent, assemble.Sources(sources, tree.export if tree else None), scratch)
        try:
            with tempfile.TemporaryFile(dir=scratch) as archive:
                assemble.write_archive(made, [layer.image], archive)
                archive.seek(0)
                docker_api.load(client, archive, made.image.id, layer.image)
        finally:
            for diff, path in made.layers:
                if keep is not None:
                    kept = keep / f"{diff.split(':')[1]}.layer.tar"
                    if path.parent == scratch:
                        path.replace(kept)
                    else:
                        shutil.copyfile(path, kept)
                elif path.parent == scratch:
                    path.unlink(missing_ok=True)
    return made.image


def replayed(final: assemble.Stage, parent: assemble.Image, found) -> Optional[assemble.Image]:
    """The config of an image already in the daemon, known again from its final stage; None when that
    does not give its id (it was made by other Dockerfiles, or by Docker's builder)."""
    try:
        image = assemble.replay(final, parent, found.attrs["RootFS"]["Layers"])
    except BuildError:
        return None
    return image if image.id == found.id else None


def _unknown(layer: Layer):
    raise BuildError(f"{layer.image} was not assembled from the current Dockerfiles", hint="rebuild it with `invoke build`")


def known(m: Matrix, layer: Layer, root: Path, existing, images: dict) -> Optional[assemble.Image]:
    """A layer that is not rebuilt (a base whose inputs are unchanged), known again for its children."""
    parent = images[layer.parent.image] if layer.parent else \
        assemble.Image(layer.arch.platform, m.bases[layer.base].source_date_epoch)
    text = dockerfile_with_labels(root / layer.dockerfile, labels.at_build(m, layer, root)).decode("utf-8")
    return replayed(assemble.parse(text)[-1], parent, existing)


def record(result: Result) -> None:
    """Append a built layer's time and size to the cache's build log (bench/ reads it)."""
    entry = {"image": result.layer.image, "kind": result.layer.kind, "arch": result.layer.arch.name,
             "seconds": round(result.seconds, 1), "size": result.size,
             "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with open(cache.root() / "build-log.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def fetch_inputs(m: Matrix, layers: list[Layer], root: Path, source: Optional[Path] = None,
                 all_debs: bool = False) -> None:
    """The locked wheels, the runtime archives and the .debs of the bases whose rootfs is not in the
    cache yet (`all_debs`: of every base) present and verified in the cache."""
    wheels = {w.filename: w for layer in layers if layer.lock
              for w in lock.LockFile.read(root / layer.lock).wheels}
    missing = [w for w in wheels.values() if not fetch.cached(w).exists()]
    label = f"fetch {len(missing)} of {len(wheels)} wheels into {cache.wheels()}" if missing \
        else f"verify {len(wheels)} cached wheels"
    with ui.step(label):
        fetch.fetch(wheels.values(), source=source)
    for layer in layers:
        if layer.debian_lock and (all_debs or layer.kind.needs_debs(m, layer, root)):
            deb_lock = debian.DebLock.read(root / layer.debian_lock)
            with ui.step(f"fetch or verify {len(deb_lock.debs)} Debian packages of {deb_lock.cell} in {cache.debs()}"):
                debian.fetch(deb_lock, source=source)
    archives = {a.filename: a for layer in layers for a in layer.kind.downloads(m, layer)}
    if archives:
        with ui.step(f"fetch or verify {len(archives)} XPU runtime archive(s) in {cache.downloads()}"):
            fetch.fetch(archives.values(), source=source, directory=cache.downloads())


def build_layers(m: Matrix, layers: list[Layer], root: Path = Path("."), no_cache: bool = False,
                 verbose: bool = False, keep: Optional[Path] = None, given: Optional[set[str]] = None
                 ) -> dict[str, Result]:
    """Build the given layers (parents first) and return their results by image. `given`: images
    taken as they are (already built, tagged under their names), not built again (`invoke repro --start`)."""
    check_inputs(m, layers, root)
    native = m.arch_registry.native()
    for arch in {layer.arch for layer in layers}:
        host.require_binfmt(arch, native)   # fail now, not after an hour of building
    fetch_inputs(m, layers, root)
    client = docker_api.client()
    results: dict[str, Result] = {}
    images: dict[str, assemble.Image] = {}   # the chain's assembled configs, parents first
    for layer in layers:
        parent = results.get(layer.parent.image) if layer.parent else None
        if parent and parent.status in ("failed", "skipped"):
            results[layer.image] = Result(layer, "skipped", error=f"{layer.parent.image} {parent.status}")
            continue
        if layer.image in (given or ()):
            existing = docker_api.image(client, layer.image, missing=BuildError(f"{layer.image} is not built"))
            images[layer.image] = known(m, layer, root, existing, images) or _unknown(layer)
            results[layer.image] = Result(layer, "cached", 0.0, existing.attrs["Size"])
            continue
        try:
            results[layer.image] = build_layer(client, m, layer, root, native, no_cache, verbose, images, keep)
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


def build_bases(m: Matrix, archs: list[Arch], root: Path = Path("."), force: bool = False) -> list[Result]:
    """`invoke base`: the base of every buildable chain on these archs; with `force`, bootstrapped
    again from the current Debian packages (the cached rootfs tarball would otherwise be reused)."""
    bases = {layer.image: layer for top in all_ready(m) for layer in top.ancestry()[:1] if layer.arch in archs}
    if force:
        for layer in bases.values():
            rootfs.rootfs_path(m, layer.name, layer.arch, root).unlink(missing_ok=True)
    return list(build_layers(m, list(bases.values()), root, no_cache=force).values())


def summarise(results: list[Result]) -> None:
    rows = [[r.layer.image, r.status, ui.size(r.size), ui.seconds(r.seconds) if r.status == "built" else "-",
             r.error or ""] for r in results]
    ui.table(["image", "status", "size", "build time", "note"], rows, title="Build summary", console=ui.err)
    counts = {s: sum(r.status == s for r in results) for s in ("built", "cached", "failed", "skipped")}
    ui.info(", ".join(f"{n} {s}" for s, n in counts.items()))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BuildError(f"{len(failed)} image(s) failed to build: {', '.join(r.layer.image for r in failed)}")
