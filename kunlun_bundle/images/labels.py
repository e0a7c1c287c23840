"""Every image label: its key (spelled only here), when it is written, and how it is quoted.

Three moments, three sets, one LABEL writer:

  in_dockerfile  what the matrix alone decides (title, version, kind, arch, flavour, Paddle version, and
                 the kind's own facts from kinds.py): rendered into the committed Dockerfiles
  at_build       what depends on more than the Dockerfile (a lock file's or the rootfs inputs' hash; on
                 model images the OCI description and the commit): appended by the build, see kinds.py
  published      a published (model or serving) image's build-time labels plus what publishing adds
                 (source image, smoke test, SBOM path), in the publish layer

One key per fact: the XPU runtime's version is `io.kunlun.xpu.runtime.version`, set on the framework
layer that installs the runtime and inherited by every image above it; CPU images have no runtime and
no such label."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .. import layout, naming
from ..matrix import Matrix

if TYPE_CHECKING:
    from .chain import Layer

OCI = "org.opencontainers.image"
TITLE, VERSION, DESCRIPTION, LICENSES = f"{OCI}.title", f"{OCI}.version", f"{OCI}.description", f"{OCI}.licenses"
REVISION, CREATED, SOURCE = f"{OCI}.revision", f"{OCI}.created", f"{OCI}.source"
GIT = {"revision": REVISION, "created": CREATED, "source": SOURCE}   # git_facts() key -> label

LAYER, ARCH, FLAVOUR, PADDLE_VERSION = "io.kunlun.layer", "io.kunlun.arch", "io.kunlun.flavour", "io.kunlun.paddle.version"
BASE_RELEASE, BASE_PACKAGES = "io.kunlun.base.release", "io.kunlun.base.packages"
BASE_INPUTS = "io.kunlun.base.inputs.sha256"       # the rootfs inputs' hash: a base is rebuilt only when it changes
XPU_RUNTIME_VERSION, XPU_CHIPS, XPU_SMI = "io.kunlun.xpu.runtime.version", "io.kunlun.xpu.chips", "io.kunlun.xpu.smi"
SUITE, SUITE_VERSION, MODEL = "io.kunlun.suite", "io.kunlun.suite.version", "io.kunlun.model"
MODEL_FILES = "io.kunlun.model.files"               # a serving image's export: {file: sha256}
MODEL_DIGEST = "io.kunlun.model.digest"             # ... the sha256 of that list (its tag has the first 12)
MODEL_TRAINED = "io.kunlun.model.trained"           # ... the checkpoint it was exported from, when it says so
LOCK = "io.kunlun.lock.sha256"                       # the lock file this layer installed
INPUTS = "io.kunlun.inputs.sha256"                   # everything the chain up to this layer was built from

SOURCE_IMAGE = "io.kunlun.source.image"   # id of the local image a published one was made from
SMOKE = "io.kunlun.smoke"                 # written only after the smoke test passed
SBOM = "io.kunlun.sbom"
SMOKE_PASSED = "passed: trained 1 step"           # a model image's (kinds.Model.smoke)
SMOKE_SERVED = "passed: served 1 inference"       # a serving image's (kinds.Package.smoke)

# The licence of what the images hold: PaddlePaddle and its suites (PaddleClas, -Detection, -Seg,
# -NLP, PARL) are Apache-2.0.
LICENSE = "Apache-2.0"


def lock_of(part: str) -> str:
    """A model image's record of one of its locks, e.g. io.kunlun.lock.paddleclas.sha256."""
    return f"io.kunlun.lock.{part}.sha256"


def quote(value: str) -> str:
    """A label value as Docker reads it: a JSON string, with `$` escaped so that no variable is substituted."""
    return json.dumps(value, ensure_ascii=False).replace("$", "\\$")


def instruction(labels: dict[str, str], sort: bool = True) -> str:
    """One LABEL instruction, sorted by key unless the order given is wanted (the committed Dockerfiles
    list the common facts first). One instruction, not one per label: the legacy builder commits every
    LABEL (and every build-time `--label`) as a step of its own."""
    pairs = sorted(labels.items()) if sort else labels.items()
    return "LABEL " + " \\\n      ".join(f"{key}={quote(value)}" for key, value in pairs)


def in_dockerfile(m: Matrix, layer: "Layer") -> dict[str, str]:
    """The labels the committed Dockerfile of a layer sets."""
    labels = {TITLE: layer.kind.title(m, layer), VERSION: layer.kind.version(m, layer),
              LAYER: str(layer.kind), ARCH: layer.arch.name}
    if layer.flavour:
        labels.update({FLAVOUR: layer.flavour, PADDLE_VERSION: m.paddle_version(layer.flavour, layer.arch.name)})
    return labels | layer.kind.labels(m, layer)


def at_build(m: Matrix, layer: "Layer", root: Path) -> dict[str, str]:
    """The labels the build adds to the committed Dockerfile.

    The commit-dependent labels (revision, created) go on the model layer only: a label on a lower
    layer changes that image's id, and every layer above it then misses Docker's cache (a suite
    layer is minutes to build, under emulation many). On the model layer a new commit costs one
    label step. `created` is the commit time, not the clock, so a rebuild of a commit is the same."""
    return layer.kind.build_labels(m, layer, root) | {INPUTS: inputs_digest(m, layer, root)}


def inputs_digest(m: Matrix, layer: "Layer", root: Path) -> str:
    """A hash of everything a layer is built from, its parent's digest included (the commit's facts
    aside): an image whose label equals what this checkout computes is what this checkout builds."""
    text = (root / layer.dockerfile).read_text(encoding="utf-8") if (root / layer.dockerfile).is_file() else ""
    parent = inputs_digest(m, layer.parent, root) if layer.parent else None
    key = json.dumps({"dockerfile": text, "inputs": layer.kind.inputs(m, layer, root), "parent": parent}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def commit(root: Path) -> dict[str, str]:
    """The OCI labels of the commit the images are built from."""
    return {GIT[k]: v for k, v in git_facts(root).items()}


def published(m: Matrix, layer: "Layer", root: Path, local_labels: dict, source_image: str) -> dict[str, str]:
    """A published image's labels: its layer's (model or package) build-time ones, where the local image
    already has revision/created/source those it was built with, plus the source image, the kind's smoke
    result and the SBOM path."""
    labels = at_build(m, layer, root)
    labels.update({key: local_labels[key] for key in GIT.values() if local_labels.get(key)})
    return labels | {SOURCE_IMAGE: source_image, SMOKE: layer.kind.smoke.label, SBOM: layout.SBOM_DIR}


@functools.lru_cache(maxsize=None)
def git_facts(root: Path) -> dict[str, str]:
    """source, revision and created (the commit time) for the OCI labels; what git cannot tell is left out."""
    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""
    facts = {"revision": git("rev-parse", "HEAD"), "created": git("log", "-1", "--format=%cI")}
    source = os.environ.get("KUNLUN_SOURCE_URL") or (
        f"{os.environ['GITHUB_SERVER_URL']}/{os.environ['GITHUB_REPOSITORY']}"
        if os.environ.get("GITHUB_SERVER_URL") and os.environ.get("GITHUB_REPOSITORY") else git("remote", "get-url", "origin"))
    facts["source"] = public_url(source)
    return {k: v for k, v in facts.items() if v}


def public_url(url: str) -> str:
    """A remote URL without credentials (https://user:token@host/x -> https://host/x)."""
    return re.sub(r"^([a-z+]+://)[^/@]*@", r"\1", url.strip())


def revision(root: Path) -> Optional[str]:
    return git_facts(root).get("revision")
