"""Glyph table: each glyph rasterised once (Pillow + FreeType) into ink and column-mask bytes.

An 8-px-high strip is one byte per column (bit r = row r is *white*), so a word is the byte string of
its columns and a line of text is the concatenation of its words and spaces (pixar.render.renderer).

    Glyph.ink   bool [H, w]   ink columns, starting `left` px right of the pen
    Glyph.advance             pen advance in px (Pango's rounded advance)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixar.render import hexbox as hexbox_table
from pixar.render.text_rules import PANGO_DPI, PANGO_PT

REPLACEMENT = "\ufffd"
BIT = (1 << np.arange(8, dtype=np.uint16)).astype(np.uint8)  # row r -> bit r


@dataclass
class Glyph:
    ink: np.ndarray  # bool [H, w]: True where the glyph puts ink
    left: int  # column of ink[:, 0] relative to the pen position
    advance: int  # pen advance in px


def blank(height: int, advance: int) -> Glyph:
    return Glyph(np.zeros((height, 0), bool), 0, advance)


def white_bytes(ink: np.ndarray) -> bytes:
    """bool ink [8, w] -> w column bytes, bit r set where row r is white."""
    if not ink.shape[1]:
        return b""
    if ink.shape[0] == 8:  # one byte per column, bit r = row r: packbits along the rows
        return np.packbits(~ink, axis=0, bitorder="little").tobytes()
    return (~ink).T.astype(np.uint8).dot(BIT.astype(np.int64)).astype(np.uint8).tobytes()


LANE = np.dtype("<u8")  # eight column bytes read as one little-endian 64-bit lane
SHIFTS = np.arange(8, dtype=LANE)[:, None]  # [8, 1]: row r
LOW_BITS = np.array(0x0101010101010101, dtype=LANE)  # bit 0 of each of a lane's bytes


def lanes_to_rows(lanes: np.ndarray, out: np.ndarray) -> None:
    """Column bytes as lanes '<u8' [..., W/8] -> out '<u8' [..., 8, W/8]; `out` viewed as uint8 is the pixels
    [..., 8, W] (1 = white). Lane bit 8j + r is row r of column j, so (lane >> r) & 0x0101..01 holds row r of the
    lane's eight columns, one 0/1 byte each: two integer ops per eight pixels, every row written contiguously
    (no per-pixel unpack, no strided transpose)."""
    np.right_shift(lanes[..., None, :], SHIFTS, out=out)
    np.bitwise_and(out, LOW_BITS, out=out)


def columns_to_pixels(cols: np.ndarray, chunk: int = 16, out: np.ndarray | None = None) -> np.ndarray:
    """Column bytes uint8 [B, W] (W a multiple of 8) -> pixels uint8 [B, 8, W], 1 = white, written into `out`
    (a C-contiguous uint8 [B, 8, W], e.g. a data loader's batch buffer) or a fresh array. Converted `chunk`
    strips at a time so that each chunk's two passes stay in cache."""
    B, W = cols.shape
    lanes = cols.view(LANE)  # [B, W/8]
    if out is None:
        rows = np.empty((B, 8, W // 8), LANE)
    else:
        rows = out.view(LANE)  # [B, 8, W/8], the same memory
    for i in range(0, B, chunk):
        lanes_to_rows(lanes[i: i + chunk], rows[i: i + chunk])
    return rows.view(np.uint8)


def fallback_size(font_size: int) -> float:
    """Pillow size that gives FreeType the char size cairo gives it for Pango's em (569/64 px at 9)."""
    return round(font_size * PANGO_DPI * PANGO_PT / 72 / 9 * 64) / 64


def rasterise(font: ImageFont.FreeTypeFont, text: str, baseline: int, height: int) -> Glyph:
    """Draw `text` with Pillow at pen 0 on baseline `baseline`; ink cropped to its columns."""
    advance = int(round(font.getlength(text)))
    margin = 2 * int(font.size) + 4
    canvas = Image.new("L", (advance + 2 * margin, height), 255)
    ImageDraw.Draw(canvas).text((margin, baseline), text, font=font, fill=0, anchor="ls")
    ink = np.asarray(canvas) <= 127
    cols = np.flatnonzero(ink.any(axis=0))
    if not cols.size:
        return blank(height, advance)
    return Glyph(ink[:, cols[0]: cols[-1] + 1].copy(), int(cols[0]) - margin, advance)


def raise_box_bottom(ink: np.ndarray, baseline: int, lo: int, hi: int) -> None:
    """A line of hex boxes alone, drawn half a pixel higher by Pango: the bottom border row (baseline + 1) is
    also inked one row up, columns lo:hi (measured on the authors' renderer)."""
    b = baseline + 1
    lo, hi = max(lo, 0), min(hi, ink.shape[1])
    if 1 <= b < ink.shape[0] and hi > lo:
        ink[b - 1, lo:hi] |= ink[b, lo:hi]


def hexbox(ch: str, height: int, baseline: int, table: dict | None = None) -> Glyph:
    """Pango's hex box for a character no font has: a frame and the code point's hex digits in small
    type, as the authors' renderer draws it (pixel data captured from it: pixar/render/hexbox.py on a Pixeloid
    line; `table`: another capture, e.g. pixar.render.hexbox_variants.GONOTO_LINE for a line that uses GoNoto)."""
    t = table or {"BASELINE": hexbox_table.BASELINE, "ADVANCE": hexbox_table.ADVANCE, "SLOT_X": hexbox_table.SLOT_X,
                  "FRAMES": hexbox_table.FRAMES, "DIGITS": hexbox_table.DIGITS}
    digits = f"{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"{ord(ch):06X}"
    n = len(digits)
    frame = t["FRAMES"][n]  # rows (top..bottom at baseline 7) of '#'/'.' strings
    ink = np.array([[c == "#" for c in row] for row in frame], dtype=bool)
    for k, d in enumerate(digits):
        pat = t["DIGITS"].get((n, k, d))
        if pat is None:
            continue
        x0 = t["SLOT_X"][n][k]
        ink[:, x0: x0 + len(pat[0])] |= np.array([[c == "#" for c in row] for row in pat], dtype=bool)
    shift = baseline - t["BASELINE"]  # the table is captured on a single line with a box
    out = np.zeros((height, ink.shape[1]), bool)
    lo, hi = max(shift, 0), min(shift + ink.shape[0], height)  # the table's rows land on rows lo:hi of the strip
    if hi > lo:
        out[lo:hi] = ink[lo - shift: hi - shift]
    return Glyph(out, 0, t["ADVANCE"][n])
