"""Publishing model images to a registry: plan, gate, push, manifest lists, report.

    plan      every tag of every cell (model x flavour) asked for, the per-arch images behind each,
              and what is new, already there (built from the same local image) or in conflict
    gate      a cell is published only if every arch the matrix declares for it is ready: built here
              and smoke-tested (train 1 step) in this run, or (an arch left to another CI job with
              --arch) already in the registry from this commit with a passed smoke test
    push      per arch: smoke test, SBOM, one small layer on top of the local image (the SBOM files
              and the publish labels), pushed by the Docker daemon under the immutable per-arch tag
    manifests the version tag and the moving tags as manifest lists of the per-arch images,
              put through the registry API (registry.py)
    report    report.json plus the SBOM files of every image, in the report directory

Idempotent: an image already in the registry that was made from the same local image (label
io.kunlun.source.image) is not pushed again, and a manifest list has the same bytes for the same
images; so a run that was interrupted is simply run again. An immutable tag (per-arch or version)
that names a different image is refused before anything is pushed, unless --force."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import docker.errors

from . import build as builder
from . import cache, container, docker_api, naming, registry as reg, sbom, ui
from .chain import Layer, model_layer
from .context import BuildContext
from .errors import PublishError, RegistryAuthError, TagConflictError
from .matrix import Matrix

SOURCE_LABEL = "io.kunlun.source.image"      # id of the local image a published one was made from
SMOKE_LABEL = "io.kunlun.smoke"              # written only after the smoke test passed
SBOM_LABEL = "io.kunlun.sbom"
REVISION_LABEL = "org.opencontainers.image.revision"
SMOKE_PASSED = "passed: trained 1 step"


def publish_dockerfile(image_id: str, labels: dict[str, str]) -> str:
    """The publish layer: the SBOM files and the labels in one LABEL instruction (the legacy builder
    turns every build-time label into a step of its own, each an image commit)."""
    quote = lambda text: json.dumps(text).replace("$", "\\$")
    lines = " \\\n      ".join(f"{quote(k)}={quote(v)}" for k, v in sorted(labels.items()))
    return f"FROM {image_id}\nCOPY sbom/ {sbom.SBOM_DIR}/\nLABEL {lines}\n"


@dataclass
class ArchImage:
    arch: str
    platform: str
    local: str                              # local tag
    remote: str                             # repository:per-arch tag
    in_run: bool                            # this run smoke-tests and pushes it
    local_id: Optional[str] = None
    remote_digest: Optional[str] = None     # manifest digest of the per-arch tag in the registry
    remote_labels: dict = field(default_factory=dict)
    entry: Optional[dict] = None            # its manifest-list entry (digest, size, platform)
    state: str = "new"                      # new | present | conflict | missing | elsewhere
    smoke: Optional[str] = None
    pushed: bool = False
    seconds: dict = field(default_factory=dict)
    sbom: dict = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Can go into this run's manifest list."""
        return self.entry is not None and self.remote_labels.get(SMOKE_LABEL) == SMOKE_PASSED


@dataclass
class Cell:
    model: str
    flavour: str
    repository: str                          # HOST[:PORT]/NAMESPACE/model
    version_tag: str
    moving_tags: list[str]
    archs: list[ArchImage]
    remote_version_digest: Optional[str] = None
    status: str = "planned"                  # planned | published | pushed | blocked | failed
    reason: Optional[str] = None
    tags: dict = field(default_factory=dict)   # tag -> digest, what this run put

    @property
    def name(self) -> str:
        return f"{self.model}/{self.flavour}"

    @property
    def path(self) -> str:
        return reg.split(self.repository)[1]


# --- the plan ---------------------------------------------------------------------------------

def cells_for(m: Matrix, registry_arg: str, layers: list[Layer], run_archs: list[str]) -> list[Cell]:
    """One Cell per model x flavour among `layers`, with every arch the matrix declares for it."""
    cells: dict[tuple[str, str], Cell] = {}
    for layer in layers:
        key = (layer.name, layer.flavour)
        if key in cells:
            continue
        repository = naming.registry_repository(m, registry_arg, layer.name)
        archs = [ArchImage(arch, m.arch_registry[arch].platform, naming.model_image(m, layer.name, layer.flavour, arch),
                           naming.remote_image(repository, naming.arch_tag(m, layer.flavour, arch)), arch in run_archs)
                 for arch in m.model_archs(layer.name, layer.flavour)]
        cells[key] = Cell(layer.name, layer.flavour, repository, naming.version_tag(m, layer.name, layer.flavour),
                          naming.moving_tags(m, layer.name, layer.flavour), archs)
    return list(cells.values())


def entry(manifest: reg.Manifest, config: dict) -> dict:
    platform = {"architecture": config["architecture"], "os": config["os"]}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    return {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size, "platform": platform}


def look_up(cells: list[Cell], client, registry: reg.Registry) -> None:
    """Fill in what the local Docker and the registry hold for every image and version tag."""
    for cell in cells:
        for a in cell.archs:
            found = docker_api.image(client, a.local) if client else None
            a.local_id = found.id if found else None
            manifest = registry.manifest(cell.path, a.remote.rsplit(":", 1)[1])
            if manifest is not None and not manifest.is_list:
                config = registry.config(cell.path, manifest)
                a.remote_digest, a.remote_labels = manifest.digest, (config.get("config") or {}).get("Labels") or {}
                a.entry = entry(manifest, config)
        version = registry.manifest(cell.path, cell.version_tag)
        cell.remote_version_digest = version.digest if version else None


def classify(cells: list[Cell], revision: Optional[str], manifests: bool) -> None:
    """Each image's state, and the cells the gate holds back before anything is pushed."""
    for cell in cells:
        for a in cell.archs:
            if a.in_run:
                if a.local_id is None:
                    a.state = "missing"
                elif a.remote_digest is None:
                    a.state = "new"
                elif a.remote_labels.get(SOURCE_LABEL) == a.local_id:
                    a.state = "present"
                else:
                    a.state = "conflict"
            else:
                a.state = "elsewhere"
        cell.reason = gate_before_push(cell, revision, manifests)
        if cell.reason:
            cell.status = "blocked"


def gate_before_push(cell: Cell, revision: Optional[str], manifests: bool) -> Optional[str]:
    """Why the cell cannot be published, as far as is known before smoke tests and pushes; None if it can."""
    missing = [a for a in cell.archs if a.in_run and a.state == "missing"]
    if missing:
        return "; ".join(f"{a.arch} missing: no local image {a.local} (run `invoke build --arch {a.arch} "
                         f"--model {cell.model} --flavour {cell.flavour}`)" for a in missing)
    if not manifests:
        return None
    for a in cell.archs:
        if a.in_run:
            continue
        if a.entry is None:
            return f"{a.arch} missing: not in this run and {a.remote} is not in the registry"
        if a.remote_labels.get(SMOKE_LABEL) != SMOKE_PASSED:
            return f"{a.arch} missing: {a.remote} in the registry has no passed smoke test"
        if revision and a.remote_labels.get(REVISION_LABEL) != revision:
            return (f"{a.arch} missing: {a.remote} in the registry is from revision "
                    f"{a.remote_labels.get(REVISION_LABEL, 'unknown')[:12]}, not this one ({revision[:12]})")
    return None


def conflicts(cells: list[Cell], manifests: bool) -> list[str]:
    """Immutable tags this run would move: per-arch tags naming another image, version tags naming another list."""
    found = []
    for cell in cells:
        if cell.status == "blocked":
            continue
        for a in cell.archs:
            if a.state == "conflict":
                found.append(f"{a.remote} is {a.remote_digest[:19]}, made from "
                             f"{(a.remote_labels.get(SOURCE_LABEL) or 'another image')[:19]}, not from {a.local_id[:19]}")
        changes = any(a.state in ("new", "conflict") for a in cell.archs)
        if manifests and cell.remote_version_digest and changes:
            found.append(f"{cell.repository}:{cell.version_tag} is {cell.remote_version_digest[:19]} and would "
                         "change (its per-arch images would)")
        elif manifests and cell.remote_version_digest and all(a.entry for a in cell.archs):
            expected = reg.digest_of(reg.list_body([a.entry for a in cell.archs]))
            if expected != cell.remote_version_digest:
                found.append(f"{cell.repository}:{cell.version_tag} is {cell.remote_version_digest[:19]}, "
                             f"not the list of the per-arch images ({expected[:19]})")
    return found


def plan_rows(cells: list[Cell], manifests: bool) -> list[list[str]]:
    """tag | from | state | note: one row per per-arch image, then the cell's manifest lists."""
    rows = []
    for cell in cells:
        held = cell.status == "blocked"
        for a in cell.archs:
            rows.append([a.remote, a.local if a.in_run else f"({a.arch}: not in this run)",
                         "held back" if held and a.state != "missing" else a.state, ""])
        if manifests:
            archs = ", ".join(a.arch for a in cell.archs)
            version_state = "present" if cell.remote_version_digest and all(
                a.state in ("present", "elsewhere") for a in cell.archs) else \
                ("conflict" if cell.remote_version_digest else "new")
            rows.append([f"{cell.repository}:{cell.version_tag}", f"list: {archs}",
                         "held back" if held else version_state, ""])
            for tag in cell.moving_tags:
                rows.append([f"{cell.repository}:{tag}", f"list: {archs}", "held back" if held else "moves", ""])
        if held:
            rows[-1][3] = cell.reason
    return rows


# --- doing it -----------------------------------------------------------------------------------

def smoke_test(client, a: ArchImage, extra_args: list[str] = ()) -> Optional[str]:
    """Train the image for 1 step, network off; None if it passed, else why not."""
    try:
        running = container.start(client, a.local_id, ["--steps", "1", *extra_args], error=PublishError,
                                  network_mode="none", platform=a.platform, labels={"io.kunlun.publish": "smoke"})
    except PublishError as exc:
        return exc.message
    with running:
        code = running.wait()
        output = running.output()
    summary = next((json.loads(line) for line in output.splitlines() if line.startswith('{"event": "summary"')), None)
    if code != 0 or summary is None or not summary.get("loss_finite"):
        tail = " | ".join(output.strip().splitlines()[-3:])
        return f"exit {code}{'' if summary else ', no summary line'}: {tail[-300:]}"
    return None


class SmokeRecord:
    """Smoke tests passed in this run, by local image id, kept in the report directory: a run that was
    interrupted and is started again with the same report directory is the same run, and does not
    train the same image again (under emulation that is minutes per image)."""

    def __init__(self, report_dir: Path):
        self.path = report_dir / "smoke-passed.json"
        self.passed = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def key(self, a: ArchImage, extra_args: list[str]) -> str:
        return " ".join([a.local_id, *extra_args])

    def has(self, a: ArchImage, extra_args: list[str]) -> bool:
        return self.key(a, extra_args) in self.passed

    def add(self, a: ArchImage, extra_args: list[str], seconds: float) -> None:
        self.passed[self.key(a, extra_args)] = {"image": a.local, "seconds": seconds}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.passed, indent=2, sort_keys=True) + "\n")


def sbom_files(client, m: Matrix, root: Path, cell: Cell, a: ArchImage, created: Optional[str]) -> dict[str, bytes]:
    def run(entrypoint: str, *args: str) -> str:
        with container.start(client, a.local_id, args, error=PublishError, entrypoint=entrypoint,
                             network_mode="none", platform=a.platform) as running:
            code = running.wait()
            if code:
                raise PublishError(f"{entrypoint} exited {code}: {running.output()[-300:]}")
            return running.output(stderr=False)
    try:
        listing = json.loads(run("python", "-c", sbom.LIST_PYTHON))
        dpkg = run("dpkg-query", "-W", "-f", sbom.DPKG_FORMAT)
    except (PublishError, json.JSONDecodeError) as exc:
        raise PublishError(f"could not list the packages of {a.local}: {exc}") from None
    locks = [root / layer.lock for layer in _layer(m, cell, a.arch).ancestry() if layer.lock]
    return sbom.files(a.remote, a.local_id, created, listing, dpkg, locks)


def _layer(m: Matrix, cell: Cell, arch: str) -> Layer:
    return model_layer(m, cell.model, cell.flavour, m.arch_registry[arch])


def publish_labels(m: Matrix, root: Path, cell: Cell, a: ArchImage, local_labels: dict) -> dict[str, str]:
    """The published image's labels: the model layer's (OCI and bundle), where the local image already
    has revision/created/source those it was built with, plus the source image, smoke result and SBOM path."""
    labels = builder.labels_for(m, _layer(m, cell, a.arch), root)
    for key in ("revision", "created", "source"):
        name = f"org.opencontainers.image.{key}"
        if local_labels.get(name):
            labels[name] = local_labels[name]
    return labels | {SOURCE_LABEL: a.local_id, SMOKE_LABEL: SMOKE_PASSED, SBOM_LABEL: sbom.SBOM_DIR}


def push_image(client, a: ArchImage, creds: Optional[reg.Credentials]) -> str:
    """docker push of the per-arch tag; returns the manifest digest."""
    repository, tag = a.remote.rsplit(":", 1)
    digest, last = None, ""
    try:
        for chunk in client.api.push(repository, tag, stream=True, decode=True,
                                     auth_config=creds.auth_config() if creds else None):
            if "error" in chunk:
                last = chunk["error"].strip()
                break
            digest = (chunk.get("aux") or {}).get("Digest") or digest
    except docker.errors.APIError as exc:
        last = str(exc.explanation or exc)
    if last:
        if any(word in last.lower() for word in ("unauthorized", "authentication required", "no basic auth", "denied")):
            host = reg.split(a.remote)[0]
            raise RegistryAuthError(f"pushing {a.remote} was refused: {last}",
                                    hint=f"set {reg.USER_ENV} and {reg.PASSWORD_ENV}, or run `docker login {host}`")
        raise PublishError(f"pushing {a.remote} failed: {last}")
    if not digest:
        raise PublishError(f"pushing {a.remote} reported no digest")
    return digest


def prepare_and_push(client, m: Matrix, root: Path, cell: Cell, a: ArchImage, registry: reg.Registry,
                     report_dir: Path) -> None:
    """SBOM, publish layer, push, and the registry's view of the result."""
    local = client.images.get(a.local_id)
    labels = publish_labels(m, root, cell, a, local.labels or {})
    start = time.monotonic()
    files = sbom_files(client, m, root, cell, a, labels.get("org.opencontainers.image.created"))
    a.seconds["sbom"] = round(time.monotonic() - start, 1)
    out = report_dir / "sbom" / cell.model / f"{cell.flavour}-{a.arch}"
    out.mkdir(parents=True, exist_ok=True)
    ctx = BuildContext(mtime=m.bases[m.flavours[cell.flavour].base].source_date_epoch)
    ctx.add_bytes("Dockerfile", publish_dockerfile(a.local_id, labels).encode())
    for name, data in files.items():
        (out / name).write_bytes(data)
        ctx.add_bytes(f"sbom/{name}", data)
        a.sbom[name] = {"path": str(out / name), "bytes": len(data)}
    with ui.step(f"push {a.remote}"):
        with ctx.tarball(cache.scratch()) as tarball:
            docker_api.build(client, tarball, a.remote, a.platform)
        start = time.monotonic()
        digest = push_image(client, a, registry.creds)
        a.seconds["push"] = round(time.monotonic() - start, 1)
    manifest = registry.manifest(cell.path, digest)
    if manifest is None:
        raise PublishError(f"the registry does not have {a.remote}@{digest} right after the push")
    config = registry.config(cell.path, manifest)
    a.remote_digest, a.remote_labels, a.entry = digest, config["config"].get("Labels") or {}, entry(manifest, config)
    a.pushed, a.state = True, "present"


def publish_cell(client, m: Matrix, root: Path, cell: Cell, registry: reg.Registry, report_dir: Path,
                 manifests: bool, smoke_args: list[str] = ()) -> None:
    to_push = [a for a in cell.archs if a.in_run and a.state != "present"]
    record = SmokeRecord(report_dir)
    for a in cell.archs:   # every smoke test first: a cell with a failing arch pushes nothing
        if a in to_push and record.has(a, smoke_args):
            a.smoke = f"{SMOKE_PASSED} (earlier in this run: {record.path})"
        elif a in to_push:
            with ui.step(f"smoke test {a.local} (train 1 step)"):
                start = time.monotonic()
                failure = smoke_test(client, a, smoke_args)
                a.seconds["smoke"] = round(time.monotonic() - start, 1)
            a.smoke = f"failed: {failure}" if failure else SMOKE_PASSED
            if failure:
                cell.status, cell.reason = "blocked", f"{a.arch} failed its smoke test: {failure}"
                return
            record.add(a, smoke_args, a.seconds["smoke"])
        elif a.state == "present":
            a.smoke = f"{a.remote_labels.get(SMOKE_LABEL, 'unknown')} (when pushed; same local image)"
    for a in to_push:
        prepare_and_push(client, m, root, cell, a, registry, report_dir)
    for a in cell.archs:
        if a.entry:
            cell.tags[a.remote.rsplit(":", 1)[1]] = a.remote_digest
    if not manifests:
        cell.status = "pushed"
        return
    not_ready = [a.arch for a in cell.archs if not a.ready]
    if not_ready:   # cannot happen after the gate, unless the registry changed meanwhile
        cell.status, cell.reason = "blocked", f"not ready in the registry: {', '.join(not_ready)}"
        return
    entries = [a.entry for a in cell.archs]
    with ui.step(f"manifest lists {cell.repository}:{','.join([cell.version_tag, *cell.moving_tags])}"):
        for tag in [cell.version_tag, *cell.moving_tags]:
            cell.tags[tag] = registry.put_list(cell.path, tag, entries)
    cell.status = "published"


def write_report(report_dir: Path, registry_arg: str, revision: Optional[str], cells: list[Cell], push: bool,
                 seconds: float) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    doc = {"registry": registry_arg, "revision": revision, "push": push, "seconds": round(seconds, 1),
           "cells": [asdict(c) | {"name": c.name} for c in cells]}
    path = report_dir / "report.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def publish(m: Matrix, layers: list[Layer], root: Path, registry_arg: str, run_archs: list[str], *,
            push: bool = False, force: bool = False, manifests: bool = True,
            report_dir: Path = Path(".cache/publish-report"), smoke_args: list[str] = ()) -> list[Cell]:
    """The publish task: print the plan; with push=True, push and put the manifest lists. Raises
    PublishError (after writing the report) when a cell was held back or failed."""
    start = time.monotonic()
    host = reg.split(naming.registry_repository(m, registry_arg, "x"))[0]
    registry = reg.Registry(host, reg.credentials(host))
    registry.check()
    cells = cells_for(m, registry_arg, layers, run_archs)
    client = docker_api.client() if any(a.in_run for c in cells for a in c.archs) else None
    with ui.step(f"look up {sum(len(c.archs) for c in cells)} image(s) locally and in {host}"):
        look_up(cells, client, registry)
    revision = builder.git_facts(root).get("revision")
    classify(cells, revision, manifests)
    ui.table(["tag", "from", "state", "note"], plan_rows(cells, manifests), title="Publish plan")
    found = conflicts(cells, manifests)
    if found and not force:
        raise TagConflictError("immutable tags already name other images: " + "; ".join(found),
                               hint="bump the bundle version in matrix.yaml, or overwrite with --force")
    if push:
        for cell in cells:
            if cell.status == "blocked":
                continue
            try:
                publish_cell(client, m, root, cell, registry, report_dir, manifests, list(smoke_args))
            except RegistryAuthError:
                raise
            except PublishError as exc:
                cell.status, cell.reason = "failed", exc.message
                ui.error(exc.message, exc.hint)
    path = write_report(report_dir, registry_arg, revision, cells, push, time.monotonic() - start)
    rows = [[c.name, c.status, ", ".join(f"{t}" for t in c.tags) or "-", c.reason or ""] for c in cells]
    ui.table(["cell", "status", "tags", "why not"], rows, title="Publish summary", console=ui.err)
    ui.info(f"report: {path}")
    held = [c for c in cells if c.status in ("blocked", "failed")]
    if held and not push:
        ui.warn(f"{len(held)} cell(s) would be held back: {', '.join(c.name for c in held)}")
    elif held:
        raise PublishError(f"{len(held)} cell(s) not published: " + "; ".join(f"{c.name}: {c.reason}" for c in held),
                           hint=f"details in {path}")
    return cells
