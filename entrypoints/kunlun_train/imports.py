"""A suite's serve-time modules without its package inits.

`import paddleclas` runs paddleclas/__init__.py, which imports the whole suite (its trainer, losses,
gallery builder, faiss, requests, ...); `import ppdet` and `import paddleseg` do the same. What a
predict route runs (the suite's deploy pre- and post-processing) needs a few of those modules only.
`without_init("ppdet", "ppdet.data")` puts each named package in sys.modules as an empty package
whose submodules import as usual, so `from ppdet.data.transform import operators` runs operators.py
and what it imports, not ppdet/__init__.py. That is what lets a serving image (`invoke package`)
carry only what serving imports.

Only `serve` calls it, before any suite import; `train`, `eval`, `export` and `predict` import the
suites whole, and the predict route's tests check that both give the same answers."""
from __future__ import annotations

import importlib.util
import sys

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
