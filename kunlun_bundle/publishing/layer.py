"""The publish layer: what a pushed image has on top of the local one. One small layer with the SBOM
files at layout.SBOM_DIR and the published labels (labels.published) in one LABEL instruction, built
FROM the local image's id, so the image that passed the smoke test is exactly what is underneath."""
from __future__ import annotations

from .. import layout
from ..containers import docker_api
from ..host import cache
from ..images import labels
from ..images.context import BuildContext
from ..matrix import Matrix
from .plan import ArchImage, Release


def dockerfile(image_id: str, published: dict[str, str]) -> str:
    return f"FROM {image_id}\nCOPY sbom/ {layout.SBOM_DIR}/\n{labels.instruction(published)}\n"


def build(client, m: Matrix, release: Release, a: ArchImage, published: dict[str, str], files: dict[str, bytes]) -> str:
    """Build the publish layer, tagged as the remote per-arch image; returns its id."""
    ctx = BuildContext(mtime=m.bases[m.flavours[release.flavour].base].source_date_epoch)
    ctx.add_bytes("Dockerfile", dockerfile(a.local_id, published).encode())
    for name, data in files.items():
        ctx.add_bytes(f"sbom/{name}", data)
    with ctx.tarball(cache.scratch()) as tarball:
        return docker_api.build(client, tarball, a.remote, a.platform)
