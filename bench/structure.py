"""The shape of a Python package, read from its source with `ast` (nothing is imported or run):

  lines      lines per module, largest first
  functions  the largest functions and methods, by lines
  circles    import circles: modules that import each other, directly or round a loop
  upward     imports that go up the layering (a lower layer importing a higher one), by package

An import counts wherever it stands (top of the file or inside a function) unless it is under
`if TYPE_CHECKING:` (it never runs), and importing
`pkg.sub.mod` counts as importing `pkg.sub` too, since Python runs `pkg/sub/__init__.py` first.

Run from the repository root: `python3 bench/structure.py [PACKAGE] [--most N]` (default kunlun_bundle).
The layering is LAYERS below, lowest first; a module's layer is that of its longest matching prefix.
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# kunlun_bundle's layering as its __init__.py describes it, lowest first.
LAYERS = [
    ["kunlun_bundle", "kunlun_bundle.errors", "kunlun_bundle.ui", "kunlun_bundle.arch", "kunlun_bundle.matrix",
     "kunlun_bundle.naming", "kunlun_bundle.layout", "kunlun_bundle.overview"],
    ["kunlun_bundle.host"],
    ["kunlun_bundle.containers"],
    ["kunlun_bundle.images"],
    ["kunlun_bundle.training", "kunlun_bundle.publishing"],
    ["kunlun_bundle.doctor"],
]


def modules(package: str) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def runtime_nodes(tree: ast.AST):
    """Every node, except those under `if TYPE_CHECKING:` (imports for type hints only, never run)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for orelse in child.orelse for n in [orelse, *runtime_nodes(orelse)])
            continue
        yield child
        yield from runtime_nodes(child)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports (and the packages Python initialises on the way)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)   # `from pkg import module`
    reached = set()
    for target in targets:
        parts = target.split(".")
        reached.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {t for t in reached if t in known and t != name and not name.startswith(t + ".")}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(name: str) -> int | None:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


def package(name: str) -> str:
    """The subpackage a module belongs to (the package itself for a top-level module)."""
    return ".".join(name.split(".")[:2])


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, qualified name) for every function and method of a module."""
    found = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((child.end_lineno - child.lineno + 1, f"{prefix}{child.name}"))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
    walk(ast.parse(path.read_text(), str(path)), "")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="kunlun_bundle")
    parser.add_argument("--most", type=int, default=10, help="how many modules and functions to list")
    args = parser.parse_args()
    found = modules(args.package)
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}

    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in found.values()), reverse=True)
    print(f"modules / lines: {len(sizes)} / {sum(n for n, _ in sizes)}")
    print("largest modules:", ", ".join(f"{p} {n}" for n, p in sizes[: args.most]))
    largest = sorted(((n, f"{p.relative_to(ROOT)}:{f}") for p in found.values() for n, f in functions(p)), reverse=True)
    print("largest functions:", ", ".join(f"{f} {n}" for n, f in largest[: args.most]))

    loops = circles(graph)
    print(f"import circles: {len(loops)}")
    for loop in loops:
        print(f"  {len(loop)} modules: {', '.join(loop)}")
    upward = sorted({(a, package(b)) for a, targets in graph.items() for b in targets
                     if None not in (layer(a), layer(b)) and layer(a) < layer(b)})
    print(f"upward imports (module -> package): {len(upward)}")
    for a, b in upward:
        print(f"  {a} -> {b}")


if __name__ == "__main__":
    main()
