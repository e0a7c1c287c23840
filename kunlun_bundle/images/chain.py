"""The image chain of a matrix cell: base -> paddle -> suite -> model. A Layer is one image of it:
its kind (kinds.py: what it is and how it is rendered, locked and built), the matrix entry it is for,
its image name and its parent. Render, lock, fetch and build all walk these, so a layer is described once."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import naming
from ..arch import Arch
from ..errors import UsageError
from ..matrix import Matrix, Status
from . import kinds


@dataclass(frozen=True)
class Layer:
    kind: kinds.Kind
    name: str                    # the matrix entry: base release, flavour, suite or model name
    arch: Arch
    flavour: Optional[str]
    base: str                    # the matrix base (OS) every layer of this chain sits on
    image: str                   # the tag this layer is built as
    parent: Optional["Layer"] = field(default=None, compare=False, repr=False)
    export: Optional[Path] = None   # a package layer's exported model directory (`invoke package`)

    @property
    def cell(self) -> str:
        """The layer's matrix cell (its entry x flavour x arch) as the id used in file names, lock
        headers and messages, e.g. 'paddleclas/cpu-x86_64'; a model layer's cell is a cell of the matrix."""
        return self.kind.cell(self)

    @property
    def dockerfile(self) -> Path:
        return Path("dockerfiles") / f"{self.cell}.Dockerfile"

    @property
    def template(self) -> str:
        return self.kind.template

    @property
    def lock(self) -> Optional[Path]:
        """Hash-pinned wheels this layer installs: one lock per arch x flavour x (paddle | suite)."""
        return self.kind.lock(self)

    @property
    def debian_lock(self) -> Optional[Path]:
        """The exact .debs this layer is bootstrapped from: one Debian lock per base x arch."""
        return self.kind.debian_lock(self)

    def ancestry(self) -> list["Layer"]:
        """This layer and its parents, base first."""
        chain, layer = [], self
        while layer is not None:
            chain.append(layer)
            layer = layer.parent
        return chain[::-1]


def layer_of(kind: kinds.Kind, m: Matrix, model: str, flavour: str, arch: Arch) -> Layer:
    """The layer of this kind in the chain of (model, flavour, arch), with its parents attached."""
    parent = layer_of(kind.parent, m, model, flavour, arch) if kind.parent else None
    name = kind.entry(m, model, flavour)
    return Layer(kind, name, arch, kind.flavour(flavour), m.flavours[flavour].base,
                 kind.image(m, name, flavour, arch.name), parent)


def model_layer(m: Matrix, model: str, flavour: str, arch: Arch) -> Layer:
    """The model's layer with its whole chain attached through .parent."""
    return layer_of(kinds.MODEL, m, model, flavour, arch)


def serving_layer(m: Matrix, model: str, flavour: str, arch: Arch) -> Layer:
    """The serving layer (kinds.Serving) of the model's suite, with its parents."""
    return layer_of(kinds.SERVING, m, model, flavour, arch)


def package_layer(m: Matrix, model: str, flavour: str, arch: Arch, export: Optional[Path] = None,
                  required: bool = False) -> Layer:
    """A serving image of `model`'s export (kinds.Package) on the serving layer, tagged by the export's
    digest; without an export (unless `required`: then that is the error) the layer its committed
    Dockerfile is rendered for."""
    from .packaging import Export   # here: packaging reads exports, chain only names them
    digest = Export.read(export, model).digest if export is not None or required else "0" * 12
    layer = layer_of(kinds.PACKAGE, m, model, flavour, arch)
    return dataclasses.replace(layer, image=naming.packaged_image(m, model, digest, flavour, arch), export=export,
                               parent=layer.parent)


def same_in(m: Matrix, top: Layer, arch: Optional[Arch] = None) -> Layer:
    """A model or package layer and its chain as matrix `m` names them (`invoke repro`'s namespaces),
    for `arch` if given (`invoke publish`: every arch the matrix declares)."""
    arch = arch or top.arch
    if top.kind is kinds.PACKAGE:
        return package_layer(m, top.name, top.flavour, arch, top.export)
    return model_layer(m, top.name, top.flavour, arch)


def all_serving(m: Matrix) -> list[Layer]:
    """A package layer (for its Dockerfile), with its serving layer, of every servable suite's ready
    flavours x archs."""
    firsts = {}
    for model in m.ready_models():
        if m.servable(model):
            firsts.setdefault(m.models[model].suite, model)
    return [package_layer(m, model, flavour, m.arch_registry[arch])
            for model in firsts.values() for flavour in m.ready_flavours()
            for arch in sorted({a for other in m.ready_models() if m.models[other].suite == m.models[model].suite
                                for a in m.model_archs(other, flavour)}, key=list(m.archs).index)]


def select(m: Matrix, models: list[str] | None, flavours: list[str] | None,
           archs: list[Arch]) -> list[Layer]:
    """Model layers for the cells asked for; unknown or not-ready names are usage errors.
    A cell an arch can't have (model or flavour lacks the arch) is skipped, not an error,
    unless nothing at all is left."""
    for kind, names, specs in (("model", models, m.models), ("flavour", flavours, m.flavours)):
        for name in names or []:
            if name not in specs:
                raise UsageError(f"unknown {kind} '{name}'", hint=f"{kind}s: {', '.join(specs)}")
            if specs[name].status is not Status.ready:
                ready = [n for n, spec in specs.items() if spec.status is Status.ready]
                raise UsageError(f"{kind} '{name}' is not ready to build: {specs[name].reason or 'planned'}",
                                 hint=f"ready {kind}s: {', '.join(ready)}")
    layers = [model_layer(m, model, flavour, arch)
              for model in (models or m.ready_models())
              for flavour in (flavours or [naming.default_flavour(m)])
              for arch in archs
              if arch.name in m.model_archs(model, flavour)]
    if not layers:
        raise UsageError("no matrix cell matches those models, flavours and archs",
                         hint="`invoke list` shows which archs and flavours each model has")
    return layers


def all_ready(m: Matrix) -> list[Layer]:
    """Every buildable model layer in the matrix (every ready model x ready flavour x its archs)."""
    return [model_layer(m, model, flavour, m.arch_registry[arch])
            for model in m.ready_models()
            for flavour in m.ready_flavours()
            for arch in m.model_archs(model, flavour)]


def unique_layers(model_layers: list[Layer]) -> list[Layer]:
    """Every layer the given chains need, each once, parents before children."""
    seen: dict[str, Layer] = {}
    for top in model_layers:
        for layer in top.ancestry():
            seen.setdefault(layer.image, layer)
    return list(seen.values())


def every_layer(m: Matrix) -> list[Layer]:
    """Every layer with a committed Dockerfile (and lock): the training chains, then the serving
    layers, whose locks are derived from the suites' locks."""
    return unique_layers(all_ready(m) + all_serving(m))
