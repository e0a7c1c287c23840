"""Images without an imaging library: solid-colour PNGs (RGB, or 8-bit grey for label masks)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> None:
    """A solid-colour RGB PNG."""
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    _write(path, width, height, 2, rows)


def rgb_png(path: Path, pixels: list[list[tuple[int, int, int]]]) -> None:
    """An RGB PNG from rows of (r, g, b) pixels."""
    height, width = len(pixels), len(pixels[0])
    rows = b"".join(b"\x00" + b"".join(bytes(p) for p in row) for row in pixels)
    _write(path, width, height, 2, rows)


def grey_png(path: Path, pixels: list[list[int]]) -> None:
    """An 8-bit greyscale PNG from rows of values 0..255 (e.g. a segmentation label mask)."""
    height, width = len(pixels), len(pixels[0])
    rows = b"".join(b"\x00" + bytes(row) for row in pixels)
    _write(path, width, height, 0, rows)


def _write(path: Path, width: int, height: int, colour_type: int, rows: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows))
                     + _chunk(b"IEND", b""))
