"""The kinds of layer, each one type that owns its behaviour (hpccm's building blocks):

  base    Debian, bootstrapped by mmdebstrap           parent: none     lock: none
  paddle  the framework: Paddle's venv (+ XPU runtime)  parent: base     lock: <arch>/<flavour>/paddle.txt
  suite   a suite and what it imports                  parent: paddle   lock: <arch>/<flavour>/<suite>.txt
  model   the entrypoint and the model's recipe        parent: suite    lock: none
  serving a suite without its training dependencies,  parent: paddle   lock: <arch>/<flavour>/<suite>-serving.txt
          and what its predict route imports
  package one exported model behind the server         parent: serving  lock: none
          (`invoke package`; its tag is the model files' digest)

A kind knows which matrix entry its layer is for, its image name, template, lock file, Debian lock
and patches, what its template needs, what goes into its build context, its labels and the kind it
sits on; the kinds `invoke publish` pushes (model, package) also their smoke test, their names in a
registry, what to do about a tag conflict and the command that builds a missing image.
chain.py, render.py, lock.py, build.py, bundle.py, publishing/ and tasks.py only call these and never
compare kind names, so a new kind (say an inference-only layer on a suite) is one class here, one
template, and its place in the chain.

A kind is a `str` equal to its name: the templates (`io.kunlun.layer`), the build log and bench
key on "base", "paddle", "suite" and "model"."""
from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from packaging.utils import canonicalize_name

from .. import layout, naming, ui
from ..errors import InputError
from ..host import cache
from ..matrix import Download, Matrix, patch_path
from . import debian, fetch, labels, lock, rootfs
from .context import BuildContext

if TYPE_CHECKING:
    from ..arch import Arch
    from .chain import Layer


@dataclass(frozen=True)
class Smoke:
    """The test an image of a kind passes before `invoke publish` pushes it: the entrypoint's arguments
    (network off), what it shows (for the progress line), the key of its JSON summary line that must be
    true, the io.kunlun.smoke label the pushed image then carries, and how long it may take."""
    args: tuple[str, ...]
    what: str
    passed_key: str
    label: str
    timeout: Optional[float] = None


class Kind(str):
    name: str                                # what the kind is called, and its template's stem
    parent: Optional["Kind"] = None          # the kind a layer of this kind is built on
    smoke: Optional[Smoke] = None            # the kinds `invoke publish` pushes: their smoke test

    def __new__(cls, *_):
        return super().__new__(cls, cls.name)

    def __copy__(self) -> "Kind":
        return self          # one instance per kind: copies of a Layer share it

    def __deepcopy__(self, memo) -> "Kind":
        return self

    @property
    def template(self) -> str:
        return f"{self.name}.Dockerfile.j2"

    def version(self, m: Matrix, layer: "Layer") -> str:
        """The OCI version label: the image's tag."""
        return naming.declared(m, layer.image).split(":")[1]

    # --- where the layer sits ---------------------------------------------------------------------
    def entry(self, m: Matrix, model: str, flavour: str) -> str:
        """The matrix entry a layer of this kind in the chain of (model, flavour) is for."""
        raise NotImplementedError

    def flavour(self, flavour: str) -> Optional[str]:
        return flavour

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        raise NotImplementedError

    def cell(self, layer: "Layer") -> str:
        """Short id used in file names and messages, e.g. 'paddleclas/cpu-x86_64'."""
        return f"{layer.name}/{layer.flavour}-{layer.arch.name}"

    # --- rendering and locking ---------------------------------------------------------------------
    def lock(self, layer: "Layer") -> Optional[Path]:
        """The hash-pinned wheels this layer installs, if any."""
        return None

    def debian_lock(self, layer: "Layer") -> Optional[Path]:
        """The Debian lock (exact .debs) this layer is bootstrapped from, if any."""
        return None

    def patches(self, m: Matrix, layer: "Layer") -> list[Path]:
        """The patch files (patches/<suite>/<file>, relative to the checkout) applied to what this layer installs."""
        return []

    def variables(self, m: Matrix, layer: "Layer") -> dict:
        """What this kind's template uses besides what every template gets (render.variables)."""
        return {}

    def title(self, m: Matrix, layer: "Layer") -> str:
        raise NotImplementedError

    def labels(self, m: Matrix, layer: "Layer") -> dict[str, str]:
        """This kind's own facts among the labels of its committed Dockerfile (labels.in_dockerfile)."""
        return {}

    def build_labels(self, m: Matrix, layer: "Layer", root: Path) -> dict[str, str]:
        """Labels that depend on more than the Dockerfile (labels.at_build)."""
        return {}

    def inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        """What besides its Dockerfile decides this layer (labels.inputs_digest): files, locks, hashes."""
        return {}

    # --- building -----------------------------------------------------------------------------------
    def downloads(self, m: Matrix, layer: "Layer") -> list[Download]:
        """Files besides the locked wheels that the build context takes from the download cache."""
        return []

    def needs_debs(self, m: Matrix, layer: "Layer", root: Path) -> bool:
        """Whether building this layer needs the .debs of its Debian lock in the cache."""
        return False

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        """Put what this kind's Dockerfile copies into the build context."""

    def reuse(self, m: Matrix, layer: "Layer", root: Path, existing) -> bool:
        """Whether the image already built can stand without asking Docker to build again."""
        return False

    def built(self, m: Matrix, layer: "Layer", image) -> None:
        """After a build: anything more than the layer's tag."""

    # --- publishing (`invoke publish`: the kinds with a smoke test) ---------------------------------
    def published(self, m: Matrix, layer: "Layer", registry: str) -> naming.Published:
        """The repository and tags this layer's image gets in `registry` (HOST[:PORT]/NAMESPACE)."""
        raise NotImplementedError(f"{self.name} images are not published")

    def build_command(self, layer: "Layer") -> str:
        """What builds this layer's image, for the message of a publish that misses it."""
        raise NotImplementedError

    # what to do when an immutable tag of this kind already names another image
    conflict_hint = "overwrite with --force"


class Locked(Kind):
    """A layer that pip-installs a lock file's wheels (hash-checked, from the cache)."""

    def lock(self, layer: "Layer") -> Path:
        return lock_path(layer.arch.name, layer.flavour, self.lock_stem(layer))

    def lock_stem(self, layer: "Layer") -> str:
        return layer.name

    def lock_inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        """What the lock is resolved from; its hash goes in the lock header."""
        raise NotImplementedError

    def resolve(self, values: dict, target: lock.Target) -> list[lock.Wheel]:
        raise NotImplementedError

    def build_labels(self, m: Matrix, layer: "Layer", root: Path) -> dict[str, str]:
        return {labels.LOCK: fetch.sha256_of(root / layer.lock)}

    def inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        return {"lock": fetch.sha256_of(root / layer.lock),
                "patches": {p.name: fetch.sha256_of(root / p) for p in self.patches(m, layer)}}

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        ctx.add_file("lock.txt", root / layer.lock)
        for wheel in lock.LockFile.read(root / layer.lock).wheels:
            path = fetch.cached(wheel)
            if not path.exists():
                raise InputError(f"{wheel.filename} is not in the cache ({path.parent})", hint="run `invoke fetch`")
            ctx.add_file(f"wheels/{wheel.filename}", path, sha256=wheel.sha256)


def lock_path(arch: str, flavour: str, stem: str) -> Path:
    return Path("locks") / arch / flavour / f"{stem}.txt"


class Base(Kind):
    name = "base"

    def entry(self, m: Matrix, model: str, flavour: str) -> str:
        return m.flavours[flavour].base

    def flavour(self, flavour: str) -> None:
        return None

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        return naming.base_image(m, name, arch)

    def cell(self, layer: "Layer") -> str:
        return f"base/{layer.name}-{layer.arch.name}"

    def debian_lock(self, layer: "Layer") -> Path:
        return debian.lock_path(layer.name, layer.arch)

    def title(self, m: Matrix, layer: "Layer") -> str:
        return f"Debian {m.bases[layer.name].release} base ({layer.arch.name})"

    def labels(self, m: Matrix, layer: "Layer") -> dict[str, str]:
        base = m.bases[layer.name]
        return {labels.BASE_RELEASE: base.release, labels.BASE_PACKAGES: ",".join(base.packages)}

    def build_labels(self, m: Matrix, layer: "Layer", root: Path) -> dict[str, str]:
        return {labels.BASE_INPUTS: rootfs.inputs_sha256(m, layer.name, layer.arch, root)}

    def inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        return {"rootfs": rootfs.inputs_sha256(m, layer.name, layer.arch, root)}

    def needs_debs(self, m: Matrix, layer: "Layer", root: Path) -> bool:
        return not rootfs.rootfs_path(m, layer.name, layer.arch, root).exists()   # until the rootfs is cached

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        with ui.step(f"bootstrap Debian {m.bases[layer.name].release} rootfs for {layer.arch.name}"):
            ctx.add_file("rootfs.tar", rootfs.bootstrap(m, layer.name, layer.arch, native, ui.detail, root))

    def reuse(self, m: Matrix, layer: "Layer", root: Path, existing) -> bool:
        # Bases are bootstrapped once, and again only when their inputs in matrix.yaml change
        # (or on `invoke base --force`): a bootstrap is minutes, under emulation many.
        inputs = self.build_labels(m, layer, root)[labels.BASE_INPUTS]
        return (existing.labels or {}).get(labels.BASE_INPUTS) == inputs

    def built(self, m: Matrix, layer: "Layer", image) -> None:
        dated = naming.base_dated_image(m, layer.name, layer.arch.name, datetime.date.today().strftime("%Y%m%d"))
        image.tag(*dated.rsplit(":", 1))


class Framework(Locked):
    name = "paddle"

    def entry(self, m: Matrix, model: str, flavour: str) -> str:
        return flavour

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        return naming.paddle_image(m, flavour, arch)

    def cell(self, layer: "Layer") -> str:
        return f"paddle/{layer.flavour}-{layer.arch.name}"

    def lock_stem(self, layer: "Layer") -> str:
        return "paddle"

    def runtime(self, m: Matrix, layer: "Layer"):
        """The flavour's XPU runtime (XRE), or None (CPU flavours)."""
        name = m.flavours[layer.flavour].runtime
        return m.runtimes[name] if name else None

    def variables(self, m: Matrix, layer: "Layer") -> dict:
        runtime = self.runtime(m, layer)
        if runtime is None:
            return {"runtime": None}
        return {"runtime": runtime, "archive": runtime.archives[layer.arch.name].filename,
                "xpu_dir": layout.xpu_dir(runtime.version)}

    def title(self, m: Matrix, layer: "Layer") -> str:
        return f"PaddlePaddle {m.paddle_version(layer.flavour, layer.arch.name)} {layer.flavour} ({layer.arch.name})"

    def labels(self, m: Matrix, layer: "Layer") -> dict[str, str]:
        runtime = self.runtime(m, layer)
        if runtime is None:
            return {}
        return {labels.XPU_RUNTIME_VERSION: runtime.version, labels.XPU_CHIPS: ",".join(runtime.chips),
                labels.XPU_SMI: runtime.smi}

    def lock_inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        flavour = m.flavours[layer.flavour]
        reqs = [flavour.paddle[layer.arch.name], *flavour.requirements]
        values = {"cell": layer.cell, "target": lock.Target.of(m, layer).__dict__, "requirements": reqs}
        wheel = flavour.wheels.get(layer.arch.name)
        if wheel:       # only then, so the CPU locks' inputs (and hashes) stay as they were
            values.update(wheel=wheel.model_dump(), dependencies_of=flavour.dependencies_of)
        if flavour.index:
            values.update(index=flavour.index)
        if flavour.no_deps:
            values.update(no_deps=list(flavour.no_deps))
        return values

    def resolve(self, values: dict, target: lock.Target) -> list[lock.Wheel]:
        if "wheel" in values:
            wheels = lock.direct_wheel(values, target)
        else:
            wheels = lock.pip_resolve(values["requirements"], target, index=values.get("index"))
        if values.get("no_deps"):
            wheels += lock.pip_resolve(values["no_deps"], target, no_deps=True)
        return wheels

    def downloads(self, m: Matrix, layer: "Layer") -> list[Download]:
        runtime = self.runtime(m, layer)
        return [runtime.archives[layer.arch.name]] if runtime else []

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        super().add_context(ctx, m, layer, root, native)
        for archive in self.downloads(m, layer):
            path = fetch.cached(archive, cache.downloads())
            if not path.exists():
                raise InputError(f"{archive.filename} (XPU runtime) is not in the cache ({path.parent})",
                                 hint="run `invoke fetch`")
            ctx.add_file(f"runtime/{archive.filename}", path, sha256=archive.sha256)


class Suite(Locked):
    name = "suite"

    def entry(self, m: Matrix, model: str, flavour: str) -> str:
        return m.models[model].suite

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        return naming.suite_image(m, name, flavour, arch)

    def variables(self, m: Matrix, layer: "Layer") -> dict:
        return {"suite": m.suites[layer.name], "suite_dir": layout.suite_dir(layer.name)}

    def patches(self, m: Matrix, layer: "Layer") -> list[Path]:
        return [patch_path(layer.name, p) for p in m.suites[layer.name].patches]

    def title(self, m: Matrix, layer: "Layer") -> str:
        return (f"{layer.name} {m.suites[layer.name].version} on Paddle "
                f"{m.paddle_version(layer.flavour, layer.arch.name)} {layer.flavour} ({layer.arch.name})")

    def labels(self, m: Matrix, layer: "Layer") -> dict[str, str]:
        return {labels.SUITE: layer.name, labels.SUITE_VERSION: m.suites[layer.name].version}

    def lock_inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        suite = m.suites[layer.name]
        # The framework's pins fix what the suite's requirements resolve against.
        values = {"cell": layer.cell, "target": lock.Target.of(m, layer).__dict__,
                  "requirements": list(suite.requirements), "suite": suite.requirement(layer.name),
                  "framework": framework_pins(m, layer, root)}
        if suite.no_deps:   # only then: the other suites' inputs (and lock hashes) stay as they were
            values.update(no_deps=list(suite.no_deps), build_tools=list(lock.BUILD_TOOLS))
        return values

    def resolve(self, values: dict, target: lock.Target) -> list[lock.Wheel]:
        # The suite's own pins are stale or conflicting, so it is resolved alone (no deps) and what it
        # imports is resolved with the framework's pins fixed; the framework's wheels are not repeated.
        framework = {canonicalize_name(p.split("==")[0]) for p in values["framework"]}
        deps = lock.pip_resolve(values["requirements"] + values["framework"], target) if values["requirements"] else []
        no_deps = values.get("no_deps", [])
        exact = {canonicalize_name(p.split("==")[0]) for p in no_deps}   # their pins win over any dep's
        wheels = [w for w in deps if w.name not in framework | exact]
        wheels += lock.pip_resolve([values["suite"]], target, no_deps=True)
        if no_deps:
            wheels += lock.pip_resolve(no_deps, target, no_deps=True, sdists=True)
            have = {w.name for w in wheels} | framework
            tools = [t for t in values["build_tools"] if canonicalize_name(t) not in have]
            wheels += lock.pip_resolve(tools, target, no_deps=True) if tools else []
        return wheels

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        super().add_context(ctx, m, layer, root, native)
        for patch in self.patches(m, layer):
            ctx.add_file(f"patches/{patch.name}", root / patch)


def recipe_json(m: Matrix, model: str) -> bytes:
    """The model's recipes as the entrypoint reads them (/opt/kunlun/recipe.json, see
    entrypoints/kunlun_train/recipe.py): named recipes in the matrix's order (the first is the
    default) and the smoke overrides."""
    spec = m.models[model]
    bundle = {"model": model, "title": spec.title, "task": spec.task, "suite": spec.suite}
    if spec.input_size:
        bundle["input_size"] = spec.input_size.model_dump(exclude_none=True)
    recipe = {"Bundle": bundle,
              "recipes": m.recipes(model), "smoke": spec.smoke}
    return (json.dumps(recipe, indent=2) + "\n").encode()


class Model(Kind):
    name = "model"
    smoke = Smoke(("--steps", "1"), "train 1 step", "loss_finite", labels.SMOKE_PASSED)
    conflict_hint = "bump the bundle version in matrix.yaml, or overwrite with --force"

    def entry(self, m: Matrix, model: str, flavour: str) -> str:
        return model

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        return naming.model_image(m, name, flavour, arch)

    def variables(self, m: Matrix, layer: "Layer") -> dict:
        model = m.models[layer.name]
        return {"model": model, "suite": m.suites[model.suite]}

    def title(self, m: Matrix, layer: "Layer") -> str:
        return f"{m.models[layer.name].title} training, {layer.flavour} ({layer.arch.name})"

    def labels(self, m: Matrix, layer: "Layer") -> dict[str, str]:
        model = m.models[layer.name]
        return {labels.MODEL: layer.name, labels.SUITE: model.suite, labels.SUITE_VERSION: m.suites[model.suite].version}

    def build_labels(self, m: Matrix, layer: "Layer", root: Path) -> dict[str, str]:
        """What the committed Dockerfile cannot know: the locks' hashes, the description and the commit."""
        spec, suite = m.models[layer.name], layer.parent
        return {
            labels.DESCRIPTION:
                f"Trains {spec.title} ({spec.task}, {spec.suite} {m.suites[spec.suite].version}) with PaddlePaddle "
                f"{m.paddle_version(layer.flavour, layer.arch.name)} on {device(m, layer.flavour)}; "
                f"`docker run IMAGE --help` lists the options",
            labels.LICENSES: labels.LICENSE,
            labels.lock_of("paddle"): fetch.sha256_of(root / suite.parent.lock),
            labels.lock_of(spec.suite): fetch.sha256_of(root / suite.lock),
        } | labels.commit(root)

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        ctx.add_tree("entrypoints", root / "entrypoints")
        ctx.add_bytes("recipe.json", recipe_json(m, layer.name))

    def inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        return context_files(self, m, layer, root)

    def published(self, m: Matrix, layer: "Layer", registry: str) -> naming.Published:
        return naming.published_model(m, registry, layer.name, layer.flavour, layer.arch.name)

    def build_command(self, layer: "Layer") -> str:
        return f"invoke build --arch {layer.arch.name} --model {layer.name} --flavour {layer.flavour}"


def context_files(kind: Kind, m: Matrix, layer: "Layer", root: Path) -> dict:
    """What a layer built from files of this checkout (or an export) is decided by: each file's sha256."""
    ctx = BuildContext(0)
    kind.add_context(ctx, m, layer, root, layer.arch)
    return {"files": {name: hashlib.sha256(data.data if data.data is not None else data.path.read_bytes()).hexdigest()
                      for name, (data, _) in sorted(ctx.sources().items())}}


def framework_pins(m: Matrix, layer: "Layer", root: Path) -> list[str]:
    """The framework lock's pins a layer on it resolves against, less its no_deps packages (resolved
    with their dependencies they would drag in what the framework never installs)."""
    parent = lock.LockFile.read(root / FRAMEWORK.lock(layer))
    alone = {canonicalize_name(p.split("==")[0]) for p in m.flavours[layer.flavour].no_deps}
    return sorted(p for p in parent.pins() if canonicalize_name(p.split("==")[0]) not in alone)


class Serving(Suite):
    """A suite as its serving images need it: the suite without its dependencies, with its patches, and
    only what its predict route imports (the suite's `serving` list in matrix.yaml, each at the version
    the suite's own lock pins, so a served answer comes from the training image's code). The suite
    layer's template variables, patches, labels and context; its own lock, image and title."""
    name = "serving"

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        return naming.serving_image(m, name, flavour, arch)

    def cell(self, layer: "Layer") -> str:
        return f"{layer.name}-serving/{layer.flavour}-{layer.arch.name}"

    def lock_stem(self, layer: "Layer") -> str:
        return f"{layer.name}-serving"

    def title(self, m: Matrix, layer: "Layer") -> str:
        return (f"{layer.name} {m.suites[layer.name].version} for serving, on Paddle "
                f"{m.paddle_version(layer.flavour, layer.arch.name)} {layer.flavour} ({layer.arch.name})")

    def lock_inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        suite = m.suites[layer.name]
        trained = {w.name: w.version for w in lock.LockFile.read(root / lock_path(layer.arch.name, layer.flavour, layer.name)).wheels}
        missing = [name for name in suite.serving or [] if canonicalize_name(name) not in trained]
        if missing:
            raise InputError(f"suites.{layer.name}.serving: {', '.join(missing)} not in the suite's lock",
                             hint="a serving requirement is something the suite imports: add it to its requirements")
        return {"cell": layer.cell, "target": lock.Target.of(m, layer).__dict__,
                "requirements": [f"{name}=={trained[canonicalize_name(name)]}" for name in suite.serving or []],
                "suite": suite.requirement(layer.name), "framework": framework_pins(m, layer, root)}


class Package(Kind):
    """One exported model behind the server: the entrypoint and the export's files at
    layout.PACKAGED_MODEL, `serve` as the command. Its committed Dockerfile is one per suite x arch x
    flavour (nothing in it names the model); the model, its files' sha256s and the run it came from are
    build labels, and its tag is the files' digest (naming.packaged_image). Its smoke test is one
    inference through the server (`serve --self-test`); under emulation Paddle's import and the
    predictor's build are minutes, hence the timeouts."""
    name = "package"
    smoke = Smoke(("serve", "--self-test", "--self-test-timeout", "900"), "1 inference through the server",
                  "passed", labels.SMOKE_SERVED, timeout=960)
    # Its tags name the export, not the bundle's version: the same export packaged on another commit meets them.
    conflict_hint = "the same export was published from another commit or build; overwrite with --force"

    def entry(self, m: Matrix, model: str, flavour: str) -> str:
        return model

    def image(self, m: Matrix, name: str, flavour: str, arch: str) -> str:
        return naming.packaged_image(m, name, "0" * 12, flavour, arch)   # chain.package_layer names the digest

    def cell(self, layer: "Layer") -> str:
        return f"{layer.parent.name}-package/{layer.flavour}-{layer.arch.name}"   # one per suite: its FROM

    def version(self, m: Matrix, layer: "Layer") -> str:
        return naming.model_tag(m, layer.flavour, layer.arch.name)

    def variables(self, m: Matrix, layer: "Layer") -> dict:
        return {"model_dir": layout.PACKAGED_MODEL}

    def title(self, m: Matrix, layer: "Layer") -> str:
        return f"Serving image of one exported model, {layer.flavour} ({layer.arch.name})"

    def build_labels(self, m: Matrix, layer: "Layer", root: Path) -> dict[str, str]:
        from . import packaging   # the export's facts
        export = packaging.Export.read(layer.export, layer.name)
        spec = m.models[layer.name]
        serving = layer.parent
        return {
            labels.DESCRIPTION:
                f"Serves {spec.title} ({spec.task}) exported by {layer.name}'s training image, with Paddle "
                f"Inference {m.paddle_version(layer.flavour, layer.arch.name)} on {device(m, layer.flavour)}, "
                f"over the Open Inference Protocol on port 8000; `docker run IMAGE --help` lists the options",
            labels.LICENSES: labels.LICENSE,
            labels.MODEL: layer.name, labels.SUITE: spec.suite, labels.SUITE_VERSION: m.suites[spec.suite].version,
            labels.MODEL_FILES: json.dumps(export.files, sort_keys=True, separators=(",", ":")),
            labels.MODEL_DIGEST: export.digest,
            **({labels.MODEL_TRAINED: json.dumps(export.trained, sort_keys=True, separators=(",", ":"))}
               if export.trained else {}),
            labels.lock_of("paddle"): fetch.sha256_of(root / serving.parent.lock),
            labels.lock_of(serving.kind.lock_stem(serving)): fetch.sha256_of(root / serving.lock),
        } | labels.commit(root)

    def add_context(self, ctx: BuildContext, m: Matrix, layer: "Layer", root: Path, native: "Arch") -> None:
        ctx.add_tree("entrypoints", root / "entrypoints")
        if layer.export is not None:
            ctx.add_tree("model", layer.export)

    def inputs(self, m: Matrix, layer: "Layer", root: Path) -> dict:
        return context_files(self, m, layer, root)

    def published(self, m: Matrix, layer: "Layer", registry: str) -> naming.Published:
        from . import packaging   # the export's digest
        digest = packaging.Export.read(layer.export, layer.name).digest
        return naming.published_serving(m, registry, layer.name, digest, layer.flavour, layer.arch.name)

    def build_command(self, layer: "Layer") -> str:
        return (f"invoke package {layer.name} --export {layer.export} --arch {layer.arch.name} "
                f"--flavour {layer.flavour}")


def device(m: Matrix, flavour: str) -> str:
    """What a flavour trains on, in words: 'CPU' or 'Kunlun XPU (XRE 4.31.0)'."""
    runtime = m.flavours[flavour].runtime
    return f"Kunlun XPU (XRE {m.runtimes[runtime].version})" if runtime else "CPU"


BASE, FRAMEWORK, SUITE, MODEL, SERVING, PACKAGE = Base(), Framework(), Suite(), Model(), Serving(), Package()
FRAMEWORK.parent, SUITE.parent, MODEL.parent, SERVING.parent, PACKAGE.parent = BASE, FRAMEWORK, SUITE, FRAMEWORK, SERVING
KINDS = (BASE, FRAMEWORK, SUITE, MODEL, SERVING, PACKAGE)   # parents first
