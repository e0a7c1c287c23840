"""The suites' operator signatures, read from their locked wheels, so that a recipe's operator
arguments are checked like the rest of the recipe: `./kunlun list` on the host and `-o` in the image
refuse `PadBatch: {pad_to_strid: 32}` or `random_size: [1, 2]` where the operator takes true or false,
instead of the run failing in a constructor an hour later.

The wheels' source is parsed, not imported (no Paddle on the host): every class its suite registers
(`@register_op`, `@manager.*.add_component`) and its `__init__` arguments, each with the kind its
default has (a bool, a number, a string, a list, a mapping; anything else: any value). A registered
factory function (`def ResNet50_vd(**args): return ResNet_vd(layers=50, **args)`) takes its class's
arguments less the ones it fixes. The result is committed (entrypoints/kunlun_train/configs/
signatures.json, read by entrypoints/kunlun_train/schema.py); `python -m kunlun_bundle.images.signatures`
writes it anew from the locked wheels, and tests/test_signatures.py fails when it has drifted."""
from __future__ import annotations

import ast
import fnmatch
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "entrypoints" / "kunlun_train" / "configs" / "signatures.json"

# Per suite: catalog name -> the wheel's files that hold those operators (fnmatch patterns).
SOURCES = {
    "paddledet": {"operators": ["ppdet/data/transform/operators.py", "ppdet/data/transform/batch_operators.py"]},
    "paddleseg": {"transforms": ["paddleseg/transforms/transforms.py"],
                  "models": ["paddleseg/models/*.py"],
                  "backbones": ["paddleseg/models/backbones/*.py"],
                  "losses": ["paddleseg/models/losses/*.py"]},
}
REGISTERS = ("register_op", "add_component")


def _kind(node: ast.expr | None) -> str:
    """The kind of value a default stands for; a required argument (no default) takes any."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    if isinstance(node, ast.Constant):
        value = node.value
        return ("bool" if isinstance(value, bool) else "float" if isinstance(value, (int, float))
                else "str" if isinstance(value, str) else "any")
    if isinstance(node, (ast.Tuple, ast.List)):
        return "list"
    if isinstance(node, ast.Dict):
        return "dict"
    return "any"


def _arguments(function: ast.FunctionDef) -> dict:
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = {a.arg: _kind(d) for a, d in zip(positional, defaults) if a.arg not in ("self", "cls")}
    params.update({a.arg: _kind(d) for a, d in zip(args.kwonlyargs, args.kw_defaults)})
    return {"params": params, "open": args.kwarg is not None}


def _registered(node: ast.ClassDef | ast.FunctionDef) -> bool:
    return any(any(word in ast.unparse(d) for word in REGISTERS) for d in node.decorator_list)


def module_signatures(source: str) -> dict[str, dict]:
    """{name: {"params": {argument: kind}, "open": takes **kwargs}} of the registered operators of one module."""
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def of_class(node: ast.ClassDef) -> dict:
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is not None:
            return _arguments(init)
        base = next((classes[b.id] for b in node.bases if isinstance(b, ast.Name) and b.id in classes), None)
        return of_class(base) if base is not None else {"params": {}, "open": True}   # unknown base: unchecked

    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and _registered(node):
            found[node.name] = of_class(node)
        elif isinstance(node, ast.FunctionDef) and _registered(node):
            call = next((c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                         and c.func.id in classes), None)
            if call is None:
                found[node.name] = _arguments(node)
                continue
            target = of_class(classes[call.func.id])
            fixed = {k.arg for k in call.keywords if k.arg}
            found[node.name] = {"params": {k: v for k, v in target["params"].items() if k not in fixed},
                                "open": target["open"]}
    return found


def wheel_signatures(wheel: Path, catalogs: dict[str, list[str]]) -> dict[str, dict]:
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(zf.namelist())
        out = {}
        for catalog, patterns in catalogs.items():
            merged: dict[str, dict] = {}
            for name in names:
                if any(fnmatch.fnmatch(name, p) for p in patterns):
                    merged.update(module_signatures(zf.read(name).decode("utf-8")))
            out[catalog] = dict(sorted(merged.items()))
    return out


def build(wheels: dict[str, Path]) -> dict:
    """{suite: {catalog: {operator: signature}}} from each suite's wheel."""
    return {suite: wheel_signatures(wheels[suite], SOURCES[suite]) for suite in SOURCES}


def render(catalog: dict) -> str:
    return json.dumps({"generated": "by kunlun_bundle/images/signatures.py from the locked suite wheels; "
                                    "do not edit", **catalog}, indent=1, sort_keys=False) + "\n"


def locked_wheels(arch: str = "x86_64") -> dict[str, Path]:
    """Each suite's locked wheel (pure Python, the same for every arch), fetched into the cache."""
    from kunlun_bundle.images import fetch, lock
    from kunlun_bundle import matrix as matrix_module
    m = matrix_module.load(ROOT / "matrix.yaml")
    out = {}
    for suite in SOURCES:
        package = m.suites[suite].package or suite
        wheel = next(w for w in lock.LockFile.read(ROOT / f"locks/{arch}/cpu/{suite}.txt").wheels if w.name == package)
        [out[suite]] = fetch.fetch([wheel])
    return out


if __name__ == "__main__":
    OUTPUT.write_text(render(build(locked_wheels())))
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
