"""Pushing: a per-arch image through the Docker daemon (it has the layers), the manifest lists through
the registry's API (registry.py). A refused push is told from other failures by the registry's own
answer (401/403), since the daemon passes on only a message."""
from __future__ import annotations

import docker.errors

from .. import ui
from ..errors import PublishError
from . import registry as reg
from .plan import ArchImage, Release


def push_image(client, a: ArchImage, registry: reg.Registry, path: str) -> str:
    """docker push of the per-arch tag; returns the manifest digest."""
    repository, tag = a.remote.rsplit(":", 1)
    digest, last = None, ""
    creds = registry.creds
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
        registry.check_push(path)   # raises RegistryAuthError when the registry refuses us
        raise PublishError(f"pushing {a.remote} failed: {last}")
    if not digest:
        raise PublishError(f"pushing {a.remote} reported no digest")
    return digest


def put_lists(release: Release, registry: reg.Registry) -> None:
    """The version tag and the moving tags, each the manifest list of the cell's per-arch images."""
    entries = [a.entry for a in release.archs]
    with ui.step(f"manifest lists {release.repository}:{','.join([release.version_tag, *release.moving_tags])}"):
        for tag in [release.version_tag, *release.moving_tags]:
            release.tags[tag] = registry.put_list(release.path, tag, entries)
