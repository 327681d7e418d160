"""Line layout of the Renderer (pixar.render.renderer): a text's words and lines as column bytes or ink.

`LineLayout` is the layout half of `Renderer` (its base class): the fast Latin line (`_fast_line`: one
WordColumns lookup per word, one join; tabs to Pango's stops), the general path's word runs and lines
(`_word_run`, `_line_runs`: fallback fonts, hex boxes, several lines, bidi), shaped lines
(pixar.render.shaping), the bounded prefix of a long text (`_bounded`, so the cost never depends on the
input length) and the line baselines Pango gives a stacked block. The caches it reads (`_runs`, `_chars`,
`_words`, `_space`, `_white`, `_fast_limit`) are built by `_init_layout`, called from
`Renderer._init_runtime` after the glyph table's own caches.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from pixar.render import shaping
from pixar.render import text_rules as tr
from pixar.render.column_cache import CharColumns, WordColumns
from pixar.render.glyph_columns import raise_box_bottom, white_bytes
from pixar.render.glyph_table import FALLBACK, MAIN, GlyphTable
from pixar.render.itemise import needs_bidi

__all__ = ["LineLayout", "WordRun"]

_SEPARATORS = re.compile("([ \t])")
# Line metrics (ascent, descent) in px as Pango's hinted metrics give them at the paper's em.
_METRICS = tr.LINE_METRICS  # keys: MAIN, FALLBACK, tr.HEXBOX

@dataclass
class WordRun:
    """A run of non-separator characters laid out from pen 0 (general path)."""
    ink: np.ndarray  # bool [H, w]
    left: int
    advance: int
    font_out: str  # font state after the run (what a following space is drawn in)
    fallback: Counter
    unknown: Counter
    metrics: tuple[int, int]  # max (ascent, descent) of the fonts used


class LineLayout(GlyphTable):
    """Words and lines -> column bytes (fast path) or ink (general path); the base of Renderer."""

    WORD_CACHE_SIZE = 50_000
    LONG_WORD = 64  # longer runs are composed but not cached

    def _init_layout(self) -> None:
        """The layout caches (rebuilt after unpickling, as Renderer drops them from its state)."""
        c = self.cfg
        self._runs: dict[tuple, WordRun] = {}
        self._chars = CharColumns(self)
        self._words = WordColumns(self, self.WORD_CACHE_SIZE, self.LONG_WORD)
        self._space = None  # column bytes of " " (built on first use: needs the fonts)
        self._white = b"\xff" * c.width
        self._fast_limit = c.width // 4 + 64  # longer texts go through the bounded general path

    # ---- words ------------------------------------------------------------------------------
    def pure_word(self, word: str) -> bytes | None:
        """Column bytes of a word whose pixels do not depend on its neighbours (main font only, ink
        inside its advance); None for any other word. Joins per-character bytes when every character
        is self-contained, else composes the word's glyphs (e.g. a glyph reaching into its neighbour)."""
        chars = self._chars
        try:
            parts = [chars[c] for c in word]
        except KeyError:
            parts = [None]
        if None not in parts:
            return b"".join(parts)
        run = self._word_run(word, MAIN, self.baseline)
        first = self.char_class(word[0])
        ok = (first[0] == tr.GRAPH and first[1] == MAIN and run.font_out == MAIN and not run.fallback
              and not run.unknown and run.left >= 0 and run.left + run.ink.shape[1] <= run.advance
              and all(self.char_class(c)[0] in (tr.GRAPH, tr.SPACE, tr.ZERO) for c in word) and not needs_bidi(word))
        if not ok:
            return None
        ink = np.zeros((self.cfg.patch_size, run.advance), bool)
        ink[:, run.left: run.left + run.ink.shape[1]] = run.ink
        return white_bytes(ink)

    def _word_run(self, word: str, font: str, baseline: int) -> WordRun:
        key = (word, font, baseline)
        run = self._runs.get(key)
        if run is not None:
            return run
        pen, placed, fallback, unknown = 0, [], Counter(), Counter()
        asc, desc = _METRICS[MAIN]
        for ch in word:
            char_class, own = self.char_class(ch)
            if char_class == tr.GRAPH:
                if not tr.is_mark(ch):
                    font = own
                asc, desc = max(asc, _METRICS[own][0]), max(desc, _METRICS[own][1])
            elif char_class == tr.HEXBOX:
                asc, desc = max(asc, _METRICS[tr.HEXBOX][0]), max(desc, _METRICS[tr.HEXBOX][1])
            self._count(ch, fallback, unknown)
            g = self.glyph_in(font, ch, baseline)
            if g.ink.shape[1]:
                placed.append((pen + g.left, g.ink))
            pen += g.advance
        lo = min((x for x, _ in placed), default=0)
        hi = max((x + ink.shape[1] for x, ink in placed), default=0)
        ink = np.zeros((self.cfg.patch_size, max(hi - lo, 0)), bool)
        for x, g in placed:
            ink[:, x - lo: x - lo + g.shape[1]] |= g
        run = WordRun(ink, lo, pen, font, fallback, unknown, (asc, desc))
        if len(word) <= self.LONG_WORD:
            if len(self._runs) >= self.WORD_CACHE_SIZE:
                self._runs.clear()
            self._runs[key] = run
        return run

    # ---- lines ------------------------------------------------------------------------------
    def _fast_line(self, text: str) -> bytes | None:
        """Fast path: a single-line text of self-contained words -> its column bytes (one dict lookup
        per word, one join); None when the general path is needed (tabs, line breaks, NUL, fallback
        fonts, hex boxes, ...: any word WordColumns refuses)."""
        if self.cfg.whitespace == "spaces":
            if "\x00" in text:
                return None
            text = self.normalise(text)
        elif "\n" in text:
            text = text.replace("\n", " ")
        space = self._space
        if space is None:
            space = self._space = b"\xff" * self.glyph(" ").advance
        words = self._words.__getitem__
        try:
            if "\t" not in text:
                return space.join(map(words, text.split(" ")))
            # tabs: Pango's stops every 8 main-font spaces from the line start (pixar.render.text_rules)
            parts = text.split("\t")
            line = space.join(map(words, parts[0].split(" ")))
            for part in parts[1:]:
                line += self._white[: tr.tab_advance(len(line), len(space))] + space.join(map(words, part.split(" ")))
            return line
        except KeyError:
            return None

    def _line_runs(self, line: str, baseline: int, fallback: Counter, unknown: Counter):
        """General path: [(x, WordRun)], advance, (ascent, descent) of one line."""
        tokens = [t for t in _SEPARATORS.split(line) if t]
        font = MAIN
        for ch in line:  # leading whitespace takes the font of the first visible character
            char_class, tag = self.char_class(ch)
            if char_class == tr.GRAPH:
                font = tag
                break
        pen, out, asc, desc = 0, [], *_METRICS[MAIN]
        space = self._space_advance(MAIN, " ")
        for tok in tokens:
            if tok == "\t":
                pen += tr.tab_advance(pen, space)
            elif tok == " ":
                pen += self._space_advance(font, " ")
            else:
                run = self._word_run(tok, font, baseline)
                for c, n in run.fallback.items():
                    fallback[c] += n
                for c, n in run.unknown.items():
                    unknown[c] += n
                out.append((pen, run))
                pen, font = pen + run.advance, run.font_out
                asc, desc = max(asc, run.metrics[0]), max(desc, run.metrics[1])
        return out, pen, (asc, desc)

    def _bounded(self, text: str) -> tuple[str, bool]:
        """The shortest prefix of `text` (cut at a space when it can be) that overfills the strip, or
        the whole text; True when it was cut. Grows the prefix 4x while it still fits, up to `width` +
        64 characters: a text that long which still fits (invisible characters, many short lines) is
        laid out from that prefix and flagged truncated, so the cost never depends on the input length."""
        n, cap = self._fast_limit, self.cfg.width + 64
        while True:
            if n >= len(text):
                return text, False
            t = text[:n]
            cut = t.rfind(" ", n // 2)
            t = t[:cut] if cut > 0 else t
            self.chars_laid_out += len(t)
            if n >= cap:
                return t, True
            line = self._fast_line(t)
            if line is not None:  # exact width
                width = len(line)
            else:  # a lower bound of the widest line
                lines = tr.split_lines(tr.prepare(t, self.cfg.whitespace)) if self.cfg.whitespace == "pango" else [t]
                width = max(sum(map(self._min_advance, ln)) for ln in lines)
            if width > self.cfg.width + 8:
                return t, True
            n = min(4 * n, cap)

    def _min_advance(self, ch: str) -> int:
        """A lower bound of the advance of `ch` in any context (spaces and tabs depend on it)."""
        char_class = self.char_class(ch)[0]
        if char_class == tr.TAB:
            return self._space_advance(MAIN, " ")
        if char_class == tr.SPACE and self.fallback_path:
            return min(self._space_advance(MAIN, ch), self._space_advance(FALLBACK, ch))
        return self.glyph(ch).advance

    def _text_columns(self, text: str, x0: int, fallback: Counter, unknown: Counter) -> tuple[bytes | np.ndarray, int, bool]:
        """Column bytes (fast path) or bool ink [H, W] (general path) of one text drawn from x0, its
        advance, and whether the text was cut before layout (`_bounded`)."""
        cfg, cut = self.cfg, False
        if len(text) > self._fast_limit:
            text, cut = self._bounded(text)  # counts what it lays out
        else:
            self.chars_laid_out += len(text)
        if "\x00" in text:
            self._count("\x00", fallback, unknown, text.count("\x00"))
        line = self._fast_line(text)
        if line is not None:
            return line, len(line), cut
        text = self.normalise(text)
        multi = cfg.whitespace == "pango" and ("\r" in text or "\u2028" in text or "\u2029" in text)
        lines = tr.split_lines(text) if multi else [text]
        if any(shaping.needs_shaping(self, ln) for ln in lines):
            ink = np.zeros((cfg.patch_size, cfg.width), bool)
            return ink, self.shaped_lines(lines, ink, x0, fallback, unknown), cut
        lines = [tr.visual_order(ln) for ln in lines]
        ink = np.zeros((cfg.patch_size, cfg.width), bool)
        laid = [self._line_runs(ln, self.baseline, fallback, unknown) for ln in lines]
        baselines = self.line_baselines([m for _, _, m in laid])
        width = 0
        for i, (ln, bl) in enumerate(zip(lines, baselines)):
            runs, adv, _ = laid[i] if bl == self.baseline else self._line_runs(ln, bl, Counter(), Counter())
            width = max(width, adv)
            for x, run in runs:
                a = x0 + x + run.left
                lo, hi = max(a, 0), min(a + run.ink.shape[1], cfg.width)
                if hi > lo:
                    ink[:, lo:hi] |= run.ink[:, lo - a: hi - a]
            if len(lines) == 1 and self.boxes_only(ln):
                raise_box_bottom(ink, bl, x0, x0 + adv)
        return ink, width, cut

    def boxes_only(self, line: str) -> bool:
        """A line of nothing but hex boxes (no space, no glyph): Pango gives it no font's metrics, so its centre
        falls between two pixel rows and each box's bottom border covers two rows (measured)."""
        return bool(line) and all(self.char_class(c)[0] == tr.HEXBOX for c in line)

    def shaped_lines(self, lines: list[str], ink: np.ndarray, x0: int, fallback: Counter, unknown: Counter) -> int:
        """Draw lines that need Pango's itemisation, bidi and HarfBuzz shaping (pixar.render.shaping) from pen x0
        into `ink`; returns the widest line's advance."""
        laid = [shaping.line_fonts(self, ln) for ln in lines]
        lm = self.line_metrics
        metrics = [(max(lm(k)[0] for k in keys | {MAIN}), max(lm(k)[1] for k in keys | {MAIN})) for _, keys in laid]
        width = 0
        for ln, (items, keys), bl in zip(lines, laid, self.line_baselines(metrics, exact=True)):
            width = max(width, shaping.draw_line(self, ln, items, bl, ink, x0, fallback, unknown, FALLBACK in keys))
        return width

    def line_baselines(self, metrics: list[tuple[int, int]], exact: bool = False) -> list[int] | list[float]:
        """Baselines of the lines of one text. Pango stacks the lines and centres the block: top = 8/2 - height/2 - 1
        (pixar-render); cairo rounds a glyph's origin to the pixel (floor(y + 0.5)). `exact`: the unrounded baselines
        (a mark's vertical offset is added to them before the rounding)."""
        total = sum(a + d for a, d in metrics)
        shift = 1 if self.cfg.patch_size < 10 else 2  # pixar-render's vertical shift
        y, out, dy = self.cfg.patch_size / 2 - total / 2 - shift, [], self.cfg.text_y + 2
        for a, d in metrics:
            out.append(y + a + dy if exact else int(math.floor(y + a + 0.5)) + dy)
            y += a + d
        return out
