"""Image names and tags: the one place they are spelled. Everything else calls these."""
from __future__ import annotations

from typing import NamedTuple

from .matrix import Matrix


def base_image(m: Matrix, base: str, arch: str) -> str:
    return f"{m.namespace}/base:{m.bases[base].release}-{arch}"


def base_dated_image(m: Matrix, base: str, arch: str, date: str) -> str:
    """A second tag on the base showing when it was bootstrapped, e.g. kunlun/base:bookworm-x86_64-20261123."""
    return f"{base_image(m, base, arch)}-{date}"


def paddle_image(m: Matrix, flavour: str, arch: str) -> str:
    return f"{m.namespace}/paddle:{m.paddle_version(flavour, arch)}-{flavour}-{arch}"


def suite_image(m: Matrix, suite: str, flavour: str, arch: str) -> str:
    version = m.suites[suite].version
    return f"{m.namespace}/{suite}:{version}-paddle{m.paddle_version(flavour, arch)}-{flavour}-{arch}"


def model_version(m: Matrix, flavour: str, arch: str) -> str:
    """The bundle version plus the Paddle version it was built with, e.g. 0.1.0-paddle3.2.2."""
    return f"{m.bundle.version}-paddle{m.paddle_version(flavour, arch)}"


def model_tag(m: Matrix, flavour: str, arch: str) -> str:
    """A model image's tag (the same for every model), e.g. 0.1.0-paddle3.2.2-cpu-x86_64."""
    return f"{model_version(m, flavour, arch)}-{flavour}-{arch}"


def model_image(m: Matrix, model: str, flavour: str, arch: str) -> str:
    return f"{m.namespace}/{model}:{model_tag(m, flavour, arch)}"


def model_latest(m: Matrix, model: str) -> str:
    """What `docker run kunlun/<model>` finds: the host arch's default-flavour build."""
    return f"{m.namespace}/{model}:latest"


def serving_image(m: Matrix, suite: str, flavour: str, arch: str) -> str:
    """A suite's serving layer, e.g. kunlun/paddleclas-serving:2.6.0-paddle3.2.2-cpu-x86_64."""
    version = m.suites[suite].version
    return f"{m.namespace}/{suite}-serving:{version}-paddle{m.paddle_version(flavour, arch)}-{flavour}-{arch}"


def serving_repository_name(model: str) -> str:
    """The repository of a model's serving images, locally and in a registry: resnet50-serving."""
    return f"{model}-serving"


def packaged_tag(digest: str, flavour: str, arch: str) -> str:
    """A serving image's tag: the model files' digest (12 hex), flavour, arch, e.g. 3f2a9c1e0b7d-cpu-x86_64."""
    return f"{packaged_version_tag(digest, flavour)}-{arch}"


def packaged_version_tag(digest: str, flavour: str) -> str:
    """What a serving image's tag says without the arch, e.g. 3f2a9c1e0b7d-cpu (its multi-arch tag)."""
    return f"{digest[:12]}-{flavour}"


def packaged_image(m: Matrix, model: str, digest: str, flavour: str, arch: str) -> str:
    """A serving image of one export (`invoke package`): its model files' digest in the tag, so two
    exports never share a tag, e.g. kunlun/resnet50-serving:3f2a9c1e0b7d-cpu-x86_64."""
    return f"{m.namespace}/{serving_repository_name(model)}:{packaged_tag(digest, flavour, arch)}"


def declared(m: Matrix, image: str) -> str:
    """An image's name under the matrix's own namespace (what committed Dockerfiles say), whatever
    namespace local images are tagged under ($KUNLUN_NAMESPACE)."""
    namespace, rest = image.split("/", 1)
    return f"{m.bundle.namespace}/{rest}" if namespace == m.namespace else image


def default_flavour(m: Matrix) -> str:
    """The flavour `latest` points at and builds default to: the first ready one in the matrix."""
    return m.ready_flavours()[0]


# --- published tags (`invoke publish`) -------------------------------------------------------
# In a registry, a model's repository is <registry>/<model>, where <registry> is HOST[:PORT]/NAMESPACE
# (the matrix's namespace when the argument has no path). Tags:
#   per-arch, immutable:   0.1.0-paddle3.2.2-cpu-x86_64   one image (the local tag, pushed as is)
#   version, immutable:    0.1.0-paddle3.2.2-cpu          manifest list of every arch of the cell
#   moving:                latest (default flavour), cpu (the flavour), paddleclas2.6.0-cpu (suite + version)
# The moving tags are manifest lists too and follow the newest publish.
#
# A model's serving images (`invoke package`, `publish --export`) go to <registry>/<model>-serving:
#   per-arch, immutable:   3f2a9c1e0b7d-cpu-x86_64        one image (the local tag: the export's digest)
#   version, immutable:    3f2a9c1e0b7d-cpu               manifest list of every arch: one export, one flavour
#   moving:                cpu, latest (default flavour)  the export published last
# No suite tag: a serving repository holds exports of one model, and the newest export is what moves.


class Published(NamedTuple):
    """Where a published image goes and the tags it gets (per arch; the rest name the manifest lists)."""
    repository: str          # HOST[:PORT]/NAMESPACE/NAME
    arch_tag: str
    version_tag: str
    moving_tags: list[str]


def published_model(m: Matrix, registry: str, model: str, flavour: str, arch: str) -> Published:
    return Published(registry_repository(m, registry, model), arch_tag(m, flavour, arch),
                     version_tag(m, model, flavour), moving_tags(m, model, flavour))


def published_serving(m: Matrix, registry: str, model: str, digest: str, flavour: str, arch: str) -> Published:
    """A serving image of one export: the local tag per arch, the export's digest + flavour as the version."""
    return Published(registry_repository(m, registry, serving_repository_name(model)), packaged_tag(digest, flavour, arch),
                     packaged_version_tag(digest, flavour), serving_moving_tags(m, flavour))


def serving_moving_tags(m: Matrix, flavour: str) -> list[str]:
    """The flavour, and `latest` for the default flavour: whichever export was published last."""
    return [flavour] + (["latest"] if flavour == default_flavour(m) else [])


def registry_repository(m: Matrix, registry: str, name: str) -> str:
    """Where a model's (or its serving images') images go: HOST[:PORT]/NAMESPACE/<name>, e.g.
    127.0.0.1:5000/kunlun/resnet50."""
    registry = registry.rstrip("/")
    if "/" not in registry:
        registry = f"{registry}/{m.bundle.namespace}"
    return f"{registry}/{name}"


def arch_tag(m: Matrix, flavour: str, arch: str) -> str:
    """Immutable per-arch tag: the local tag's, e.g. 0.1.0-paddle3.2.2-cpu-x86_64."""
    return model_tag(m, flavour, arch)


def version_tag(m: Matrix, model: str, flavour: str) -> str:
    """Immutable multi-arch tag of a model x flavour: bundle version + Paddle version + flavour,
    e.g. 0.1.0-paddle3.2.2-cpu. Archs pinned to different Paddle versions are all named
    (0.1.0-paddle2.6.2_3.0.0-cpu), so the tag never claims one version for an image that has another."""
    versions = sorted({m.paddle_version(flavour, arch) for arch in m.model_archs(model, flavour)})
    return f"{m.bundle.version}-paddle{'_'.join(versions)}-{flavour}"


def moving_tags(m: Matrix, model: str, flavour: str) -> list[str]:
    """Tags that follow the newest publish: the flavour, the suite and its version, and `latest`
    for the default flavour, e.g. ['cpu', 'paddleclas2.6.0-cpu', 'latest']."""
    suite = m.models[model].suite
    tags = [flavour, f"{suite}{m.suites[suite].version}-{flavour}"]
    return tags + (["latest"] if flavour == default_flavour(m) else [])


def remote_image(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


def registry_image(image: str, registry: str | None) -> str:
    """The name an image has once pushed under a registry prefix (HOST[:PORT]/NAMESPACE): the
    local namespace is replaced, e.g. kunlun/resnet50:TAG -> registry.example:5000/team/resnet50:TAG."""
    if not registry:
        return image
    return f"{registry.rstrip('/')}/{image.split('/', 1)[1]}"
