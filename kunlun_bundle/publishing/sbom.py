"""Software bill of materials of a model image: its Python environment as CycloneDX 1.5 JSON, and its
Debian package list as `dpkg-query` prints it.

How: from the host, by running the image itself (network off, entrypoint replaced) to list what is
installed: `importlib.metadata` over the interpreter's whole path (the venv plus the suites appended
by their .pth file: exactly what `import` sees; pip is not needed in the image), and
`dpkg-query -W`. The CycloneDX document is written here, with no SBOM tool in the image or on the
host: it is a small, fixed JSON shape, and every Python component gets the sha256 of the wheel it
came from out of the lock files, which a generic tool would not know. The document is
deterministic for a given image (serial number from the image id, timestamp from the commit), so
publishing the same image twice gives the same SBOM layer.

`read()` runs the two listings; publishing adds the files to the image in a last small layer at
layout.SBOM_DIR (layer.py), and next to the report."""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Iterable, Optional

from ..containers import container
from ..errors import PublishError
from ..images import lock

PYTHON_FILE = "python.cdx.json"
OS_FILE = "os-packages.txt"

# Run inside the image: every distribution on sys.path, the first one found winning (as imports do).
LIST_PYTHON = r"""
import importlib.metadata as md, json, sys
seen = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if not name or name.lower() in seen:
        continue
    lic = d.metadata.get("License-Expression") or d.metadata.get("License") or ""
    seen[name.lower()] = {"name": name, "version": d.version, "license": lic.strip().splitlines()[0][:200] if lic.strip() else ""}
print(json.dumps({"python": sys.version.split()[0], "packages": sorted(seen.values(), key=lambda p: p["name"].lower())}))
"""
DPKG_FORMAT = r"${Package}\t${Version}\t${Architecture}\n"


def read(client, image_id: str, platform: str, image: str) -> tuple[dict, str]:
    """LIST_PYTHON's listing and `dpkg-query`'s output, from the image itself, network off."""
    def run(entrypoint: str, *args: str) -> str:
        with container.start(client, image_id, args, error=PublishError, entrypoint=entrypoint,
                             network_mode="none", platform=platform) as running:
            code = running.wait()
            if code:
                raise PublishError(f"{entrypoint} exited {code}: {running.output()[-300:]}")
            return running.output(stderr=False)
    try:
        return json.loads(run("python", "-c", LIST_PYTHON)), run("dpkg-query", "-W", "-f", DPKG_FORMAT)
    except (PublishError, json.JSONDecodeError) as exc:
        raise PublishError(f"could not list the packages of {image}: {exc}") from None


def normalise(name: str) -> str:
    """PEP 503 name, as purls and lock files spell it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_hashes(lock_files: Iterable[Path]) -> dict[tuple[str, str], str]:
    """(name, version) -> sha256 of the wheel the lock files pin."""
    hashes = {}
    for path in lock_files:
        for wheel in lock.LockFile.read(path).wheels:
            hashes[(normalise(wheel.name), wheel.version)] = wheel.sha256
    return hashes


def cyclonedx(image: str, image_id: str, created: Optional[str], listing: dict,
              hashes: dict[tuple[str, str], str]) -> dict:
    """The CycloneDX 1.5 document for the Python environment `listing` (LIST_PYTHON's output)."""
    components = []
    for package in listing["packages"]:
        name, version = normalise(package["name"]), package["version"]
        purl = f"pkg:pypi/{name}@{version}"
        component = {"type": "library", "bom-ref": purl, "name": package["name"], "version": version, "purl": purl}
        if package.get("license"):
            component["licenses"] = [{"license": {"name": package["license"]}}]
        if (name, version) in hashes:
            component["hashes"] = [{"alg": "SHA-256", "content": hashes[(name, version)]}]
        components.append(component)
    repository, _, tag = image.rpartition(":")
    metadata = {
        "tools": {"components": [{"type": "application", "name": "kunlun-bundle sbom"}]},
        "component": {"type": "container", "bom-ref": image, "name": repository, "version": tag,
                      "hashes": [{"alg": "SHA-256", "content": image_id.split(":")[-1]}],
                      "properties": [{"name": "python.version", "value": listing["python"]}]},
    }
    if created:
        metadata["timestamp"] = created
    return {"bomFormat": "CycloneDX", "specVersion": "1.5",
            "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'kunlun-sbom:' + image_id)}",
            "version": 1, "metadata": metadata, "components": components}


def os_packages(dpkg_output: str) -> str:
    """The package list, sorted, one `name<TAB>version<TAB>arch` line each."""
    return "".join(f"{line}\n" for line in sorted(filter(None, dpkg_output.splitlines())))


def files(image: str, image_id: str, created: Optional[str], listing: dict, dpkg_output: str,
          lock_files: Iterable[Path]) -> dict[str, bytes]:
    """The SBOM files, by name, as they go into layout.SBOM_DIR and next to the report."""
    doc = cyclonedx(image, image_id, created, listing, wheel_hashes(lock_files))
    return {PYTHON_FILE: (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(),
            OS_FILE: os_packages(dpkg_output).encode()}
