"""Small charts as PNG bytes, with nothing but ``zlib``: what the plot tool hands the model.

No plotting library is installed, and the model needs only a glance (a curve going down, one
subset lagging), so this draws axes, a light grid, lines or grouped bars in a fixed palette, and
numbers at the axis ends in a 3x5 pixel font. Labels and exact values go in the tool's text.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence

RGB = tuple[int, int, int]
PALETTE: tuple[tuple[str, RGB], ...] = (
    ("blue", (31, 119, 180)), ("orange", (255, 127, 14)), ("green", (44, 160, 44)), ("red", (214, 39, 40)),
    ("purple", (148, 103, 189)), ("brown", (140, 86, 75)), ("pink", (227, 119, 194)), ("grey", (127, 127, 127)),
)
WHITE: RGB = (255, 255, 255)
AXIS: RGB = (40, 40, 40)
GRID: RGB = (225, 225, 225)
# 3x5 glyphs, one row per string, for axis numbers
GLYPHS = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "001", "010", "010"),
    "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"), "-": ("000", "000", "111", "000", "000"),
    "e": ("000", "111", "111", "100", "111"), "+": ("000", "010", "111", "010", "000"),
}


def encode_png(width: int, height: int, rgb: bytes | bytearray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (rows top to bottom, 3 bytes a pixel)."""
    if len(rgb) != width * height * 3:
        raise ValueError("pixel buffer does not match the size")
    raw = b"".join(b"\x00" + bytes(rgb[y * width * 3:(y + 1) * width * 3]) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


class Canvas:
    """A white RGB bitmap with the few drawing operations the charts need."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.pixels = bytearray(WHITE * (width * height))

    def set(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: RGB, thick: int = 1) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            x = round(x0 + (x1 - x0) * s / steps)
            y = round(y0 + (y1 - y0) * s / steps)
            self.rect(x, y, x + thick - 1, y + thick - 1, color)

    def text(self, x: int, y: int, value: str, color: RGB = AXIS, scale: int = 2) -> None:
        for k, ch in enumerate(value):
            glyph = GLYPHS.get(ch)
            if glyph is None:
                continue
            for row, bits in enumerate(glyph):
                for col, bit in enumerate(bits):
                    if bit == "1":
                        gx, gy = x + (k * 4 + col) * scale, y + row * scale
                        self.rect(gx, gy, gx + scale - 1, gy + scale - 1, color)

    def png(self) -> bytes:
        return encode_png(self.width, self.height, self.pixels)


def _num(value: float) -> str:
    return f"{value:.3g}"


def _frame(c: Canvas, lo: float, hi: float, left: int, top: int, right: int, bottom: int) -> None:
    for k in range(5):
        y = round(bottom - (bottom - top) * k / 4)
        c.line(left, y, right, y, GRID)
    c.line(left, top, left, bottom, AXIS)
    c.line(left, bottom, right, bottom, AXIS)
    c.text(4, top, _num(hi))
    c.text(4, bottom - 10, _num(lo))


def _range(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def line_chart(series: Sequence[Sequence[float]], width: int = 480, height: int = 300) -> bytes:
    """One line per series (x = index), colours in ``PALETTE`` order."""
    c = Canvas(width, height)
    left, top, right, bottom = 56, 12, width - 12, height - 24
    lo, hi = _range([v for s in series for v in s])
    _frame(c, lo, hi, left, top, right, bottom)
    longest = max((len(s) for s in series), default=1)
    c.text(right - 24, bottom + 8, str(max(0, longest - 1)))

    def xy(i: int, v: float) -> tuple[int, int]:
        x = left + (right - left) * (i / max(1, longest - 1))
        return round(x), round(bottom - (bottom - top) * (v - lo) / (hi - lo))

    for k, values in enumerate(series):
        color = PALETTE[k % len(PALETTE)][1]
        points = [xy(i, v) for i, v in enumerate(values) if math.isfinite(v)]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            c.line(x0, y0, x1, y1, color, thick=2)
        for x, y in points[:1] + points[-1:]:
            c.rect(x - 2, y - 2, x + 2, y + 2, color)
    return c.png()


def bar_chart(groups: Sequence[Sequence[float]], width: int = 480, height: int = 300, lo: float | None = 0.0,
              hi: float | None = 1.0) -> bytes:
    """Grouped bars: ``groups[g][k]`` is bar ``k`` of group ``g`` (colour ``k``); NaN leaves a gap."""
    c = Canvas(width, height)
    left, top, right, bottom = 56, 12, width - 12, height - 24
    auto_lo, auto_hi = _range([v for g in groups for v in g])
    lo = auto_lo if lo is None else min(lo, auto_lo)
    hi = auto_hi if hi is None else max(hi, auto_hi)
    _frame(c, lo, hi, left, top, right, bottom)
    n_groups = max(1, len(groups))
    slot = (right - left) / n_groups
    for g, bars in enumerate(groups):
        n = max(1, len(bars))
        bar_w = max(2, int(slot * 0.8 / n))
        for k, value in enumerate(bars):
            if not math.isfinite(value):
                continue
            x0 = round(left + g * slot + slot * 0.1 + k * bar_w)
            y = round(bottom - (bottom - top) * (value - lo) / (hi - lo))
            c.rect(x0, y, x0 + bar_w - 2, bottom - 1, PALETTE[k % len(PALETTE)][1])
    return c.png()
