"""`invoke repro`: build a chain from scratch and show that it comes out the same, byte for byte.

Each pass builds in a namespace of its own with a cache of its own (the wheels and other downloads
are shared, read-only): the rootfs is bootstrapped again, the install stages run without Docker's
cache, every layer is assembled anew. Passes are compared image by image; where two differ, the
first differing layer is opened and its entries compared (content, mtime, owner, mode, type), so the
report names the file and what differs, not just "different".

With `against_built`, one pass is compared with the chain as already built (the images `invoke
build` made, earlier, from the same commit): a stronger claim (another time, another cache), and
half the work."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import ui
from ..containers import docker_api
from ..errors import BuildError, ReproError
from ..host import cache
from ..matrix import Matrix
from . import build, chain
from .kinds import KINDS

SHARED = ("wheels", "downloads", "debs")   # inputs a pass reads from the real cache: hash-checked, never built


@dataclass
class Pass:
    name: str
    ids: dict[str, str] = field(default_factory=dict)          # cell -> image id
    layers: dict[str, Path] = field(default_factory=dict)      # diff id -> layer tar (kept)


@dataclass
class Difference:
    cell: str
    image_a: str
    image_b: str
    layer: Optional[int] = None              # index of the first differing layer
    step: str = ""                           # the instruction that made it
    entries: list[str] = field(default_factory=list)

    def describe(self) -> str:
        head = f"{self.cell}: {self.image_a[:19]} != {self.image_b[:19]}"
        if self.layer is None:
            return head + " (the same layers: the image config differs)"
        shown = self.entries[:25] + ([f"... and {len(self.entries) - 25} more"] if len(self.entries) > 25 else [])
        return head + f"; its layer {self.layer + 1} ({self.step}) differs:\n    " + "\n    ".join(shown)


def layer_steps(client, image_id: str) -> list[str]:
    """The instruction behind each layer of an assembled image, bottom first (from its history)."""
    entries = reversed(client.images.get(image_id).history())
    return [e["CreatedBy"] for e in entries if e.get("CreatedBy", "").startswith(("ADD ", "COPY "))]


@contextlib.contextmanager
def own_cache(keep: Path):
    """A cache of its own for one pass: nothing built before is reused, the downloads are shared."""
    real = cache.root()
    with tempfile.TemporaryDirectory(dir=cache.scratch(), prefix="repro-") as tmp:
        for name in SHARED:
            if (real / name).is_dir():
                (Path(tmp) / name).symlink_to(real / name)
        previous = os.environ.get("KUNLUN_CACHE")
        os.environ["KUNLUN_CACHE"] = tmp
        try:
            yield Path(tmp)
        finally:
            if previous is None:
                os.environ.pop("KUNLUN_CACHE", None)
            else:
                os.environ["KUNLUN_CACHE"] = previous


def build_pass(m: Matrix, model_layers: list, root: Path, name: str, keep: Path, start: str = "base") -> Pass:
    """One from-scratch build of the chains, in namespace `<namespace>repro-<name>`. Layers below the
    `start` kind are taken as built (`invoke build` made them) and only tagged into the namespace."""
    namespaced = m.model_copy(update={"namespace_override": f"{m.namespace}repro-{name}"})
    layers = chain.unique_layers([chain.same_in(namespaced, top) for top in model_layers])
    kinds = [str(k) for k in KINDS]
    below = {layer.image for layer in layers if kinds.index(str(layer.kind)) < kinds.index(start)}
    client = docker_api.client()
    for original, layer in zip(chain.unique_layers(model_layers), layers):
        if layer.image in below:
            docker_api.image(client, original.image, missing=ReproError(
                f"{original.image} is not built", hint="run `invoke build` first, or start lower")).tag(*layer.image.rsplit(":", 1))
    done = Pass(name)
    with ui.step(f"repro pass {name}: build {len(layers) - len(below)} layer(s) from scratch"), own_cache(keep):
        results = build.build_layers(namespaced, layers, root, no_cache=True, keep=keep, given=below)
    failed = [r for r in results.values() if r.status != "built" and r.layer.image not in below]
    if failed:
        raise BuildError(f"repro pass {name}: {failed[0].layer.image} {failed[0].status}: {failed[0].error or ''}")
    client = docker_api.client()
    for layer in layers:
        done.ids[layer.cell] = client.images.get(layer.image).id
    done.layers = {f"sha256:{p.name.split('.')[0]}": p for p in keep.glob("*.layer.tar")}
    return done


def built_pass(m: Matrix, model_layers: list) -> Pass:
    """The chain as `invoke build` made it (its layers are read from the daemon only if needed)."""
    client = docker_api.client()
    done = Pass("built")
    for layer in chain.unique_layers(model_layers):
        found = docker_api.image(client, layer.image, missing=ReproError(
            f"{layer.image} is not built", hint=f"run `invoke build --model {model_layers[0].name}` first"))
        done.ids[layer.cell] = found.id
    return done


def entries(path: Path) -> dict[str, tuple]:
    """{path: (type, mode, uid, gid, mtime, size, sha256 or link target)} of a layer tar."""
    out = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isreg():
                digest = hashlib.sha256()
                f = tar.extractfile(member)
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                what = digest.hexdigest()
            else:
                what = member.linkname
            out[member.name.lstrip("./") or "/"] = (member.type, member.mode, member.uid, member.gid, member.mtime,
                                                     member.size, what)
    return out


FIELDS = ("type", "mode", "uid", "gid", "mtime", "size", "content")


def compare_layers(a: Path, b: Path) -> list[str]:
    """What differs between two layer tars, one line per path."""
    ea, eb = entries(a), entries(b)
    lines = []
    for name in sorted(set(ea) | set(eb)):
        if name not in eb:
            lines.append(f"/{name}: only in the first build")
        elif name not in ea:
            lines.append(f"/{name}: only in the second build")
        elif ea[name] != eb[name]:
            what = ["content" if f == "content" else f"{f} {x!r} vs {y!r}"
                    for f, x, y in zip(FIELDS, ea[name], eb[name]) if x != y]
            lines.append(f"/{name}: " + ", ".join(what))
    return lines


def layer_tar(client, image_id: str, diff_id: str, into: Path, known: dict[str, Path]) -> Path:
    """A layer's tar: kept from a pass, else read out of the daemon with `docker save` (slow, rare)."""
    if diff_id in known:
        return known[diff_id]
    with tempfile.TemporaryFile(dir=into) as saved:
        for chunk in client.images.get(image_id).save(named=False):
            saved.write(chunk)
        saved.seek(0)
        with tarfile.open(fileobj=saved) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))[0]
            config = json.load(outer.extractfile(manifest["Config"]))
            index = config["rootfs"]["diff_ids"].index(diff_id)
            target = into / f"{diff_id.split(':')[1]}.saved.tar"
            with outer.extractfile(manifest["Layers"][index]) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    known[diff_id] = target
    return target


def compare(a: Pass, b: Pass, into: Path) -> list[Difference]:
    """The cells whose images differ, with the first differing layer opened."""
    client = docker_api.client()
    known = {**a.layers, **b.layers}
    found = []
    for cell, id_a in a.ids.items():
        id_b = b.ids[cell]
        if id_a == id_b:
            continue
        diff = Difference(cell, id_a, id_b)
        layers_a = client.images.get(id_a).attrs["RootFS"]["Layers"]
        layers_b = client.images.get(id_b).attrs["RootFS"]["Layers"]
        for i, (da, db) in enumerate(zip(layers_a, layers_b)):
            if da != db:
                diff.layer = i
                steps = layer_steps(client, id_b)
                diff.step = steps[i] if i < len(steps) else "?"
                diff.entries = compare_layers(layer_tar(client, id_a, da, into, known),
                                              layer_tar(client, id_b, db, into, known))
                break
        else:
            if len(layers_a) != len(layers_b):
                diff.layer, diff.entries = min(len(layers_a), len(layers_b)), ["a different number of layers"]
        found.append(diff)
        if diff.layer is not None:
            break   # the layers above the first difference differ because of it
    return found


def run(m: Matrix, model_layers: list, root: Path, against_built: bool = False, start: str = "base") -> list[Difference]:
    """Build from scratch (twice, or once against the built chain) and compare; the differences.
    `start`: the lowest layer kind built again (base: the whole chain)."""
    if start not in [str(k) for k in KINDS]:
        raise ReproError(f"--start {start}: expected one of {', '.join(map(str, KINDS))}")
    with tempfile.TemporaryDirectory(dir=cache.scratch(), prefix="repro-layers-") as tmp:
        keep_a, keep_b = Path(tmp) / "a", Path(tmp) / "b"
        keep_a.mkdir()
        keep_b.mkdir()
        first = built_pass(m, model_layers) if against_built else build_pass(m, model_layers, root, "1", keep_a, start)
        second = build_pass(m, model_layers, root, "2" if not against_built else "1", keep_b, start)
        try:
            return compare(first, second, Path(tmp))
        finally:
            untag(m, model_layers, ("1", "2"))


def untag(m: Matrix, model_layers: list, names) -> None:
    """The passes' tags go; their images stay only where another tag (the built chain) holds them."""
    client = docker_api.client()
    for name in names:
        namespaced = m.model_copy(update={"namespace_override": f"{m.namespace}repro-{name}"})
        for top in model_layers:
            for layer in chain.same_in(namespaced, top).ancestry():
                repository = layer.image.rsplit(":", 1)[0]
                # every tag of the pass's repository: the base also gets a dated tag when built
                tags = [t for image in client.images.list(name=repository) for t in image.tags
                        if t.rsplit(":", 1)[0] == repository] or [layer.image]
                for tag in tags:
                    with contextlib.suppress(Exception):
                        client.images.remove(tag, noprune=False)
