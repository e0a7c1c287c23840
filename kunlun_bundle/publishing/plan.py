"""The publish plan and its gate, before anything is pushed: every tag of every cell (model x flavour,
or one export's serving images x flavour) asked for, the per-arch images behind each, what the local
Docker and the registry hold, each image's state, and the cells held back. What differs between model
and serving images (names, tags, smoke test, the command that builds a missing one) is their layer
kind's (kinds.py); everything here is the same for both.

A cell is published only if every arch the matrix declares for it is ready: built here and
smoke-tested in this run, or (an arch left to another CI job with --arch) already in the registry
from this commit with a passed smoke test. An immutable tag (per-arch or version) that names a
different image is a conflict, refused before anything is pushed unless --force."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Optional

from .. import naming
from ..containers import docker_api
from ..images import chain, labels
from ..images.chain import Layer
from ..images.kinds import Kind
from ..matrix import Matrix
from . import registry as reg


class State(StrEnum):
    """What publishing does with a tag, as the plan shows it."""
    new = "new"                  # not in the registry: pushed
    present = "present"          # in the registry, made from the same local image: not pushed again
    conflict = "conflict"        # an immutable tag naming another image
    missing = "missing"          # an arch of this run with no local image
    elsewhere = "elsewhere"      # an arch another run pushes (--arch): taken from the registry
    held_back = "held back"      # the gate holds the cell back
    moves = "moves"              # a moving tag (latest, the flavour, the suite): follows the newest publish


class Outcome(StrEnum):
    """What became of a cell."""
    planned = "planned"
    published = "published"      # images pushed and manifest lists put
    pushed = "pushed"            # per-arch images only (--no-manifests)
    blocked = "blocked"          # held back by the gate or a failed smoke test: nothing of it pushed
    failed = "failed"            # the registry or a build failed part way


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
    state: State = State.new
    smoke: Optional[str] = None
    pushed: bool = False
    seconds: dict = field(default_factory=dict)
    sbom: dict = field(default_factory=dict)
    layer: Optional[Layer] = field(default=None, repr=False, compare=False)   # the local image's layer (not reported)

    @property
    def tag(self) -> str:
        return self.remote.rsplit(":", 1)[1]

    @property
    def smoke_passed(self) -> str:
        """The io.kunlun.smoke label of an image of this kind that passed its smoke test."""
        return self.layer.kind.smoke.label

    @property
    def ready(self) -> bool:
        """Can go into this run's manifest list."""
        return self.entry is not None and self.remote_labels.get(labels.SMOKE) == self.smoke_passed


@dataclass
class Release:
    """What publishing one model x flavour (or one export's serving images x flavour: kind `package`)
    means: its repository, version and moving tags, the per-arch images behind them, and how it went
    (status, reason, the tags this run put)."""
    kind: Kind                               # the layer kind published: model or package
    model: str
    flavour: str
    repository: str                          # HOST[:PORT]/NAMESPACE/model
    version_tag: str
    moving_tags: list[str]
    archs: list[ArchImage]
    remote_version_digest: Optional[str] = None
    status: Outcome = Outcome.planned
    reason: Optional[str] = None
    tags: dict = field(default_factory=dict)   # tag -> digest, what this run put

    @property
    def name(self) -> str:
        """resnet50/cpu, or resnet50-serving/cpu: the repository's name and the flavour."""
        return f"{self.repository_name}/{self.flavour}"

    @property
    def repository_name(self) -> str:
        return self.repository.rsplit("/", 1)[1]

    @property
    def path(self) -> str:
        return reg.split(self.repository)[1]

    def hold_back(self, reason: str) -> None:
        self.status, self.reason = Outcome.blocked, reason


def releases_for(m: Matrix, registry_arg: str, layers: list[Layer], run_archs: list[str]) -> list[Release]:
    """One Release per kind x model x flavour among `layers` (model layers, or package layers of one
    export), with every arch the matrix declares for it; names and tags are the kind's (naming.py)."""
    releases: dict[tuple[str, str, str], Release] = {}
    given = {(layer.kind, layer.name, layer.flavour, layer.arch.name): layer for layer in layers}
    for top in layers:
        key = (top.kind, top.name, top.flavour)
        if key in releases:
            continue
        archs, names = [], None
        for arch in m.model_archs(top.name, top.flavour):
            layer = given.get(key + (arch,)) or chain.same_in(m, top, m.arch_registry[arch])
            names = top.kind.published(m, layer, registry_arg)
            archs.append(ArchImage(arch, layer.arch.platform, layer.image,
                                   naming.remote_image(names.repository, names.arch_tag), arch in run_archs, layer=layer))
        releases[key] = Release(top.kind, top.name, top.flavour, names.repository, names.version_tag,
                                names.moving_tags, archs)
    return list(releases.values())


def entry(manifest: reg.Manifest, config: dict) -> dict:
    """A manifest-list entry for a single-image manifest, the platform from its image config."""
    platform = {"architecture": config["architecture"], "os": config["os"]}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    return {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size, "platform": platform}


def remote_view(a: ArchImage, registry: reg.Registry, path: str, reference: str) -> bool:
    """Fill in what the registry holds under a per-arch tag or digest; False if nothing."""
    manifest = registry.manifest(path, reference)
    if manifest is None or manifest.is_list:
        return False
    config = registry.config(path, manifest)
    a.remote_digest, a.remote_labels = manifest.digest, (config.get("config") or {}).get("Labels") or {}
    a.entry = entry(manifest, config)
    return True


def look_up(releases: list[Release], client, registry: reg.Registry) -> None:
    """Fill in what the local Docker and the registry hold for every image and version tag."""
    for release in releases:
        for a in release.archs:
            found = docker_api.image(client, a.local) if client else None
            a.local_id = found.id if found else None
            remote_view(a, registry, release.path, a.tag)
        version = registry.manifest(release.path, release.version_tag)
        release.remote_version_digest = version.digest if version else None


def classify(releases: list[Release], revision: Optional[str], manifests: bool) -> None:
    """Each image's state, and the cells the gate holds back before anything is pushed."""
    for release in releases:
        for a in release.archs:
            if not a.in_run:
                a.state = State.elsewhere
            elif a.local_id is None:
                a.state = State.missing
            elif a.remote_digest is None:
                a.state = State.new
            elif a.remote_labels.get(labels.SOURCE_IMAGE) == a.local_id:
                a.state = State.present
            else:
                a.state = State.conflict
        reason = gate_before_push(release, revision, manifests)
        if reason:
            release.hold_back(reason)


def gate_before_push(release: Release, revision: Optional[str], manifests: bool) -> Optional[str]:
    """Why the cell cannot be published, as far as is known before smoke tests and pushes; None if it can."""
    missing = [a for a in release.archs if a.in_run and a.state is State.missing]
    if missing:
        return "; ".join(f"{a.arch} missing: no local image {a.local} (run `{a.layer.kind.build_command(a.layer)}`)"
                         for a in missing)
    if not manifests:
        return None
    for a in release.archs:
        if a.in_run:
            continue
        if a.entry is None:
            return f"{a.arch} missing: not in this run and {a.remote} is not in the registry"
        if a.remote_labels.get(labels.SMOKE) != a.smoke_passed:
            return f"{a.arch} missing: {a.remote} in the registry has no passed smoke test"
        if revision and a.remote_labels.get(labels.REVISION) != revision:
            return (f"{a.arch} missing: {a.remote} in the registry is from revision "
                    f"{a.remote_labels.get(labels.REVISION, 'unknown')[:12]}, not this one ({revision[:12]})")
    return None


def conflicts(releases: list[Release], manifests: bool) -> list[str]:
    """Immutable tags this run would move: per-arch tags naming another image, version tags naming another list."""
    found = []
    for release in releases:
        if release.status is Outcome.blocked:
            continue
        for a in release.archs:
            if a.state is State.conflict:
                found.append(f"{a.remote} is {a.remote_digest[:19]}, made from "
                             f"{(a.remote_labels.get(labels.SOURCE_IMAGE) or 'another image')[:19]}, not from {a.local_id[:19]}")
        changes = any(a.state in (State.new, State.conflict) for a in release.archs)
        if manifests and release.remote_version_digest and changes:
            found.append(f"{release.repository}:{release.version_tag} is {release.remote_version_digest[:19]} and would "
                         "change (its per-arch images would)")
        elif manifests and release.remote_version_digest and all(a.entry for a in release.archs):
            expected = reg.digest_of(reg.list_body([a.entry for a in release.archs]))
            if expected != release.remote_version_digest:
                found.append(f"{release.repository}:{release.version_tag} is {release.remote_version_digest[:19]}, "
                             f"not the list of the per-arch images ({expected[:19]})")
    return found


def rows(releases: list[Release], manifests: bool) -> list[list[str]]:
    """tag | from | state | note: one row per per-arch image, then the cell's manifest lists."""
    found = []
    for release in releases:
        held = release.status is Outcome.blocked
        for a in release.archs:
            found.append([a.remote, a.local if a.in_run else f"({a.arch}: not in this run)",
                          State.held_back if held and a.state is not State.missing else a.state, ""])
        if manifests:
            archs = ", ".join(a.arch for a in release.archs)
            version_state = State.present if release.remote_version_digest and all(
                a.state in (State.present, State.elsewhere) for a in release.archs) else \
                (State.conflict if release.remote_version_digest else State.new)
            found.append([f"{release.repository}:{release.version_tag}", f"list: {archs}",
                          State.held_back if held else version_state, ""])
            for tag in release.moving_tags:
                found.append([f"{release.repository}:{tag}", f"list: {archs}", State.held_back if held else State.moves, ""])
        if held:
            found[-1][3] = release.reason
    return found
