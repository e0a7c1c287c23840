"""Image archives for hosts without a registry: `invoke save` writes the images of some cells
(`docker save`, one archive: shared layers once) with a manifest of their tags and ids and the
archive's sha256 (host/archive.py); `invoke load` verifies it before `docker load`, then checks that
every tag names the very image id that was saved."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import BuildError, HostError, InputError
from ..host import archive, cache
from . import docker_api

KIND = "images"
MEMBER = "images.tar"


def _docker(*args: str) -> None:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostError(f"docker {args[0]} failed: {proc.stderr.strip()}")


def save(tags: list[str], out: Path) -> dict:
    """Save the tagged images; a tag that is not built is an error naming it."""
    client = docker_api.client()
    images = []
    for tag in tags:
        found = docker_api.image(client, tag, missing=InputError(f"{tag} is not built",
                                                                 hint="build it first (`invoke build`)"))
        images.append({"tag": tag, "id": found.id})
    saved = cache.scratch() / f"{out.name}.images.tar"
    try:
        _docker("save", "-o", str(saved), *tags)
        return archive.write(out, KIND, {MEMBER: saved}, {"images": images})
    finally:
        saved.unlink(missing_ok=True)


def load(path: Path) -> list[dict]:
    """Verify the archive, `docker load` it, and check each tag's image id; returns the images."""
    client = docker_api.client()
    with archive.verified(path, KIND, cache.scratch()) as verified:
        _docker("load", "-i", str(verified[MEMBER]))
        images = verified.manifest["images"]
    for entry in images:
        found = docker_api.image(client, entry["tag"])
        if found is None or found.id != entry["id"]:
            raise BuildError(f"{entry['tag']}: loaded as {found.id if found else 'nothing'}, saved as {entry['id']}",
                             hint="the daemon changed the image on load (another image store?); build it instead")
    return images
