"""Images assembled deterministically from their Dockerfiles: the same inputs give the same image id.

Docker's legacy builder (the only one here) stamps build times into the image config and history,
and onto the directories COPY creates, so two builds of the same commit differ. The bundle therefore
runs Docker only where a command must run (RUN, in the throw-away `install` stage, network off) and
assembles each image itself from its Dockerfile's final stage, which may only use:

  FROM <parent> | scratch     ADD <rootfs>.tar /  (on scratch: the tarball is the layer, as is)
  COPY [--from=install] SRC... DST     ENV   LABEL   USER   WORKDIR   ENTRYPOINT   CMD

Each COPY becomes one layer tar written here: entries sorted, every mtime the matrix's
source_date_epoch, owner root (Docker's COPY rule). The config (created at the epoch, a history
without build times) follows from the chain's Dockerfiles, and the image goes to the daemon with
`docker load`, which skips the layers it already has. The image id is the sha256 of that config,
so it depends on the layer contents and the Dockerfiles only.

The Dockerfiles stay valid for a plain `docker build` (the same files; not the same bytes)."""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Optional

from ..errors import BuildError
from ..host.archive import sha256_of

FINAL_STAGE = ("ADD", "COPY", "ENV", "LABEL", "USER", "WORKDIR", "ENTRYPOINT", "CMD")


# --- the Dockerfile -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def __str__(self) -> str:
        return f"{self.keyword} {self.value}"

    @property
    def adds_layer(self) -> bool:
        return self.keyword in ("ADD", "COPY")


@dataclass
class Stage:
    base: str                       # what FROM names: an image, an id, or scratch
    name: Optional[str]
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue
        start = start or n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full, pending = (pending + line).strip(), ""
        keyword, _, value = full.partition(" ")
        instruction, start = Instruction(keyword.upper(), value.strip(), start), 0
        if instruction.keyword == "FROM":
            parts = instruction.value.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None))
        elif not stages:
            raise BuildError(f"line {instruction.line}: {instruction.keyword} before any FROM")
        else:
            stages[-1].instructions.append(instruction)
    return stages


def words(value: str, env: Optional[dict[str, str]] = None) -> list[str]:
    """Docker's word splitting for ENV and LABEL: whitespace separates, double quotes group, a
    backslash escapes (inside quotes only ", \\ and $), and with `env`, $VAR and ${VAR} expand."""
    out, word, quoted, started, i = [], "", False, False, 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and (not quoted or value[i + 1] in '"\\$'):
            word, started, i = word + value[i + 1], True, i + 2
        elif c == '"':
            quoted, started, i = not quoted, True, i + 1
        elif c == "$" and env is not None and (match := re.match(r"\$(?:\{(\w+)\}|(\w+))", value[i:])):
            word, started, i = word + env.get(match.group(1) or match.group(2), ""), True, i + match.end()
        elif c.isspace() and not quoted:
            if started:
                out.append(word)
            word, started, i = "", False, i + 1
        else:
            word, started, i = word + c, True, i + 1
    if quoted:
        raise BuildError(f"unterminated quote in: {value}")
    return out + [word] if started else out


def pairs(value: str, env: Optional[dict[str, str]] = None) -> list[tuple[str, str]]:
    found = []
    for word in words(value, env):
        key, sep, rest = word.partition("=")
        if not sep:
            raise BuildError(f"expected KEY=VALUE pairs, got {word!r} in: {value}")
        found.append((key, rest))
    return found


# --- the image config -----------------------------------------------------------------------------

def timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Image:
    """An image as config and layers; `document()` is the config whose sha256 is the image id."""
    platform: str                                        # linux/amd64
    epoch: int
    env: dict[str, str] = field(default_factory=dict)    # in order of first setting, as Docker keeps it
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    entrypoint: Optional[list[str]] = None
    cmd: Optional[list[str]] = None
    diff_ids: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def child(self) -> "Image":
        return Image(self.platform, self.epoch, dict(self.env), dict(self.labels), self.user, self.workdir,
                     self.entrypoint, self.cmd, list(self.diff_ids), list(self.history))

    def apply(self, ins: Instruction) -> None:
        """A metadata instruction, and the history entry of any instruction."""
        if ins.keyword == "ENV":
            self.env.update(pairs(ins.value, self.env))
        elif ins.keyword == "LABEL":
            self.labels.update(pairs(ins.value))
        elif ins.keyword == "USER":
            self.user = ins.value
        elif ins.keyword == "WORKDIR":
            self.workdir = ins.value
        elif ins.keyword in ("ENTRYPOINT", "CMD"):
            try:
                command = json.loads(ins.value)
            except json.JSONDecodeError:
                raise BuildError(f"line {ins.line}: {ins.keyword} must use the exec form [\"...\"]") from None
            if ins.keyword == "ENTRYPOINT":
                self.entrypoint, self.cmd = command, None   # as Docker: a new entrypoint drops the inherited CMD
            else:
                self.cmd = command
        entry = {"created": timestamp(self.epoch), "created_by": str(ins)}
        self.history.append(entry if ins.adds_layer else {**entry, "empty_layer": True})

    def document(self) -> bytes:
        config: dict = {"Env": [f"{k}={v}" for k, v in self.env.items()]}
        for key, value in (("Entrypoint", self.entrypoint), ("Cmd", self.cmd), ("WorkingDir", self.workdir),
                           ("User", self.user), ("Labels", dict(sorted(self.labels.items())))):
            if value:
                config[key] = value
        os_name, arch = self.platform.split("/")[:2]
        doc = {"architecture": arch, "os": os_name, "created": timestamp(self.epoch), "config": config,
               "rootfs": {"type": "layers", "diff_ids": self.diff_ids}, "history": self.history}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.document()).hexdigest()


def replay(stage: Stage, parent: Image, diff_ids: list[str]) -> Image:
    """An image already assembled, known again from its Dockerfile (config, history) and the daemon
    (its diff ids): what its children build on, without reading its layers."""
    image = parent.child()
    for ins in stage.instructions:
        image.apply(ins)
    image.diff_ids = list(diff_ids)
    if sum("empty_layer" not in h for h in image.history) != len(diff_ids):
        raise BuildError("an image in the chain was not assembled from the current Dockerfiles",
                         hint="rebuild it: `invoke build --no-cache`")
    return image


# --- layers ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Data:
    """Where one file's bytes are: a file on disk, bytes, or a member of a tar saved from the daemon
    (read through the one open TarFile, by the member's offset: no scan per file)."""
    path: Optional[Path] = None
    data: Optional[bytes] = None
    member: Optional[tarfile.TarInfo] = None
    tar: Optional[tarfile.TarFile] = None

    def open(self):
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.member is not None:
            return self.tar.extractfile(self.member)
        return open(self.path, "rb")

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.member.size if self.member is not None else self.path.stat().st_size


def _info(name: str, epoch: int, kind=tarfile.REGTYPE, mode=0o644, size=0, link="", uid=0, gid=0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, epoch, link
    info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
    return info


def ancestors(path: str) -> list[str]:
    """'opt/kunlun/venv' -> ['opt', 'opt/kunlun']."""
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class Layer:
    """One layer tar: entries added in any order, written sorted with normalised metadata."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.entries: dict[str, tuple[tarfile.TarInfo, Optional[Data]]] = {}
        self.archives: list[tarfile.TarFile] = []      # tars from the daemon its files are read from

    def directory(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self.entries[name] = (_info(name, self.epoch, tarfile.DIRTYPE, mode, uid=uid, gid=gid), None)

    def file(self, name: str, mode: int, size: int, data: Data) -> None:
        self.entries[name] = (_info(name, self.epoch, tarfile.REGTYPE, mode, size), data)

    def symlink(self, name: str, target: str) -> None:
        self.entries[name] = (_info(name, self.epoch, tarfile.SYMTYPE, 0o777, link=target), None)

    def parents_of(self, name: str) -> None:
        """The directories Docker's COPY creates when missing: 0755, root."""
        for parent in ancestors(name):
            self.entries.setdefault(parent, (_info(parent, self.epoch, tarfile.DIRTYPE, 0o755), None))

    def write(self, out) -> str:
        """The sorted tar into `out` (a binary file); returns its sha256, the layer's diff id."""
        digest = hashlib.sha256()

        class Hashing(io.RawIOBase):
            def writable(self) -> bool:
                return True

            def write(self, b) -> int:
                digest.update(b)
                return out.write(b)
        sink = io.BufferedWriter(Hashing(), buffer_size=1 << 20)
        try:
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:   # a stream: no seeking
                for name in sorted(self.entries):      # parents sort before their children
                    info, data = self.entries[name]
                    if data is None:
                        tar.addfile(info)
                    else:
                        with data.open() as f:
                            tar.addfile(info, f)
            sink.flush()
        finally:
            for archive in self.archives:
                archive.close()
        return "sha256:" + digest.hexdigest()


def add_archive(layer: Layer, raw: Path, destination: str, into_directory: bool) -> None:
    """A tar from the daemon (get_archive: its top entry is the source's basename) placed at
    `destination` the way Docker's COPY does it: a directory's contents go into destination, a file
    to destination (into it when it ends with /). Hard links become copies of their target: in
    sorted order a link could come before what it links to."""
    tar = tarfile.open(raw)
    layer.archives.append(tar)
    members = tar.getmembers()
    if not members:
        return
    top, is_dir = members[0].name.split("/")[0], members[0].isdir()
    by_name = {m.name: m for m in members}
    for member in members:
        rest = member.name[len(top):].lstrip("/")
        if is_dir:
            name = f"{destination}/{rest}" if rest else destination
        else:
            name = f"{destination}/{top}" if into_directory else destination
        if member.isdir():
            # The destination keeps the source directory's own mode and owner (copied onto itself,
            # e.g. /usr/local, that is what the parent has); what is inside belongs to root.
            layer.directory(name, member.mode & 0o7777, *((member.uid, member.gid) if name == destination else (0, 0)))
        elif member.issym():
            layer.symlink(name, member.linkname)
        elif member.isreg() or member.islnk():
            target = by_name[member.linkname] if member.islnk() else member
            layer.file(name, target.mode & 0o7777, target.size, Data(member=target, tar=tar))
        else:
            raise BuildError(f"{member.name}: a special file cannot go into an image layer here")
    layer.parents_of(destination)


@dataclass
class Sources:
    """Where a final stage's files come from."""
    context: dict[str, tuple[Data, int]]                    # build-context name -> (data, mode)
    from_stage: Optional[Callable[[str], Path]] = None      # path in the install stage -> raw tar of it


def copy_layer(ins: Instruction, sources: Sources, epoch: int) -> Layer:
    args = ins.value.split()
    stage = None
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if not flag.startswith("--from="):
            raise BuildError(f"line {ins.line}: COPY {flag} cannot be assembled reproducibly here")
        stage = flag.split("=", 1)[1]
    *srcs, dst = args
    into, destination = dst.endswith("/"), dst.strip("/")
    layer = Layer(epoch)
    for src in srcs:
        if stage is not None:
            if sources.from_stage is None:
                raise BuildError(f"line {ins.line}: COPY --from={stage}: the Dockerfile has no such stage")
            add_archive(layer, sources.from_stage(src), destination, into)
            continue
        name = src.strip("/")
        inside = sorted(n for n in sources.context if n.startswith(name + "/"))
        if name in sources.context:
            target = f"{destination}/{PurePosixPath(name).name}" if into else destination
            files = [(target, name)]
        elif inside:
            layer.directory(destination)
            files = [(f"{destination}/{n[len(name) + 1:]}", n) for n in inside]
        else:
            raise BuildError(f"line {ins.line}: COPY {src}: not in the build context")
        for target, n in files:
            data, mode = sources.context[n]
            layer.file(target, mode, data.size, data)
            layer.parents_of(target)
        layer.parents_of(destination)
    return layer


@dataclass
class Assembled:
    image: Image
    layers: list[tuple[str, Path]]      # (diff id, tar) of the layers this stage adds


def assemble(stage: Stage, parent: Image, sources: Sources, scratch: Path) -> Assembled:
    """The final stage applied to its parent: new layer tars written to `scratch`, config updated."""
    image, layers = parent.child(), []
    for ins in stage.instructions:
        if ins.keyword not in FINAL_STAGE:
            raise BuildError(f"line {ins.line}: {ins.keyword} in the final stage: only {', '.join(FINAL_STAGE)} "
                             "are assembled reproducibly (run commands in the install stage)")
        if ins.keyword == "ADD":
            src, dst = ins.value.split()
            if dst != "/" or stage.base != "scratch" or not src.endswith(".tar") or src not in sources.context:
                raise BuildError(f"line {ins.line}: ADD is only `ADD <rootfs>.tar /` on scratch")
            path = sources.context[src][0].path
            layers.append(("sha256:" + sha256_of(path), path))
        elif ins.keyword == "COPY":
            layer = copy_layer(ins, sources, image.epoch)
            fd, name = tempfile.mkstemp(dir=scratch, suffix=".layer.tar")
            with open(fd, "wb") as out:
                layers.append((layer.write(out), Path(name)))
        if ins.adds_layer:
            image.diff_ids.append(layers[-1][0])
        image.apply(ins)
    return Assembled(image, layers)


def write_archive(assembled: Assembled, tags: Iterable[str], out) -> None:
    """The image as `docker load` reads it: manifest.json, the config, and only the new layers (the
    daemon skips the layers it has, by chain id, without opening them)."""
    config, name = assembled.image.document(), f"{assembled.image.id.split(':')[1]}.json"
    manifest = [{"Config": name, "RepoTags": sorted(tags),
                 "Layers": [f"{d.split(':')[1]}/layer.tar" for d in assembled.image.diff_ids]}]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in (("manifest.json", json.dumps(manifest).encode()), (name, config)):
            tar.addfile(_info(member, 0, size=len(data)), io.BytesIO(data))
        for diff, path in assembled.layers:
            with open(path, "rb") as f:
                tar.addfile(_info(f"{diff.split(':')[1]}/layer.tar", 0, size=path.stat().st_size), f)
