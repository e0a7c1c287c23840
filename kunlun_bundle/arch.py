"""Architecture names. The matrix declares each arch's canonical name and the aliases users type;
this module resolves what a user typed, plus the keywords `native` (this host) and `all`."""
from __future__ import annotations

import platform
from dataclasses import dataclass

from .errors import UsageError

KEYWORDS = ("native", "all")


@dataclass(frozen=True)
class Arch:
    name: str                 # canonical: used in tags, file names and lock paths
    platform: str             # Docker platform, e.g. linux/arm64
    debian: str               # Debian architecture, e.g. arm64
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def __str__(self) -> str:
        return self.name


class Archs:
    """The archs of one matrix, looked up by canonical name, alias or keyword."""

    def __init__(self, archs: list[Arch]):
        self._archs = list(archs)
        self._by_name = {n.lower(): a for a in archs for n in a.names}

    def __iter__(self):
        return iter(self._archs)

    def __getitem__(self, name: str) -> Arch:
        return self.resolve_one(name)

    def names_help(self) -> str:
        parts = [f"{a.name} ({', '.join(a.aliases)})" if a.aliases else a.name for a in self._archs]
        return ", ".join(parts) + ", or " + " / ".join(KEYWORDS)

    def native(self) -> Arch:
        machine = platform.machine().lower()
        if machine not in self._by_name:
            raise UsageError(f"this host's architecture '{machine}' is not in matrix.yaml",
                             hint=f"pass --arch explicitly: {self.names_help()}")
        return self._by_name[machine]

    def resolve_one(self, text: str) -> Arch:
        key = text.strip().lower()
        if key == "native":
            return self.native()
        if key not in self._by_name:
            raise UsageError(f"unknown arch '{text}'", hint=f"valid archs: {self.names_help()}")
        return self._by_name[key]

    def resolve(self, text: str | None) -> list[Arch]:
        """'arm', 'x86,arm', 'all' or None (the host's arch) -> archs, in matrix order, no repeats."""
        if not text:
            return [self.native()]
        wanted: list[Arch] = []
        for part in text.split(","):
            picked = self._archs if part.strip().lower() == "all" else [self.resolve_one(part)]
            wanted += [a for a in picked if a not in wanted]
        return [a for a in self._archs if a in wanted]
