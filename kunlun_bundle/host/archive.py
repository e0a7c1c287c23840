"""A tar with a checksummed manifest: what `invoke bundle export` and `invoke save` write and their
import/load verify. MANIFEST.json is the first member and lists every other member with its sha256
and size; reading verifies each member while staging it in a scratch directory, and only a wholly
verified archive is handed back, so a corrupt one is refused (naming the member) before anything is
put where it is used. Members are written in order with fixed metadata: the same files, the same bytes."""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import HashMismatchError, InputError

MANIFEST = "MANIFEST.json"
CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """A file's sha256 (hex), read in blocks: the one file digest of the bundle."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, mtime, 0o644, 0, 0, "", ""
    return info


def write(out: Path, kind: str, members: dict[str, Path], meta: dict, mtime: int = 0) -> dict:
    """Write `members` (name in the archive -> file) under a manifest of `kind` with `meta`; returns
    the manifest. Written to a .part file and renamed when complete."""
    for name in members:
        _check_name(name)
    files = {name: {"sha256": sha256_of(path), "size": path.stat().st_size} for name, path in sorted(members.items())}
    manifest = {"kind": kind, "format": 1, **meta, "files": files}
    data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    part = out.with_name(out.name + ".part")
    try:
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(MANIFEST, len(data), mtime), _bytes(data))
            for name in files:
                with open(members[name], "rb") as f:
                    tar.addfile(_info(name, files[name]["size"], mtime), f)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.rename(out)
    return manifest


def _bytes(data: bytes):
    import io
    return io.BytesIO(data)


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name in ("", MANIFEST):
        raise InputError(f"{name!r} is not a valid archive member name")


@dataclass
class Verified:
    manifest: dict
    files: dict[str, Path]     # member name -> its verified copy in the staging directory

    def __getitem__(self, name: str) -> Path:
        return self.files[name]


@contextlib.contextmanager
def verified(path: Path, kind: str, scratch: Path) -> Iterator[Verified]:
    """Read the archive, checking every member against the manifest while staging it under `scratch`;
    yields the verified copies (removed afterwards). A missing, extra, damaged or differing member is an
    error naming it, raised before anything is yielded."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    staging = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    try:
        yield Verified(*_read(Path(path), kind, staging))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read(path: Path, kind: str, staging: Path) -> tuple[dict, dict[str, Path]]:
    refuse = f"{path} is refused: nothing was imported"
    try:
        with tarfile.open(path, "r|") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise InputError(f"{path}: not a kunlun {kind} archive (its first member is not {MANIFEST})")
            try:
                manifest = json.loads(tar.extractfile(first).read())
                files = manifest["files"]
                assert manifest.get("kind") == kind and isinstance(files, dict)
            except (ValueError, KeyError, AssertionError, TypeError):
                raise InputError(f"{path}: its {MANIFEST} is damaged or is not a {kind} manifest", hint=refuse) from None
            staged: dict[str, Path] = {}
            while (member := tar.next()) is not None:
                name = member.name
                if name not in files or name in staged:
                    raise InputError(f"{path}: member {name} is not in the manifest", hint=refuse)
                if not member.isfile():
                    raise InputError(f"{path}: member {name} is not a regular file", hint=refuse)
                target = staging / f"{len(staged):06d}"
                digest = hashlib.sha256()
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        digest.update(block)
                        dst.write(block)
                if digest.hexdigest() != files[name]["sha256"]:
                    raise HashMismatchError(f"{path}: member {name} is corrupt (the manifest pins sha256 "
                                            f"{files[name]['sha256']}, the member has {digest.hexdigest()})", hint=refuse)
                staged[name] = target
    except tarfile.TarError as exc:
        raise InputError(f"{path}: the archive is damaged ({exc})", hint=refuse) from None
    missing = sorted(set(files) - set(staged))
    if missing:
        raise InputError(f"{path}: member(s) missing: {', '.join(missing[:5])}", hint=refuse)
    return manifest, staged
