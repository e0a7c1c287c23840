"""templates/ + matrix.yaml -> dockerfiles/. Rendering is a pure function of its inputs (same
input, same bytes); `check()` reports files that rendering would change, add or delete."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import layout, naming
from ..matrix import Matrix
from . import labels
from .chain import Layer, every_layer

OUTPUT_DIR = Path("dockerfiles")


def _environment(templates: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,   # a typo in a template is an error, not an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def variables(m: Matrix, layer: Layer) -> dict:
    """Everything a template may use for one layer: what every layer has, and what its kind adds."""
    return {
        "layer": layer,
        # Names as the matrix declares them: the build swaps the parent for the image id it built.
        "image": naming.declared(m, layer.image),
        "parent": naming.declared(m, layer.parent.image) if layer.parent else None,
        "base": m.bases[layer.base],
        "venv": layout.VENV,
        "user": layout.USER,
        "paddle_version": m.paddle_version(layer.flavour, layer.arch.name) if layer.flavour else None,
        "labels": labels.instruction(labels.in_dockerfile(m, layer), sort=False),
        **layer.kind.variables(m, layer),
    }


def render_layer(m: Matrix, layer: Layer, root: Path = Path(".")) -> str:
    return _environment(root / "templates").get_template(layer.template).render(variables(m, layer))


def render_all(m: Matrix, root: Path = Path(".")) -> dict[Path, str]:
    """Every Dockerfile of every buildable cell, keyed by path relative to root."""
    env = _environment(root / "templates")
    return {layer.dockerfile: env.get_template(layer.template).render(variables(m, layer))
            for layer in every_layer(m)}


@dataclass(frozen=True)
class Drift:
    path: Path
    change: str   # "changed", "missing" (would be added) or "stale" (would be deleted)


def check(rendered: dict[Path, str], root: Path = Path(".")) -> list[Drift]:
    drift = []
    for rel, text in sorted(rendered.items()):
        path = root / rel
        if not path.exists():
            drift.append(Drift(rel, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            drift.append(Drift(rel, "changed"))
    for path in sorted((root / OUTPUT_DIR).rglob("*.Dockerfile")):
        if path.relative_to(root) not in rendered:
            drift.append(Drift(path.relative_to(root), "stale"))
    return drift


def write(rendered: dict[Path, str], root: Path = Path(".")) -> list[Drift]:
    """Bring dockerfiles/ in line with the rendering; returns what changed."""
    drift = check(rendered, root)
    for d in drift:
        path = root / d.path
        if d.change == "stale":
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rendered[d.path], encoding="utf-8")
    return drift
