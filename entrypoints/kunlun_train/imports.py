"""A suite's serve-time modules without its package inits.

`import paddleclas` runs paddleclas/__init__.py, which imports the whole suite (its trainer, losses,
gallery builder, faiss, requests, ...); `import ppdet` and `import paddleseg` do the same. What a
predict route runs (the suite's deploy pre- and post-processing) needs a few of those modules only.
`without_init("ppdet", "ppdet.data")` puts each named package in sys.modules as an empty package
whose submodules import as usual, so `from ppdet.data.transform import operators` runs operators.py
and what it imports, not ppdet/__init__.py. That is what lets a serving image (`invoke package`)
carry only what serving imports.

`unused("scipy", "scipy.ndimage")` is the other half: PaddleDetection's batch operators and PaddleSeg's
transforms import scipy.ndimage at module level for training-time targets and edge maps that no
deploy pipeline calls. Where SciPy is not installed (a serving image: it would be half of the serving
layer), each name is a stand-in whose functions raise, naming what is missing, only when called.

Only `serve` calls these, before any suite import; `train`, `eval`, `export` and `predict` import the
suites whole, and the predict route's tests check that both give the same answers."""
from __future__ import annotations

import importlib.util
import sys
import types

from .errors import TrainError


def without_init(*packages: str) -> None:
    """Make each package (parents first) importable without running its __init__; a package already
    imported stays as it is."""
    for package in packages:
        if package in sys.modules:
            continue
        spec = importlib.util.find_spec(package)
        if spec is None or spec.submodule_search_locations is None:
            raise TrainError(f"{package}: not an installed package (is this image's suite the export's?)")
        module = importlib.util.module_from_spec(spec)   # __path__ set, __init__ not executed
        sys.modules[package] = module
        parent, _, name = package.rpartition(".")
        if parent:
            setattr(sys.modules[parent], name, module)


def unused(*modules: str) -> None:
    """Where a module (parents first) is not installed, a stand-in for it: importing names from it
    works, calling one raises TrainError naming the module; an installed module is left as it is."""
    if not modules or importlib.util.find_spec(modules[0].split(".")[0]) is not None:
        return
    for name in modules:
        module = sys.modules.setdefault(name, _Absent(name))
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)


class _Absent(types.ModuleType):
    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def missing(*_args, **_kwargs):
            raise TrainError(f"{self.__name__}.{attr}: {self.__name__.split('.')[0]} is not in this serving image "
                             "(what the export's pre-processing was measured to need is); serve this export from "
                             "the training image (`invoke serve`)")
        return missing

