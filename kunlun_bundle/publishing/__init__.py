"""Publishing model images, or the serving images of one export, to a registry (`invoke publish`),
one job per module; both kinds of image go through all of them:

    plan      plan.py: every tag of every cell (model x flavour), the per-arch images behind each, their
              states (new, present, conflict, missing, held back) and the gate, before anything is pushed
    smoke     smoke.py: before an image may be pushed, network off: a model image trains 1 step, a
              serving image answers 1 inference through its server (the kind's Smoke, kinds.py)
    sbom      sbom.py: the image's Python and Debian packages, listed by running it, as CycloneDX + text
    layer     layer.py: one small layer on the local image with the SBOM files and the published labels
    push      push.py: the per-arch image through the Docker daemon, the manifest lists through the
              registry API (registry.py)
    report    report.json plus the SBOM files of every image, in the report directory (here)

Idempotent: an image already in the registry that was made from the same local image (label
io.kunlun.source.image) is not pushed again, and a manifest list has the same bytes for the same
images; so a run that was interrupted is simply run again. An immutable tag (per-arch or version)
that names a different image is refused before anything is pushed, unless --force."""
from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Optional

from .. import naming, ui
from ..containers import docker_api
from ..errors import PublishError, RegistryAuthError, TagConflictError
from ..images import labels
from ..images.chain import Layer
from ..matrix import Matrix
from . import layer, plan, registry as reg, sbom, smoke
from .plan import ArchImage, Outcome, Release, State
from .push import push_image, put_lists


def prepare_and_push(client, m: Matrix, root: Path, release: Release, a: ArchImage, registry: reg.Registry,
                     report_dir: Path) -> None:
    """SBOM, publish layer, push, and the registry's view of the result."""
    published = labels.published(m, a.layer, root, client.images.get(a.local_id).labels or {}, a.local_id)
    start = time.monotonic()
    listing, dpkg = sbom.read(client, a.local_id, a.platform, a.local)
    locks = [root / part.lock for part in a.layer.ancestry() if part.lock]
    files = sbom.files(a.remote, a.local_id, published.get(labels.CREATED), listing, dpkg, locks)
    a.seconds["sbom"] = round(time.monotonic() - start, 1)
    out = report_dir / "sbom" / release.repository_name / f"{release.flavour}-{a.arch}"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
        a.sbom[name] = {"path": str(out / name), "bytes": len(data)}
    with ui.step(f"push {a.remote}"):
        layer.build(client, m, release, a, published, files)
        start = time.monotonic()
        digest = push_image(client, a, registry, release.path)
        a.seconds["push"] = round(time.monotonic() - start, 1)
    if not plan.remote_view(a, registry, release.path, digest):
        raise PublishError(f"the registry does not have {a.remote}@{digest} right after the push")
    a.pushed, a.state = True, State.present


def publish_release(client, m: Matrix, root: Path, release: Release, registry: reg.Registry, report_dir: Path,
                    manifests: bool, smoke_args: list[str] = ()) -> None:
    to_push = [a for a in release.archs if a.in_run and a.state is not State.present]
    record = smoke.SmokeRecord(report_dir)
    for a in release.archs:   # every smoke test first: a cell with a failing arch pushes nothing
        if a in to_push and record.has(a, smoke_args):
            a.smoke = f"{a.smoke_passed} (earlier in this run: {record.path})"
        elif a in to_push:
            with ui.step(f"smoke test {a.local} ({release.kind.smoke.what})") as outcome:
                start = time.monotonic()
                failure = outcome.failed = smoke.smoke_test(client, a, smoke_args)
                a.seconds["smoke"] = round(time.monotonic() - start, 1)
            a.smoke = f"failed: {failure}" if failure else a.smoke_passed
            if failure:
                release.hold_back(f"{a.arch} failed its smoke test: {failure}")
                return
            record.add(a, smoke_args, a.seconds["smoke"])
        elif a.state is State.present:
            a.smoke = f"{a.remote_labels.get(labels.SMOKE, 'unknown')} (when pushed; same local image)"
    for a in to_push:
        prepare_and_push(client, m, root, release, a, registry, report_dir)
    for a in release.archs:
        if a.entry:
            release.tags[a.tag] = a.remote_digest
    if not manifests:
        release.status = Outcome.pushed
        return
    not_ready = [a.arch for a in release.archs if not a.ready]
    if not_ready:   # cannot happen after the gate, unless the registry changed meanwhile
        release.hold_back(f"not ready in the registry: {', '.join(not_ready)}")
        return
    put_lists(release, registry)
    release.status = Outcome.published


def report_of(release: Release) -> dict:
    """A release as report.json has it: its fields (the layers aside: the kind says what they were)."""
    doc = {f.name: getattr(release, f.name) for f in fields(release) if f.name != "archs"}
    doc["archs"] = [{f.name: getattr(a, f.name) for f in fields(a) if f.name != "layer"} for a in release.archs]
    return json.loads(json.dumps(doc | {"name": release.name}))


def write_report(report_dir: Path, registry_arg: str, revision: Optional[str], releases: list[Release],
                 pushed: bool, seconds: float) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    # "cells": the report's key as it was (a release per cell, model x flavour); CI and people read it.
    doc = {"registry": registry_arg, "revision": revision, "push": pushed, "seconds": round(seconds, 1),
           "cells": [report_of(c) for c in releases]}
    path = report_dir / "report.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def publish(m: Matrix, layers: list[Layer], root: Path, registry_arg: str, run_archs: list[str], *,
            push: bool = False, force: bool = False, manifests: bool = True,
            report_dir: Path = Path(".cache/publish-report"), smoke_args: list[str] = ()) -> list[Release]:
    """`invoke publish`: print the plan; with push=True, push and put the manifest lists. Raises
    PublishError (after writing the report) when a cell was held back or failed."""
    start = time.monotonic()
    host = reg.split(naming.registry_repository(m, registry_arg, "x"))[0]
    registry = reg.Registry(host, reg.credentials(host))
    registry.check()
    releases = plan.releases_for(m, registry_arg, layers, run_archs)
    client = docker_api.client() if any(a.in_run for c in releases for a in c.archs) else None
    with ui.step(f"look up {sum(len(c.archs) for c in releases)} image(s) locally and in {host}"):
        plan.look_up(releases, client, registry)
    revision = labels.revision(root)
    plan.classify(releases, revision, manifests)
    ui.table(["tag", "from", "state", "note"], plan.rows(releases, manifests), title="Publish plan")
    found = plan.conflicts(releases, manifests)
    if found and not force:
        hints = dict.fromkeys(c.kind.conflict_hint for c in releases)   # the kind's: its tags say different things
        raise TagConflictError("immutable tags already name other images: " + "; ".join(found), hint="; ".join(hints))
    if push:
        for release in releases:
            if release.status is Outcome.blocked:
                continue
            try:
                publish_release(client, m, root, release, registry, report_dir, manifests, list(smoke_args))
            except RegistryAuthError:
                raise
            except PublishError as exc:
                release.status, release.reason = Outcome.failed, exc.message
                ui.error(exc.message, exc.hint)
    path = write_report(report_dir, registry_arg, revision, releases, push, time.monotonic() - start)
    rows = [[c.name, c.status, ", ".join(f"{t}" for t in c.tags) or "-", c.reason or ""] for c in releases]
    ui.table(["cell", "status", "tags", "why not"], rows, title="Publish summary", console=ui.err)
    ui.info(f"report: {path}")
    held = [c for c in releases if c.status in (Outcome.blocked, Outcome.failed)]
    if held and not push:
        ui.warn(f"{len(held)} cell(s) would be held back: {', '.join(c.name for c in held)}")
    elif held:
        raise PublishError(f"{len(held)} cell(s) not published: " + "; ".join(f"{c.name}: {c.reason}" for c in held),
                           hint=f"details in {path}")
    return releases
