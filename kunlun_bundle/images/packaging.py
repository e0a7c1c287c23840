"""`invoke package MODEL --export DIR`: a serving image of one exported model.

The chain is base -> paddle -> serving -> package (kinds.py): the serving layer (one per suite x arch x
flavour) holds the suite without its training dependencies; the package layer copies the
entrypoint and the export's files in, with `serve` as the command. The export decides the image: its
files' sha256s are a label, their digest is the tag, and the same export on the same commit is the
same image id (the assembly is the bundle's own, as for every layer)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from ..errors import InputError, UsageError
from ..matrix import Matrix

REQUIRED = ("inference.json", "inference.pdiparams", "inference.yml")   # what `export` writes


@dataclass(frozen=True)
class Export:
    directory: Path
    files: dict[str, str]          # path under the directory -> sha256
    config: dict                   # inference.yml

    @property
    def digest(self) -> str:
        """One hash of every file and its name: what the serving image's tag and label carry."""
        return hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()

    @property
    def trained(self) -> Optional[dict]:
        """The checkpoint the export was made from, when inference.yml says (Global.trained)."""
        return (self.config.get("Global") or {}).get("trained")

    @classmethod
    def read(cls, directory: Path | str | None, model: str) -> "Export":
        if directory is None:
            raise UsageError("--export DIR is required: the directory `export` wrote (inference.json, "
                             "inference.pdiparams, inference.yml)")
        directory = Path(directory)
        if not directory.is_dir():
            raise UsageError(f"--export {directory}: no such directory",
                             hint=f"export one with `invoke run {model} --output OUT -- export` (it writes OUT/inference)")
        missing = [name for name in REQUIRED if not (directory / name).is_file()]
        if missing:
            raise InputError(f"--export {directory}: no {', '.join(missing)} in it (is it what `export` wrote?)",
                             hint=f"`invoke run {model} --output OUT -- export` writes OUT/inference")
        try:
            config = yaml.safe_load((directory / "inference.yml").read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"{directory / 'inference.yml'}: not YAML ({exc})") from None
        exported = (config or {}).get("Global", {}).get("model") if isinstance(config, dict) else None
        if exported != model:
            raise UsageError(f"--export {directory}: it is an export of {exported or 'an unknown model'}, not {model}",
                             hint=f"package it as `invoke package {exported} --export {directory}`" if exported else None)
        files = {}
        for path in sorted(directory.rglob("*")):
            if path.is_symlink() or path.name.startswith(".") and path.is_dir():
                continue
            if path.is_file():
                files[path.relative_to(directory).as_posix()] = _sha256(path)
        return cls(directory, files, config)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_servable(m: Matrix, model: str) -> None:
    if model not in m.models:
        raise UsageError(f"unknown model '{model}'", hint=f"models: {', '.join(m.models)}")
    if not m.servable(model):
        suite = m.models[model].suite
        raise UsageError(f"{model}: {suite}'s models have no serving image (their predict route imports the whole "
                         f"suite; the suites with a `serving` list in matrix.yaml have one)",
                         hint=f"serve the export from the training image: `invoke serve {model} --export DIR`")
