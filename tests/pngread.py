"""A small PNG reader for tests (8-bit RGB or RGBA, not interlaced): the size and the pixels
of a screenshot, with no imaging library."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]  # each row's pixels, ``channels`` bytes a pixel

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        c = self.channels
        return tuple(self.rows[y][x * c : x * c + 3])


def _unfilter(kind: int, row: bytearray, prev: bytes, bpp: int) -> None:
    n = len(row)
    if kind == 0:
        return
    if kind == 2:  # Up: bytewise sum with the previous row, as big integers (no carries)
        a, b = int.from_bytes(row, "big"), int.from_bytes(prev, "big")
        low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
        row[:] = (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(n, "big")
        return
    if kind == 1:  # Sub
        for i in range(bpp, n):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 3:  # Average
        for i in range(n):
            row[i] = (row[i] + (((row[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(bpp):
            row[i] = (row[i] + prev[i]) & 0xFF
        for i in range(bpp, n):
            a, b, c = row[i - bpp], prev[i], prev[i - bpp]
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - c - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            row[i] = (row[i] + pred) & 0xFF
    else:
        raise ValueError(f"unknown PNG filter {kind}")


def read_png(data: bytes) -> Image:
    """The image in ``data``; ValueError if it is not an 8-bit RGB(A) PNG."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    pos, idat, header = len(SIGNATURE), [], None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, color, _c, _f, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {color}")
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels + 1
    if len(raw) != stride * height:
        raise ValueError("the image data does not match its size")
    rows: list[bytes] = []
    prev = bytes(width * channels)
    for y in range(height):
        row = bytearray(raw[y * stride + 1 : (y + 1) * stride])
        _unfilter(raw[y * stride], row, prev, channels)
        prev = bytes(row)
        rows.append(prev)
    return Image(width, height, channels, rows)
