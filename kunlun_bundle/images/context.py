"""Build contexts as tarballs the bundle assembles itself, with normalised metadata: entries
sorted, one fixed mtime, owner root:root, modes 0644/0755. The same inputs give the same bytes,
which the later reproducibility work builds on. Files with a pinned sha256 are verified as they
are streamed into the tarball, so what Docker receives is what the lock file names."""
from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..errors import HashMismatchError


@dataclass(frozen=True)
class _Entry:
    source: Union[Path, bytes]
    sha256: Optional[str] = None
    executable: bool = False


class _HashingReader(io.RawIOBase):
    def __init__(self, f):
        self._f, self.digest = f, hashlib.sha256()

    def read(self, n=-1):
        data = self._f.read(n)
        self.digest.update(data)
        return data


class BuildContext:
    def __init__(self, mtime: int):
        self.mtime = mtime
        self._entries: dict[str, _Entry] = {}

    def add_bytes(self, arcname: str, data: bytes) -> None:
        self._entries[arcname] = _Entry(data)

    def add_file(self, arcname: str, path: Path, sha256: Optional[str] = None) -> None:
        self._entries[arcname] = _Entry(Path(path), sha256, bool(Path(path).stat().st_mode & 0o111))

    def add_tree(self, arcname: str, directory: Path) -> None:
        """A source directory, without caches and bytecode."""
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                self.add_file(f"{arcname}/{path.relative_to(directory).as_posix()}", path)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def digests(self) -> dict[str, str]:
        """{name: sha256} of every entry: a pinned file by the sha256 its lock gives (verified when the
        context is written), the others hashed here."""
        out = {}
        for name, e in self._entries.items():
            if e.sha256:
                out[name] = e.sha256
            elif isinstance(e.source, bytes):
                out[name] = hashlib.sha256(e.source).hexdigest()
            else:
                digest = hashlib.sha256()
                with open(e.source, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                out[name] = digest.hexdigest()
            out[name] += f":{0o755 if e.executable else 0o644:o}"
        return out

    def sources(self) -> dict:
        """{name: (assemble.Data, mode)}: the context as the image assembly reads it."""
        from .assemble import Data
        return {name: (Data(data=e.source) if isinstance(e.source, bytes) else Data(path=e.source),
                       0o755 if e.executable else 0o644) for name, e in self._entries.items()}

    def _info(self, name: str, size: int, kind=tarfile.REGTYPE, mode=0o644) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.type, info.mode, info.mtime = size, kind, mode, self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def write(self, out) -> None:
        """Write the tarball to a binary file object."""
        dirs = sorted({str(p) for name in self._entries for p in Path(name).parents if str(p) != "."})
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(set(dirs) | set(self._entries)):
                entry = self._entries.get(name)
                if entry is None:
                    tar.addfile(self._info(name, 0, tarfile.DIRTYPE, 0o755))
                elif isinstance(entry.source, bytes):
                    tar.addfile(self._info(name, len(entry.source)), io.BytesIO(entry.source))
                else:
                    size = entry.source.stat().st_size
                    with open(entry.source, "rb") as f:
                        reader = _HashingReader(f)
                        tar.addfile(self._info(name, size, mode=0o755 if entry.executable else 0o644), reader)
                    if entry.sha256 and reader.digest.hexdigest() != entry.sha256:
                        raise HashMismatchError(
                            f"{entry.source.name}: sha256 mismatch (lock file pins {entry.sha256}, file has "
                            f"{reader.digest.hexdigest()}): {entry.source}",
                            hint="the cached file was altered; delete it and run `invoke fetch` again")

    def tarball(self, directory: Optional[Path] = None):
        """The context as a temporary file, positioned at its start; deleted when closed."""
        f = tempfile.TemporaryFile(dir=directory)
        try:
            self.write(f)
        except BaseException:
            f.close()
            raise
        f.seek(0)
        return f
