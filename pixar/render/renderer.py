"""Text -> binary pixel strips, the way PIXAR sees text (the paper's rendering; docs/rendering.md).

Geometry (paper settings): an image `patch_size` (8) px high and `max_positions * patch_size * patch_len`
px wide; Pixeloid Sans drawn by FreeType at its native 9-px em with the text origin at (2, -2) (its
baseline at y = 7), which reproduces the authors' PangoCairo renderer pixel for pixel, including what
it does with tabs, line breaks, Unicode spaces and invisible characters (pixar.render.text_rules). 1 = white
background, 0 = ink. One model *position* is `patch_len` 8x8 patches (8x16 px).

    col:  0 2            2+advance   +eos_gap   next position boundary
          |.|text text text|.........|..........|################|.......
                                                 ^ EOS block (one position, all ink)
    mask: 1 per position up to and including the EOS position, 0 after (padding).

Two drawing paths give identical pixels (tested with hypothesis; both tested against the authors'
renderer with the committed goldens):
  * `render_reference`: straightforward Pillow drawing of each same-font run of each line;
  * `render` / `render_batch`: the fast path. An 8-px column is one byte, so a word is a cached byte
    string of column masks (CharColumns, WordColumns) and a line is `space.join(words)` (tabs: blank
    bytes up to the next stop); the bytes become pixels with one masked AND per row bit, once per batch.
    Texts the byte path cannot take (fallback fonts, hex boxes, several lines, NUL, truncation) are
    composed from the glyph table with numpy, then join the same byte pipeline.

Characters the main font lacks fall back to GoNoto; characters in neither font are drawn as Pango's
hex box; both are counted in the result (never silent). Cost is bounded by the strip: only a prefix
that fills it is laid out. Text too long for the strip is cut at a position boundary and flagged.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pixar.config import RenderConfig
from pixar.render import native, shaping
from pixar.render import text_rules as tr
from pixar.render.column_cache import BatchArrays, CharColumns, StripBlocks, WordColumns
from pixar.render.glyph_columns import (LANE, REPLACEMENT, Glyph, columns_to_pixels, lanes_to_rows, raise_box_bottom,
                                        white_bytes)
from pixar.render.glyph_table import FALLBACK, MAIN, GlyphTable
from pixar.render.itemise import needs_bidi
from pixar.render.reference import draw_reference
from pixar.render.settings import render_direct
from pixar.render.strip_ops import space_text, to_image, trim_to_mask

__all__ = ["REPLACEMENT", "Glyph", "RenderedBatch", "Renderer", "space_text", "to_image", "trim_to_mask"]

_SEPARATORS = re.compile("([ \t])")
# Line metrics (ascent, descent) in px as Pango's hinted metrics give them at the paper's em.
_METRICS = tr.LINE_METRICS  # keys: MAIN, FALLBACK, tr.HEXBOX


@dataclass
class RenderedBatch:
    pixels: np.ndarray  # uint8 [B, H, W]: 1 = white, 0 = ink
    mask: np.ndarray  # uint8 [B, P]: 1 for text positions and the EOS position
    eos_position: np.ndarray  # int64 [B]: index of the (last) EOS position
    truncated: np.ndarray  # bool [B]
    fallback_chars: Counter = field(default_factory=Counter)  # drawn with the fallback font
    unknown_chars: Counter = field(default_factory=Counter)  # no glyph: hex box / .notdef / cut at NUL

    @property
    def num_text_positions(self) -> np.ndarray:
        """Positions before the EOS block (for pairs: up to the final EOS)."""
        return self.eos_position.copy()

    @property
    def num_positions(self) -> np.ndarray:
        """Attended positions = text positions + the EOS position."""
        return self.eos_position + 1


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


class Renderer(GlyphTable):
    """Renders text (or text pairs) to binary strips. Picklable: fonts and caches rebuild lazily."""

    WORD_CACHE_SIZE = 50_000
    LONG_WORD = 64  # longer runs are composed but not cached

    def __init__(self, cfg: RenderConfig | None = None):
        super().__init__(cfg or RenderConfig())
        self.chars_laid_out = 0  # work counter: characters that went through layout (bounded-cost test)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._init_glyphs()
        self._runs: dict[tuple, WordRun] = {}
        self._chars = CharColumns(self)
        self._words = WordColumns(self, self.WORD_CACHE_SIZE, self.LONG_WORD)
        self._space = None  # column bytes of " " (built on first use: needs the fonts)
        c = self.cfg
        self._white = b"\xff" * c.width
        self._white_view = memoryview(self._white)
        self._eos = b"\x00" * c.position_width
        self._blocks = StripBlocks(c.patch_size, c.width)
        self._batches = BatchArrays()
        self._native_cache = native.new_cache()  # the native path's own word cache (pixar.render.native)
        self._geometry = (c.text_x, c.eos_gap, c.position_width, c.width)
        self._fast_limit = c.width // 4 + 64  # longer texts go through the bounded general path
        P = c.max_positions
        self._masks = (np.arange(P)[None, :] <= np.arange(P)[:, None]).astype(np.uint8)  # [eos, P]
        self._masks.setflags(write=False)  # render() hands out row views: they must not write into the table

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_fonts", "_cmaps", "_char_class", "_glyphs", "_runs", "_spaces_table", "_shaper", "_space_adv", "_main_shaper", "_metrics", "_fontset", "_chars", "_words", "_space",
                  "_white", "_white_view", "_eos", "_blocks", "_batches", "_native_cache", "_geometry", "_fast_limit",
                  "_masks"):
            state.pop(k)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

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
        advance, and whether the text was cut before layout (pixar.render.renderer._bounded)."""
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

    # ---- layout -----------------------------------------------------------------------------
    def _eos_col(self, end_px: int) -> int:
        pw = self.cfg.position_width
        return int(math.ceil((end_px + self.cfg.eos_gap) / pw)) * pw

    def _strip(self, parts: tuple[str, ...], fallback: Counter, unknown: Counter) -> tuple[bytes, int, bool]:
        """General path: one strip as column bytes up to and including its EOS block; (bytes, eos
        position, truncated)."""
        cfg, pw, width = self.cfg, self.cfg.position_width, self.cfg.width
        x, eos_col, truncated = cfg.text_x, 0, False
        buf, inks = bytearray(self._white), []
        for text in parts:
            cols, advance, cut = self._text_columns(text, x, fallback, unknown)
            truncated |= cut
            if isinstance(cols, bytes):
                end = min(x + len(cols), width)
                buf[x:end] = cols[: end - x]
            else:
                inks.append(cols)
            eos_col = self._eos_col(x + advance)
            if eos_col + pw > width:  # too long: EOS on the last position, text cut at its boundary
                eos_col, truncated = width - pw, True
                break
            buf[eos_col: eos_col + pw] = self._eos
            x = eos_col + pw + cfg.text_x  # pairs: text_b starts 2 px after the first EOS block
        if inks:
            ink = np.logical_or.reduce(inks) if len(inks) > 1 else inks[0]
            used = np.flatnonzero(ink.any(0))  # only the inked columns are converted
            if used.size:
                lo, hi = int(used[0]), int(used[-1]) + 1
                cols = np.frombuffer(buf, np.uint8, hi - lo, lo) & np.frombuffer(white_bytes(ink[:, lo:hi]), np.uint8)
                buf[lo:hi] = cols.tobytes()
        buf[eos_col: eos_col + pw] = self._eos
        return bytes(buf[: eos_col + pw]), eos_col // pw, truncated

    def _fast_strip(self, text: str) -> tuple[bytes, int] | None:
        """Fast path: (column bytes of the whole strip, EOS position) of a short single-line text."""
        line = self._fast_line(text)
        if line is None:
            return None
        x0, gap, pw, width = self._geometry
        n = len(line)
        eos_col = -(-(x0 + n + gap) // pw) * pw
        if eos_col + pw > width:
            return None
        self.chars_laid_out += len(text)
        white = self._white_view  # memoryview: slices are not copied before the join
        return b"".join((white[:x0], line, white[: eos_col - x0 - n], self._eos, white[: width - eos_col - pw])), eos_col // pw

    def render_batch(self, texts: list[str] | list[tuple[str, str]], out: np.ndarray | None = None) -> RenderedBatch:
        """`texts`: strings, or (a, b) pairs rendered as a, EOS, b, EOS. Each strip becomes column
        bytes (fast path, else the general path); the batch is turned into pixels in one pass, written
        straight into `out` when given: a C-contiguous uint8 array [len(texts), patch_size, width] that the
        caller owns and reuses (a data loader's batch buffer; `tensor.numpy()` of a pinned CPU tensor), so
        no strip is allocated; the result's `pixels` is then `out` itself."""
        if self.direct:  # another setting: pixar.render.settings
            return RenderedBatch(*render_direct(self, texts, out))
        texts = texts if type(texts) is list else list(texts)
        B, cut, fallback, unknown = len(texts), {}, Counter(), Counter()
        if out is not None:
            self._check_out(out, B)
        fill = native.FILL
        if fill is not None and self.cfg.whitespace == "pango":  # native: pixels written straight into the batch
            pixels = out if out is not None else self._batches.take((B, self.cfg.patch_size, self.cfg.width))
            eos_arr = np.empty(B, np.int64)
            todo, chars = fill(texts, self._words, self._native_cache,
                               self._space_bytes(), *self._geometry, self._fast_limit, pixels, eos_arr)
            self.chars_laid_out += chars
            rows = pixels.view(LANE)  # [B, H, W/8]
            for i in todo:  # the pure-Python path (tabs, general path), the same pixels
                cols, eos_arr[i] = self._strip_columns(texts[i], i, cut, fallback, unknown)
                lanes_to_rows(np.frombuffer(cols, LANE), rows[i])
        else:
            pieces, eos = [], []
            for i, item in enumerate(texts):  # per text: the strip's column bytes (W) and its EOS position
                cols, e = self._strip_columns(item, i, cut, fallback, unknown)
                pieces.append(cols)
                eos.append(e)
            pixels = columns_to_pixels(np.frombuffer(b"".join(pieces), np.uint8).reshape(B, self.cfg.width), out=out)
            pixels = out if out is not None else pixels  # [B, H, W]
            eos_arr = np.array(eos, np.int64)
        truncated = np.zeros(B, bool)
        truncated[list(cut)] = list(cut.values())
        mask = self._masks[eos_arr]
        return RenderedBatch(pixels, mask, eos_arr, truncated, fallback, unknown)

    def _space_bytes(self) -> bytes:
        if self._space is None:
            self._space = b"\xff" * self.glyph(" ").advance
        return self._space

    def _strip_columns(self, item, i: int, cut: dict, fallback: Counter, unknown: Counter) -> tuple[bytes, int]:
        """Pure-Python path of one batch item: its strip's column bytes (all W) and EOS position; cut[i] is set when
        the general path took it."""
        st = self._fast_strip(item) if type(item) is str and len(item) <= self._fast_limit else None
        if st is None:
            cols, e, cut[i] = self._strip((item,) if isinstance(item, str) else tuple(item), fallback, unknown)
            st = (cols + self._white[: self.cfg.width - len(cols)], e)
        return st

    def _check_out(self, out: np.ndarray, n: int) -> None:
        shape = (n, self.cfg.patch_size, self.cfg.width)
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != shape or not out.flags.c_contiguous \
                or not out.flags.writeable:
            got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}"
            raise ValueError(f"render_batch out= must be a writable C-contiguous uint8 array of shape {shape}; got {got}")

    def render(self, text: str | tuple[str, str]) -> RenderedBatch:
        """One text (or pair) -> a batch of one; the same pixels as render_batch([text])."""
        if self.direct:
            return RenderedBatch(*render_direct(self, [text]))
        lanes = pixels = None  # one strip of the blocks: '<u8' [H, W/8] and uint8 [1, H, W], the same memory
        if type(text) is str and len(text) <= self._fast_limit:
            fill = native.FILL
            if fill is not None and self.cfg.whitespace == "pango":  # native (pixar.render.native)
                lanes, pixels = self._blocks.take()
                e = np.empty(1, np.int64)
                if not fill([text], self._words, self._native_cache, self._space_bytes(), *self._geometry,
                            self._fast_limit, pixels, e)[0]:
                    self.chars_laid_out += len(text)
                    i = int(e[0])
                    return RenderedBatch(pixels, self._masks[i: i + 1].copy(), e, np.zeros(1, bool),
                                         Counter.__new__(Counter), Counter.__new__(Counter))
            st = self._fast_strip(text)
            if st is not None:
                if lanes is None:
                    lanes, pixels = self._blocks.take()
                lanes_to_rows(np.frombuffer(st[0], LANE), lanes)
                e = st[1]
                # Counter.__new__: an empty Counter without Counter.__init__'s Python-level update() call
                return RenderedBatch(pixels, self._masks[e: e + 1].copy(), np.array([e]), np.zeros(1, bool),
                                     Counter.__new__(Counter), Counter.__new__(Counter))
        fallback, unknown = Counter(), Counter()  # the general path, into a strip of the same blocks
        cols, e, cut = self._strip((text,) if isinstance(text, str) else tuple(text), fallback, unknown)
        if lanes is None:
            lanes, pixels = self._blocks.take()
        lanes_to_rows(np.frombuffer(cols + self._white[: self.cfg.width - len(cols)], LANE), lanes)
        return RenderedBatch(pixels, self._masks[e: e + 1].copy(), np.array([e]), np.array([cut]), fallback, unknown)

    # ---- the slow oracle ----------------------------------------------------------------------
    def render_reference(self, text: str | tuple[str, str]) -> RenderedBatch:
        """Straightforward Pillow drawing, no glyph table or byte columns: each line's runs of
        same-font visible characters drawn with one `ImageDraw.text` call (fallback-font glyphs one by
        one: Pango rounds each advance), whitespace from pixar.render.text_rules; the fast path's yardstick."""
        if self.direct:  # other settings have one drawing path: pixar.render.settings
            return RenderedBatch(*render_direct(self, [text]))

        cfg, pw, width = self.cfg, self.cfg.position_width, self.cfg.width
        fallback, unknown = Counter(), Counter()
        ink = np.zeros((cfg.patch_size, width), dtype=bool)
        x, eos_col, truncated = cfg.text_x, 0, False
        for part in ((text,) if isinstance(text, str) else tuple(text)):
            advance = draw_reference(self, part, ink, x, fallback, unknown)
            eos_col = self._eos_col(x + advance)
            if eos_col + pw > width:
                eos_col, truncated = width - pw, True
                ink[:, eos_col:] = False
                break
            ink[:, eos_col: eos_col + pw] = True
            x = eos_col + pw + cfg.text_x
        ink[:, eos_col: eos_col + pw] = True
        ink[:, eos_col + pw:] = False
        eos = np.array([eos_col // pw], dtype=np.int64)
        return RenderedBatch((~ink[None]).astype(np.uint8), self._masks[eos], eos, np.array([truncated]), fallback, unknown)

    def fingerprint(self) -> str:
        """Identifies the rendering (font bytes + geometry): lm-eval's `tokenizer_name` for PIXAR."""
        import hashlib

        h = hashlib.sha256()
        for p in (self.font_path, self.fallback_path):
            if p:
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
        c = self.cfg
        h.update(f"{c.font_size}/{c.patch_size}/{c.patch_len}/{c.max_positions}/{c.text_x}/{c.text_y}/{c.eos_gap}".encode())
        if c.whitespace != "pango":
            h.update(f"/{c.whitespace}".encode())
        if c.dpi != 80:
            h.update(f"/dpi{c.dpi}".encode())
        return "pixar-render-" + h.hexdigest()[:16]
