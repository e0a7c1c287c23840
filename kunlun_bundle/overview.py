"""`invoke list`: the matrix as two tables. Models: suite, state (ready, or planned and why), archs
(and the ones excluded, with the reason), flavours, recipes and image tags, then which models have
serving images. Flavours: state, device, Paddle
pins and base."""
from __future__ import annotations

from . import naming, ui
from .matrix import Matrix, Status


def model_rows(m: Matrix) -> list[list[str]]:
    rows = []
    for name, model in m.models.items():
        suite = m.suites[model.suite]
        if model.status is Status.ready:
            tags = [naming.model_image(m, name, f, a) for f in m.ready_flavours() for a in m.model_archs(name, f)]
            state = "ready"
        else:
            tags, state = [], f"planned: {model.reason}" if model.reason else "planned"
        flavours = [f for f in m.flavours if m.model_archs(name, f)]
        archs = model.archs + [f"not {arch}: {why}" for arch, why in model.excluded.items()]
        rows.append([name, f"{model.suite} {suite.version}", state, "\n".join(archs),
                     ", ".join(flavours), "\n".join(model.recipes) or "-", "\n".join(tags) or "-"])
    return rows


def flavour_rows(m: Matrix) -> list[list[str]]:
    rows = []
    for name, f in m.flavours.items():
        state = "ready" if f.status is Status.ready else f"planned: {f.reason or ''}".rstrip(": ")
        runtime = m.runtimes[f.runtime] if f.runtime else None
        device = f"XRE {runtime.version} ({', '.join(runtime.chips)})" if runtime else "CPU"
        rows.append([name, state, device, ", ".join(f"{a}: {r}" for a, r in f.paddle.items()),
                     f"{f.base} (Python {m.bases[f.base].python})"])
    return rows


def show(m: Matrix) -> None:
    ui.table(["model", "suite", "state", "archs", "flavours", "recipes (first: default)", "image tags"], model_rows(m))
    servable = [name for name in m.ready_models() if m.servable(name)]
    ui.out.print(f"serving images (`invoke package MODEL --export DIR`): {', '.join(servable)}; the others serve "
                 f"from their training images (`invoke serve`)")
    ui.table(["flavour", "state", "device", "paddle", "base"], flavour_rows(m))
