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


def read_png(path: Path) -> tuple[int, int, list[list[int]]]:
    """(width, height, rows of pixel values) of an 8-bit single-channel PNG (grey, or palette
    indices as PaddleSeg's pseudo-colour masks are): enough to compare label masks in tests."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunks.setdefault(kind, []).append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and colour in (0, 3) and interlace == 0, f"{path}: not an 8-bit single-channel PNG"
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    rows, previous = [], [0] * width
    for y in range(height):
        kind, line = raw[y * (width + 1)], list(raw[y * (width + 1) + 1:(y + 1) * (width + 1)])
        for x in range(width):   # undo the row filter (PNG spec 9.2; one byte per pixel)
            a, b = line[x - 1] if x else 0, previous[x]
            c = previous[x - 1] if x else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        previous = line
    return width, height, rows
