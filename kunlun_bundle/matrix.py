"""matrix.yaml: its schema (pydantic models with unknown keys forbidden), the cross-reference
rules a schema cannot express, and error messages that name file:line, the key path and what
was expected. `load()` is the only way the rest of the bundle reads the matrix."""
from __future__ import annotations

import os
import re
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .arch import KEYWORDS, Arch, Archs
from .errors import MatrixError

NAME = r"^[a-z0-9][a-z0-9._-]*$"   # usable in image names, tags and file names
NAMESPACE_ENV = "KUNLUN_NAMESPACE"
SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Status(str, Enum):
    ready = "ready"       # rendered, locked and built
    planned = "planned"   # declared, shown by `invoke list`, not built yet


class Bundle(_Strict):
    namespace: str = Field(pattern=NAME)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")


class ArchSpec(_Strict):
    aliases: list[str] = []
    platform: str = Field(pattern=r"^linux/[a-z0-9/]+$")
    debian: str = Field(pattern=NAME)


class Base(_Strict):
    release: str = Field(pattern=NAME)
    mirror: str = Field(pattern=r"^https?://")
    python: str = Field(pattern=r"^\d+\.\d+$")
    glibc: str = Field(pattern=r"^\d+\.\d+$")
    source_date_epoch: int = Field(ge=0)
    packages: list[str] = Field(min_length=1)


class Download(_Strict):
    """A file fetched by URL and checked by sha256. A missing sha256 means not recorded yet: the
    file has never been seen by whoever maintains the matrix, so nothing can be built from it."""
    url: str = Field(pattern=r"^(https?|file)://")
    sha256: Optional[str] = Field(default=None, pattern=SHA256)

    @property
    def filename(self) -> str:
        from urllib.parse import unquote
        return unquote(self.url.rsplit("/", 1)[-1])


class Runtime(_Strict):
    """A Kunlun XPU runtime (XRE) release for one chip generation."""
    description: str
    chips: list[str] = Field(min_length=1)
    version: str = Field(pattern=r"^\d+(\.\d+)+$")
    smi: str = "xpu_smi"                  # the health tool in the archive's bin/ (P800: xpu-smi)
    archives: dict[str, Download]         # arch -> XRE archive (tar.gz with one top directory)


class Flavour(_Strict):
    description: str
    status: Status = Status.ready
    reason: Optional[str] = None
    base: str
    paddle: dict[str, str]          # arch -> pinned Paddle requirement
    requirements: list[str] = []
    runtime: Optional[str] = None   # an entry of `runtimes`, installed in the framework layer
    # Installed without their declared dependencies, pinned exactly: what they import is already in
    # the framework layer (VisualDL's log writer needs numpy, Pillow and protobuf; its dashboard
    # server's Flask, pandas and matplotlib are not needed to write logs).
    no_deps: list[str] = []
    # Where a Paddle build not on PyPI comes from: a package index (pip --extra-index-url), or a
    # direct wheel per arch. A direct wheel's dependencies are resolved from the PyPI project
    # `dependencies_of` at the same version (Paddle's device builds share the CPU build's).
    index: Optional[str] = Field(default=None, pattern=r"^https?://")
    wheels: dict[str, Download] = {}
    dependencies_of: Optional[str] = None


class Suite(_Strict):
    version: str
    status: Status = Status.ready
    reason: Optional[str] = None
    package: Optional[str] = None   # PyPI name when it differs from the suite's key
    requirements: list[str] = []
    # Reviewed fixes applied to the installed suite at image build (patches/<suite>/<file>),
    # in order; a patch that stops applying fails the build.
    patches: list[str] = []
    # Packages installed without their declared dependencies (what they import belongs in
    # `requirements`), pinned exactly: a stale wheel whose metadata drags in a heavy unused stack, or
    # a pure-Python project PyPI has only as source. The lock records the wheel for the target or,
    # when there is none, the upstream sdist, which the suite image builds offline (lock.BUILD_TOOLS).
    no_deps: list[str] = []
    # What the suite's predict route imports besides Paddle and the server, by project name, each at
    # the version this suite's lock pins: the serving layer (`invoke package`) installs the suite
    # without its dependencies plus these. None: the suite's models have no serving image.
    serving: Optional[list[str]] = None

    def requirement(self, name: str) -> str:
        return f"{self.package or name}=={self.version}"


class InputSize(_Strict):
    """The input sizes a model's architecture takes (Global.image_size, each side), checked with the
    recipe before Paddle starts (entrypoints/kunlun_train/schema.size_problems) instead of failing
    in a layer with a shape error."""
    min: Optional[int] = Field(None, ge=1)
    max: Optional[int] = Field(None, ge=1)
    multiple: Optional[int] = Field(None, ge=1)
    why: str                       # what in the architecture fixes it, for the error message


class Model(_Strict):
    title: str
    suite: str
    task: str
    archs: list[str] = Field(min_length=1)
    # Archs the model is not built for, each with the reason `invoke list` shows.
    excluded: dict[str, str] = {}
    status: Status = Status.ready
    reason: Optional[str] = None
    # Named training recipes, each the suite's upstream configuration in PaddleClas's layout
    # (sections Global, Arch, Optimizer, DataLoader, ...); the first is the default.
    recipes: dict[str, dict[str, dict[str, Any]]] = {}
    # What a default `docker run` (no dataset) changes in the recipe: a few small steps.
    smoke: dict[str, dict[str, Any]] = {}
    input_size: Optional[InputSize] = None


class Task(_Strict):
    """Recipe keys every model of a task shares (its suite's reader, loss, metric, file names)."""
    recipe: dict[str, dict[str, Any]] = {}


class Matrix(_Strict):
    bundle: Bundle
    archs: dict[str, ArchSpec] = Field(min_length=1)
    bases: dict[str, Base] = Field(min_length=1)
    runtimes: dict[str, Runtime] = {}
    flavours: dict[str, Flavour] = Field(min_length=1)
    suites: dict[str, Suite] = Field(min_length=1)
    tasks: dict[str, Task] = {}
    models: dict[str, Model] = Field(min_length=1)

    # Set by load(); not part of the file.
    path: Path = Field(default=Path("matrix.yaml"), exclude=True)
    # $KUNLUN_NAMESPACE: local images are tagged under it instead of bundle.namespace (several
    # checkouts, or test runs, on one Docker host). Rendered Dockerfiles always name bundle.namespace.
    namespace_override: Optional[str] = Field(default=None, exclude=True)

    @property
    def namespace(self) -> str:
        """The namespace local images are tagged under."""
        return self.namespace_override or self.bundle.namespace

    @property
    def arch_registry(self) -> Archs:
        return Archs([Arch(n, a.platform, a.debian, tuple(a.aliases)) for n, a in self.archs.items()])

    def ready_models(self) -> list[str]:
        return [n for n, m in self.models.items() if m.status is Status.ready]

    def ready_flavours(self) -> list[str]:
        return [n for n, f in self.flavours.items() if f.status is Status.ready]

    def paddle_version(self, flavour: str, arch: str) -> str:
        return str(Requirement(self.flavours[flavour].paddle[arch]).specifier).lstrip("=")

    def recipes(self, model: str) -> dict[str, dict]:
        """The model's named recipes as the image carries them: the task's shared keys under each."""
        shared = self.tasks[self.models[model].task].recipe
        return {name: _merge(shared, recipe) for name, recipe in self.models[model].recipes.items()}

    def servable(self, model: str) -> bool:
        """Whether `invoke package` can make a serving image of the model's exports."""
        return self.suites[self.models[model].suite].serving is not None

    def model_archs(self, model: str, flavour: str) -> list[str]:
        """Archs a model can be built for in a flavour: those it supports that the flavour pins Paddle for."""
        return [a for a in self.models[model].archs if a in self.flavours[flavour].paddle]


def _merge(base: dict, top: dict) -> dict:
    """The image's own recipe merge (entrypoints/kunlun_train/schema.py), so that the host checks the
    recipes exactly as the image will assemble them."""
    return recipe_schema().merge(base, top)


# --- loading -----------------------------------------------------------------------------

class _Source:
    """The parsed YAML plus the line of every key path, for messages."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: dict[tuple, int] = {}
        self.duplicates: list[tuple[tuple, int]] = []
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            self.data = self._build(loader, node, ()) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise MatrixError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
        finally:
            loader.dispose()

    def _build(self, loader, node, at: tuple):
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if key in out:
                    self.duplicates.append((at + (key,), key_node.start_mark.line + 1))
                out[key] = self._build(loader, value_node, at + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(loader, item, at + (i,)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    def where(self, at: tuple) -> str:
        for n in range(len(at), -1, -1):   # the nearest key that exists in the file
            if at[:n] in self.lines:
                return f"{self.path}:{self.lines[at[:n]]}"
        return str(self.path)


def _dotted(at: tuple) -> str:
    return ".".join(str(p) for p in at) or "(top level)"


def _fields_at(at: tuple) -> list[str]:
    """The keys the schema allows at a key path, for 'unknown key' messages."""
    cls: Any = Matrix
    for part in at:
        origin = typing.get_origin(cls)
        if origin is dict or origin is list:
            cls = typing.get_args(cls)[-1]
        elif origin is typing.Union:
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
            origin = typing.get_origin(cls)
            cls = typing.get_args(cls)[-1] if origin in (dict, list) else cls
        elif isinstance(cls, type) and issubclass(cls, BaseModel):
            field = cls.model_fields.get(str(part))
            if field is None:
                return []
            cls = field.annotation
        else:
            return []
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return [n for n, f in cls.model_fields.items() if not f.exclude]
    return []


def _schema_problems(exc: ValidationError) -> list[tuple[tuple, str]]:
    problems = []
    for err in exc.errors():
        at = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_fields_at(at[:-1]))
            problems.append((at, f"unknown key '{at[-1]}' (expected one of: {allowed})"))
        elif err["type"] == "missing":
            problems.append((at, "missing required key"))
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
            problems.append((at, f"{err['msg']}{shown}"))
    return problems


def _reference_problems(m: Matrix, root: Path = Path(".")) -> list[tuple[tuple, str]]:
    """Rules across sections: names that must exist, pins that must be exact, aliases that must be unique."""
    problems: list[tuple[tuple, str]] = []

    def one_of(names) -> str:
        return ", ".join(names)

    seen: dict[str, str] = {}
    for name, spec in m.archs.items():
        for i, alias in enumerate([name, *spec.aliases]):
            at = ("archs", name) if i == 0 else ("archs", name, "aliases", i - 1)
            if alias.lower() in KEYWORDS:
                problems.append((at, f"'{alias}' is a keyword (native, all), not usable as an arch name"))
            elif alias.lower() in seen:
                problems.append((at, f"'{alias}' already names arch '{seen[alias.lower()]}'"))
            seen[alias.lower()] = name

    for name, runtime in m.runtimes.items():
        for arch in runtime.archives:
            if arch not in m.archs:
                problems.append((("runtimes", name, "archives", arch),
                                 f"unknown arch '{arch}' (expected one of: {one_of(m.archs)})"))

    for name, flavour in m.flavours.items():
        if flavour.base not in m.bases:
            problems.append((("flavours", name, "base"),
                             f"unknown base '{flavour.base}' (expected one of: {one_of(m.bases)})"))
        if flavour.status is Status.ready and not flavour.paddle:
            problems.append((("flavours", name, "paddle"), "a ready flavour must pin Paddle for at least one arch"))
        for arch, req in flavour.paddle.items():
            at = ("flavours", name, "paddle", arch)
            if arch not in m.archs:
                problems.append((at, f"unknown arch '{arch}' (expected one of: {one_of(m.archs)})"))
            problems += _pinned(at, req)
        for i, req in enumerate(flavour.requirements):
            problems += _valid(("flavours", name, "requirements", i), req)
        for i, req in enumerate(flavour.no_deps):
            problems += _exact(("flavours", name, "no_deps", i), req)
        if flavour.runtime and flavour.runtime not in m.runtimes:
            problems.append((("flavours", name, "runtime"),
                             f"unknown runtime '{flavour.runtime}' (expected one of: {one_of(m.runtimes)})"))
        for arch, wheel in flavour.wheels.items():
            at = ("flavours", name, "wheels", arch)
            if arch not in flavour.paddle:
                problems.append((at, f"a wheel for '{arch}', which has no paddle pin in this flavour"))
            elif not flavour.dependencies_of:
                problems.append((("flavours", name), "direct wheels need `dependencies_of` (where their dependencies are resolved from)"))
        if flavour.status is Status.ready:
            # A ready flavour builds: every input it downloads must be pinned by hash.
            inputs = {("wheels", a): w for a, w in flavour.wheels.items()}
            if flavour.runtime in m.runtimes:
                inputs.update({("runtimes", a): d for a, d in m.runtimes[flavour.runtime].archives.items()
                               if a in flavour.paddle})
                for arch in flavour.paddle:
                    if arch not in m.runtimes[flavour.runtime].archives:
                        problems.append((("runtimes", flavour.runtime, "archives"),
                                         f"no runtime archive for '{arch}', which ready flavour '{name}' builds"))
            for (kind, arch), download in inputs.items():
                if download.sha256 is None:
                    at = ("flavours", name, "wheels", arch) if kind == "wheels" \
                        else ("runtimes", flavour.runtime, "archives", arch)
                    problems.append((at, f"no sha256 for {download.filename}, which ready flavour '{name}' needs "
                                         "(`invoke inputs --source DIR` prints it once you have the file)"))

    for name, suite in m.suites.items():
        for i, req in enumerate(suite.requirements):
            problems += _valid(("suites", name, "requirements", i), req)
        for i, req in enumerate(suite.no_deps):
            problems += _exact(("suites", name, "no_deps", i), req)
        for i, patch in enumerate(suite.patches):
            if not (root / patch_path(name, patch)).is_file():
                problems.append((("suites", name, "patches", i), f"no such file {patch_path(name, patch)}"))
        if suite.serving is not None and suite.no_deps:
            problems.append((("suites", name, "serving"), "a suite that builds sdists (no_deps) has no serving layer"))
        for i, req in enumerate(suite.serving or []):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", req):
                problems.append((("suites", name, "serving", i),
                                 f"'{req}': a project name only (its version is this suite's lock's pin)"))

    for name, model in m.models.items():
        if not _matches(NAME, name):
            problems.append((("models", name), "model names must be lower-case letters, digits, '.', '_' or '-'"))
        if model.suite not in m.suites:
            problems.append((("models", name, "suite"),
                             f"unknown suite '{model.suite}' (expected one of: {one_of(m.suites)})"))
        elif model.status is Status.ready and m.suites[model.suite].status is not Status.ready:
            problems.append((("models", name, "status"), f"model is ready but its suite '{model.suite}' is not"))
        for i, arch in enumerate(model.archs):
            if arch not in m.archs:
                problems.append((("models", name, "archs", i),
                                 f"unknown arch '{arch}' (expected one of: {one_of(m.archs)})"))
        for arch in model.excluded:
            if arch not in m.archs:
                problems.append((("models", name, "excluded", arch),
                                 f"unknown arch '{arch}' (expected one of: {one_of(m.archs)})"))
            elif arch in model.archs:
                problems.append((("models", name, "excluded", arch), "an arch cannot be both in archs and excluded"))
        if len(set(model.archs)) != len(model.archs):
            problems.append((("models", name, "archs"), "an arch is listed twice"))
        if model.task not in m.tasks:
            problems.append((("models", name, "task"), f"unknown task '{model.task}' (expected one of: {one_of(m.tasks)})"))
        if model.status is Status.ready and not model.recipes:
            problems.append((("models", name, "recipes"), "a ready model needs at least one recipe"))
        for recipe in model.recipes:
            if not _matches(NAME, recipe):
                problems.append((("models", name, "recipes", recipe),
                                 "recipe names must be lower-case letters, digits, '.', '_' or '-'"))
    return problems


def _recipe_problems(m: Matrix) -> list[tuple[tuple, str]]:
    """Each model's recipes (with the task's shared keys and the smoke overrides, as the image has them)
    against the task's recipe schema, the one the image checks -o overrides with. A problem is
    reported where the key is written: the model's recipe, its smoke, or the task's shared recipe."""
    problems = []
    for name, model in m.models.items():
        if model.task not in m.tasks:
            continue
        shared = m.tasks[model.task].recipe
        for recipe_name, recipe in model.recipes.items():
            # as run with a dataset, and as the smoke run (its overrides on top)
            merged, smoke_run = _merge(shared, recipe), _merge(_merge(shared, recipe), model.smoke)
            rule = model.input_size.model_dump(exclude_none=True) if model.input_size else None
            as_written = recipe_schema().problems(merged, model.task) + recipe_schema().size_problems(merged, rule, name)
            smoked = [(at, why) for at, why in recipe_schema().problems(smoke_run, model.task)
                      + recipe_schema().size_problems(smoke_run, rule, name) if _has(model.smoke, at)]
            for at, message in dict.fromkeys(as_written + smoked):
                if (at, message) in smoked:
                    where = ("models", name, "smoke", *at)
                elif _has(recipe, at):
                    where = ("models", name, "recipes", recipe_name, *at)
                else:
                    where = ("tasks", model.task, "recipe", *at)
                problems.append((where, message))
    return list(dict.fromkeys(problems))   # a shared key's problem once, not once per model


def _has(tree: dict, at: tuple) -> bool:
    for part in at:
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def recipe_schema():
    """The recipe schema the images use (entrypoints/kunlun_train/schema.py), loaded by path."""
    import importlib.util
    import sys
    name = "kunlun_train_recipe_schema"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "entrypoints" / "kunlun_train" / "schema.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def patch_path(suite: str, patch: str) -> Path:
    """Where a suite's patch file lives, relative to the matrix file."""
    return Path("patches") / suite / patch


def _matches(pattern: str, text: str) -> bool:
    import re
    return re.match(pattern, text) is not None


def _valid(at: tuple, req: str) -> list[tuple[tuple, str]]:
    try:
        Requirement(req)
    except InvalidRequirement as exc:
        return [(at, f"not a valid requirement '{req}': {exc}")]
    return []


def _pinned(at: tuple, req: str) -> list[tuple[tuple, str]]:
    bad = _valid(at, req)
    if bad:
        return bad
    spec = list(Requirement(req).specifier)
    if len(spec) != 1 or spec[0].operator != "==":
        return [(at, f"Paddle must be pinned exactly, like 'paddlepaddle==3.2.2' (got '{req}')")]
    return []


def _exact(at: tuple, req: str) -> list[tuple[tuple, str]]:
    bad = _valid(at, req)
    if bad:
        return bad
    spec = list(Requirement(req).specifier)
    if len(spec) != 1 or spec[0].operator != "==":
        return [(at, f"a package installed without its dependencies must be pinned exactly, like 'jieba==0.42.1' (got '{req}')")]
    return []


def load(path: str | Path = "matrix.yaml") -> Matrix:
    """Read and validate a matrix file; any problem raises MatrixError listing every problem found."""
    path = Path(path)
    if not path.is_file():
        raise MatrixError(f"{path}: no such file", hint="run tasks from the repository root")
    source = _Source(path)
    problems = [(at, f"duplicate key '{at[-1]}' (first defined at line {source.lines.get(at, '?')})")
                for at, _ in source.duplicates]
    if not isinstance(source.data, dict):
        raise MatrixError(f"{path}:1: expected a mapping of sections (bundle, archs, bases, flavours, suites, models)")
    matrix = None
    try:
        matrix = Matrix.model_validate(source.data)
    except ValidationError as exc:
        problems += _schema_problems(exc)
    if matrix is not None:
        problems += _reference_problems(matrix, path.parent)
        problems += _recipe_problems(matrix)
    if problems:
        lines = []
        for at, message in problems:
            where = next((f"{path}:{line}" for dup, line in source.duplicates if dup == at), source.where(at))
            lines.append(f"{where}: {_dotted(at)}: {message}")
        noun = "problem" if len(lines) == 1 else "problems"
        raise MatrixError(f"{path} has {len(lines)} {noun}:\n  " + "\n  ".join(lines))
    override = os.environ.get(NAMESPACE_ENV) or None
    if override and not _matches(NAME, override):
        raise MatrixError(f"${NAMESPACE_ENV}={override!r}: not a usable image namespace",
                          hint="lower-case letters, digits, '.', '_' or '-', e.g. kunlun-dev")
    return matrix.model_copy(update={"path": path, "namespace_override": override})
