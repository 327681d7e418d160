"""The shaped path: lines with right-to-left text or fallback-font characters, laid out as Pango does.

Each line is cut into Pango's items (pixar.render.itemise), the items are put in visual order, and each is
drawn from the pen:

  * a main-font (Pixeloid) item: the glyph table's per-character glyphs and advances (Pixeloid needs no
    shaping; in a right-to-left item the characters go right to left, brackets mirrored);
  * a fallback-font (GoNoto) item: shaped by HarfBuzz (uharfbuzz) at Pango's size (the em in Pango units,
    1/1024 px), every advance and offset rounded to a whole pixel as Pango does (round_glyph_positions),
    each glyph rasterised *by glyph id* with FreeType (freetype-py) at cairo's char size and load flags,
    ink where coverage >= 128 (cairo's A8 surface read at the authors' threshold);
  * a glyph HarfBuzz cannot map (id 0) of a character no font has: Pango's hex box.

Spaces and tabs follow pixar.render.text_rules in main-font items; HarfBuzz gives them their width in
fallback items. The result is one bool ink row block per line and the line's advance.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import uharfbuzz as hb
import freetype

from pixar.render import itemise as itm
from pixar.render import text_rules as tr

PANGO_SCALE = 1024
_WORDS = re.compile("( +)")
_SEPARATORS = re.compile("([ \t])")  # a fallback item is shaped word by word: runs of U+0020 apart
_LOAD = freetype.FT_LOAD_DEFAULT | freetype.FT_LOAD_NO_BITMAP


def pango_round(v: int) -> int:
    """PANGO_UNITS_ROUND, in whole pixels."""
    return (v + PANGO_SCALE // 2) >> 10


class FallbackFont:
    """One font file shaped with HarfBuzz and rasterised by glyph id with FreeType at one size."""

    def __init__(self, path: str, em_px: float, char_size_26_6: int):
        self.path = path
        self.scale = int(em_px * PANGO_SCALE + 0.5)  # Pango's font size in Pango units
        face = hb.Face(hb.Blob.from_file_path(path))
        self.hb = hb.Font(face)
        self.hb.scale = (self.scale, self.scale)
        self.ft = freetype.Face(path)
        self.ft.set_char_size(char_size_26_6)
        self._bitmaps: dict[int, tuple[np.ndarray, int, int]] = {}
        self._words: dict[tuple, tuple] = {}  # FallbackFont.word results, bounded

    def bitmap(self, gid: int) -> tuple[np.ndarray, int, int]:
        """(coverage uint8 [h, w], left bearing, top above the baseline) of one glyph id."""
        g = self._bitmaps.get(gid)
        if g is None:
            self.ft.load_glyph(gid, _LOAD)
            self.ft.glyph.render(freetype.FT_RENDER_MODE_NORMAL)
            bm = self.ft.glyph.bitmap
            if bm.rows and bm.width:
                cov = np.array(bm.buffer, np.uint8).reshape(bm.rows, bm.pitch)[:, : bm.width]
            else:
                cov = np.zeros((0, 0), np.uint8)
            g = self._bitmaps[gid] = (cov.astype(np.uint16), self.ft.glyph.bitmap_left, self.ft.glyph.bitmap_top)
        return g

    def shape(self, text: str, rtl: bool, script: str, bot: bool, eot: bool):
        """[(glyph id, cluster, x advance px, x offset px, y offset in Pango units, up)] in visual order: Pango
        rounds advances and x offsets to whole pixels, not y offsets (cairo rounds the glyph's final origin). A
        negative advance (GPOS pulling a Tibetan vowel sign back, -0.53 px) moves Pango's pen by its magnitude
        (measured: Pango's char extents give the cluster 6 px where HarfBuzz's advances sum to 4.4)."""
        buf = hb.Buffer()
        buf.add_str(text)
        buf.direction = "rtl" if rtl else "ltr"
        if script not in itm.COMMON:
            buf.script = script
        buf.guess_segment_properties()
        flags = (hb.BufferFlags.BOT if bot else 0) | (hb.BufferFlags.EOT if eot else 0)
        buf.flags = hb.BufferFlags(flags)
        hb.shape(self.hb, buf, {})
        return [(info.codepoint, info.cluster, pango_round(abs(p.x_advance)), pango_round(p.x_offset), p.y_offset)
                for info, p in zip(buf.glyph_infos, buf.glyph_positions)]

    def word(self, renderer, word: str, rtl: bool, script: str, bot: bool, eot: bool, exact_baseline: float):
        """One word (or run of spaces) of a fallback item, shaped and drawn from pen 0: (coverage uint16 [H, w] or
        None, its left column, advance, [(x, Glyph)] of hex boxes). Cached: words recur, shaping and drawing don't
        depend on their neighbours (a space breaks joining, and Pango's item is only cut there)."""
        key = (word, rtl, script, bot, eot, exact_baseline)
        hit = self._words.get(key)
        if hit is not None:
            return hit
        H = renderer.cfg.patch_size
        baseline = int(np.floor(exact_baseline + 0.5))
        space = renderer._space_advance("main", " ")
        pen, placed, boxes = 0, [], []
        for gid, cluster, adv, dx, dy in self.shape(word, rtl, script, bot, eot):
            ch = word[cluster]
            if gid == 0 and renderer.char_class(ch)[0] in (tr.HEXBOX, tr.TAB):
                if ch == "\t":
                    pen += tr.tab_advance(pen, space)
                    continue
                g = renderer.glyph_in("fallback", ch, baseline, gonoto_line=True)  # a GoNoto item: a GoNoto line
                boxes.append((pen, g))
                pen += g.advance
                continue
            bm, left, top = self.bitmap(gid)
            if bm.size:
                placed.append((pen + dx + left, int(np.floor(exact_baseline - dy / PANGO_SCALE + 0.5)) - top, bm))
            pen += adv
        cov, lo = None, 0
        if placed:
            lo = min(x for x, _, _ in placed)
            hi = max(x + b.shape[1] for x, _, b in placed)
            cov = np.zeros((H, hi - lo), np.uint16)
            for x, y, b in placed:
                _blit(cov, b, x - lo, y)
        out = (cov, lo, pen, boxes)
        if len(word) <= 64:
            if len(self._words) >= 50_000:
                self._words.clear()
            self._words[key] = out
        return out


def _blit(ink: np.ndarray, bm: np.ndarray, x: int, y: int) -> None:
    """OR bool ink, or ADD coverage, of one glyph at (x, y) into `ink` (clipped)."""
    h, w = bm.shape
    H, W = ink.shape
    y0, y1, x0, x1 = max(y, 0), min(y + h, H), max(x, 0), min(x + w, W)
    if y1 > y0 and x1 > x0:
        if ink.dtype == bool:
            ink[y0:y1, x0:x1] |= bm[y0 - y: y1 - y, x0 - x: x1 - x]
        else:
            ink[y0:y1, x0:x1] += bm[y0 - y: y1 - y, x0 - x: x1 - x]


def _over(line: np.ndarray, x: int, run: np.ndarray) -> None:
    """cairo: a run's glyph coverages are ADDed (saturating) into one mask, which is composited OVER the line."""
    a = np.minimum(run, 255)
    d = line[:, x: x + run.shape[1]]
    t = (255 - a) * d + 128  # pixman's DIV_255 rounding
    line[:, x: x + run.shape[1]] = a + ((t + (t >> 8)) >> 8)


def needs_shaping(renderer, line: str) -> bool:
    """A line the per-character paths cannot draw as Pango does: a fallback-font character or right-to-left text."""
    if renderer.direct:
        return True
    cls = renderer.char_class
    return any((k[0] == tr.GRAPH and k[1] != "main") for k in map(cls, line)) or itm.needs_bidi(line)


def line_fonts(renderer, line: str) -> tuple[list[itm.Item], set[str]]:
    """Pango's items of one line and the line-metric keys (fonts, hex box) they use."""
    items = itm.itemise(line, renderer.fontset_index)
    keys = {("main" if it.font <= 0 else "fallback") for it in items if it.end > it.start}
    if any(renderer.char_class(c)[0] == tr.HEXBOX for c in line):
        keys.add(tr.HEXBOX)
    return items, keys


def draw_line(renderer, line: str, items: list[itm.Item], exact_baseline: float, ink: np.ndarray, x0: int,
              fallback: Counter, unknown: Counter, gonoto_line: bool = False) -> int:
    """OR one shaped line, drawn from pen x0 on `exact_baseline` (unrounded: a line's centre can fall between two
    pixels), into `ink` (bool [H, W]); returns its advance. `gonoto_line`: the line uses the fallback font."""
    baseline = int(np.floor(exact_baseline + 0.5))
    pen = 0
    space = renderer._space_advance("main", " ")
    fb = renderer.fallback_font()
    n, W = len(line), ink.shape[1]
    for ch, k in Counter(line).items():
        renderer._count(ch, fallback, unknown, k)
    runs = []  # (x, coverage uint16 [H, w]) of each fallback-font item, composited after the line is laid out
    for it in itm.visual_order(items):
        seg = line[it.start: it.end]
        rtl = it.level % 2 == 1
        shaper = fb if it.font > 0 else renderer.main_shaper()  # None: Pixeloid, drawn per character
        if shaper is None:  # Pixeloid: the glyph table's words (cached), characters reversed in a right-to-left item
            chars = "".join(tr.MIRROR.get(c, c) for c in reversed(seg)) if rtl else seg
            for tok in _SEPARATORS.split(chars):
                if tok == " ":
                    pen += space
                elif tok == "\t":
                    pen += tr.tab_advance(pen, space)
                elif tok and gonoto_line and any(renderer.char_class(c)[0] == tr.HEXBOX for c in tok):
                    for c in tok:  # hex boxes on a GoNoto line: their own capture
                        g = renderer.glyph_in("main", c, baseline, gonoto_line=True)
                        if g.ink.shape[1]:
                            _blit(ink, g.ink, x0 + pen + g.left, 0)
                        pen += g.advance
                elif tok:
                    wr = renderer._word_run(tok, "main", baseline)
                    if wr.ink.shape[1]:
                        _blit(ink, wr.ink, x0 + pen + wr.left, 0)
                    pen += wr.advance
            continue
        # a fallback-font item: its words (split at spaces) shaped and drawn once each, then laid side by side
        words = [w for w in _WORDS.split(seg) if w]
        parts = []
        for k in (range(len(words) - 1, -1, -1) if rtl else range(len(words))):
            w = words[k]
            first = it.start == 0 and k == 0
            last = it.end == n and k == len(words) - 1
            cov, left, adv, boxes = shaper.word(renderer, w, rtl, it.script, first, last, exact_baseline)
            if cov is not None:
                parts.append((x0 + pen + left, cov))
            for bx, g in boxes:  # hex boxes and tabs inside the item
                _blit(ink, g.ink, x0 + pen + bx + g.left, 0)
            pen += adv
        if parts:
            lo = max(min(x for x, _ in parts), 0)
            hi = min(max(x + c.shape[1] for x, c in parts), W)
            if hi > lo:
                run = np.zeros((ink.shape[0], hi - lo), np.uint16)
                for x, c in parts:
                    _blit(run, c, x - lo, 0)
                runs.append((lo, run))
    if runs:
        lo = min(x for x, _ in runs)
        hi = max(x + r.shape[1] for x, r in runs)
        cover = np.zeros((ink.shape[0], hi - lo), np.uint16)  # cairo: ADD within a run, OVER across runs
        for x, r in runs:
            _over(cover, x - lo, r)
        ink[:, lo:hi] |= cover >= 128
    return pen
