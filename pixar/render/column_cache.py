"""The fast path's caches and memory (pixar.render.renderer): column bytes per character and per word, and the
blocks render() takes its strips from.

    CharColumns  char -> column bytes, for characters whose pixels never depend on their neighbours
    WordColumns  word -> column bytes (a line is space.join of its words); bounded
    StripBlocks  strips handed out as views of 4-MiB blocks
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from pixar.render import text_rules as tr
from pixar.render.glyph_columns import LANE, white_bytes
from pixar.render.itemise import needs_bidi

if TYPE_CHECKING:
    from pixar.render.renderer import Renderer

MAIN = "main"


class CharColumns(dict):
    """char -> column bytes of a character whose pixels never depend on its neighbours in a main-font
    line: a main-font glyph whose ink lies inside its advance, a space (blank columns) or an invisible
    character (b""). Any other character raises KeyError. Filled on first sight (one entry per
    distinct character seen)."""

    def __init__(self, renderer: "Renderer"):
        super().__init__()
        self.renderer = renderer

    def __missing__(self, ch: str) -> bytes | None:
        r = self.renderer
        char_class, tag = r.char_class(ch)
        b = None
        if char_class == tr.ZERO and not needs_bidi(ch):  # explicit bidi controls reorder: the shaped path
            b = b""
        elif char_class == tr.SPACE:
            b = b"\xff" * r.glyph(ch).advance
        elif char_class == tr.GRAPH and tag == MAIN:
            g = r.glyph(ch)
            if g.left >= 0 and g.left + g.ink.shape[1] <= g.advance:
                ink = np.zeros((r.cfg.patch_size, g.advance), bool)
                ink[:, g.left: g.left + g.ink.shape[1]] = g.ink
                b = white_bytes(ink)
        self[ch] = b
        if b is None:
            raise KeyError(ch)
        return b


class WordColumns(dict):
    """word -> its column bytes, for words whose pixels do not depend on their neighbours (the fast
    path: a line is `space.join` of its words). Built on first sight (`__missing__`); any other word
    raises KeyError and is remembered as such. Bounded: cleared when it holds `size` words; words
    longer than `long_word` characters are built but not kept."""

    def __init__(self, renderer: "Renderer", size: int, long_word: int):
        super().__init__({"": b""})
        self.renderer, self.size, self.long_word = renderer, size, long_word
        self.impure: set[str] = set()

    def __missing__(self, word: str) -> bytes:
        if word in self.impure:
            raise KeyError(word)
        b = self.renderer.pure_word(word)
        if b is None:
            if len(self.impure) < self.size:
                self.impure.add(word)
            raise KeyError(word)
        if len(word) <= self.long_word:
            if len(self) >= self.size:
                self.clear()
                self[""] = b""
            self[word] = b
        return b


class StripBlocks:
    """Memory for render()'s strips: blocks of `n` strips allocated at once (>= 4 MiB, so numpy asks the kernel
    for huge pages), each strip handed out as a view. A fresh small array costs a page fault per 4 KiB (46 KB
    per strip at the paper's width), about half of render()'s time on our machines. A block is freed when all
    its strips are gone: holding one strip keeps its block alive (at most `n` strips, ~4 MiB). Blocks handed out
    are remembered (at most `keep_bytes` of them), and when one is needed, a remembered block whose strips are
    all gone (no reference left but this list's) is written again instead of asking the kernel for fresh pages
    (10-50 us per 46-KB strip on our machines; docs/rendering.md "Speed")."""

    def __init__(self, height: int, width: int, block_bytes: int = 4 << 20, most: int = 256,
                 keep_bytes: int = 128 << 20):
        if width % 8:
            raise ValueError(f"strip width must be a multiple of 8 px (64-bit lanes of columns), got {width}")
        self.height, self.width = height, width
        self.n = max(1, min(most, -(-block_bytes // (height * width))))
        self.keep = max(1, keep_bytes // (self.n * height * width))
        self.lanes, self.pixels, self.used = None, None, self.n
        self.blocks: list[np.ndarray] = []  # remembered blocks (lanes arrays), oldest first

    def _block(self) -> np.ndarray:
        blocks = self.blocks
        for k in range(len(blocks)):
            # references: the list and getrefcount's argument (the current block is also self.lanes: never free)
            if sys.getrefcount(blocks[k]) == 2:
                blocks.append(blocks.pop(k))
                return blocks[-1]
        lanes = np.empty((self.n, self.height, self.width // 8), LANE)
        if len(blocks) < self.keep:
            blocks.append(lanes)
        return lanes

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """A new strip (contents undefined) as (lanes '<u8' [H, W/8], the same memory as pixels uint8 [1, H, W])."""
        if self.used == self.n:
            self.lanes = self.pixels = None  # the block in use until now: reusable once its strips are gone
            self.lanes = self._block()
            self.pixels = self.lanes.view(np.uint8)[:, None]  # [n, 1, H, W]
            self.used = 0
        i = self.used
        self.used = i + 1
        return self.lanes[i], self.pixels[i]


class BatchArrays:
    """Memory for render_batch's results when the caller passes no `out=`: the last `keep` arrays handed out are
    remembered, and one the caller has let go of (no reference left but this pool's: no view, tensor or
    memoryview of it alive) is written again instead of asking the kernel for fresh pages, which costs 10-70 us
    per 46-KB strip on our machines (docs/rendering.md "Speed"). Arrays over `most_bytes` are never kept, so the
    pool holds at most keep x most_bytes."""

    def __init__(self, keep: int = 2, most_bytes: int = 64 << 20):
        self.keep, self.most_bytes = keep, most_bytes
        self.arrays: list[np.ndarray] = []

    def take(self, shape: tuple[int, int, int]) -> np.ndarray:
        """A C-contiguous uint8 array of `shape` (contents undefined) that nobody else references."""
        arrays = self.arrays
        for k in range(len(arrays)):
            # references: the list and getrefcount's argument; any more means the caller still holds it
            if arrays[k].shape == shape and sys.getrefcount(arrays[k]) == 2:
                arrays.append(arrays.pop(k))  # most recently used last
                return arrays[-1]
        a = np.empty(shape, np.uint8)
        if a.nbytes <= self.most_bytes:
            self.arrays = (self.arrays + [a])[-self.keep:]
        return a
