"""Fonts and the glyph table of one render configuration (the base of pixar.render.renderer.Renderer).

Which font draws each character (Pixeloid Sans, else the fallback GoNoto, else Pango's hex box), what
text_rules char_class it is, and its Glyph (ink, left, advance), each computed once per character and cached.
"""
from __future__ import annotations

import logging
import math
from collections import Counter

from PIL import ImageFont

from pixar.render import text_rules as tr
from pixar.config import RenderConfig
from pixar.render.glyph_columns import REPLACEMENT, Glyph, blank, hexbox, rasterise
from pixar.render.hexbox_variants import GONOTO_LINE
from pixar.paths import find_font, find_font_optional
from pixar.render.itemise import chooses_no_font
from pixar.render.shaping import FallbackFont

log = logging.getLogger("pixar.render.renderer")

MAIN, FALLBACK = "main", "fallback"


class _SpacesTable(dict):
    """str.translate table of the "spaces" mode, filled on first sight of each character."""

    def __init__(self, renderer: "GlyphTable"):
        super().__init__()
        self.renderer = renderer

    def __missing__(self, code: int):
        char_class = self.renderer.char_class(chr(code))[0]
        self[code] = value = " " if char_class == tr.SPACE else ("" if char_class == tr.ZERO else chr(code))
        return value


class GlyphTable:
    """Fonts, character kinds and glyphs of `cfg`; caches fill lazily (not pickled: see Renderer)."""

    def __init__(self, cfg: RenderConfig):
        self.cfg = cfg
        # font="gonoto": GoNotoCurrent as the main font (PIXEL's setting), shaped like the fallback font
        self.shape_main = cfg.font == "gonoto"
        self.font_path = str(find_font("gonoto") if self.shape_main else find_font("pixeloid", cfg.font))
        # settings other than the paper's 8-px strips are drawn by pixar.render.settings (no column bytes)
        self.direct = self.shape_main or cfg.patch_size != 8
        fb = find_font("gonoto", cfg.fallback_font) if cfg.fallback_font else find_font_optional("gonoto")
        self.fallback_path = str(fb) if fb else None
        self.unknown_counts: Counter = Counter()  # every character drawn without a glyph, over the lifetime
        self._init_glyphs()

    def _init_glyphs(self) -> None:
        self._fonts: dict[tuple[str, float], ImageFont.FreeTypeFont] = {}
        self._cmaps: dict[str, set[int]] = {}
        self._char_class: dict[str, tuple[str, str | None]] = {}
        self._glyphs: dict[tuple, Glyph] = {}
        self._spaces_table = _SpacesTable(self)
        self._shaper = None
        self._main_shaper = None
        self._metrics: dict[str, tuple[int, int]] = {}
        self._fontset: dict[str, int] = {}
        self._space_adv: dict[tuple[str, str], int] = {}

    @property
    def baseline(self) -> int:
        """y of the baseline: the paper's origin (2, -2) plus Pixeloid's ascent (9 px at size 9)."""
        return self.cfg.text_y + self._font(self.font_path).getmetrics()[0]

    def _font(self, path: str, size: float | None = None) -> ImageFont.FreeTypeFont:
        key = (path, size or self.cfg.font_size)
        if key not in self._fonts:
            self._fonts[key] = ImageFont.truetype(path, size=key[1], layout_engine=ImageFont.Layout.BASIC)
        return self._fonts[key]

    def _font_of_tag(self, tag: str) -> ImageFont.FreeTypeFont:
        if tag == FALLBACK:
            return self._font(self.fallback_path, round(self.cfg.em_px * 64) / 64)  # cairo's char size, 26.6
        return self._font(self.font_path)

    def _cmap(self, path: str | None) -> set[int]:
        if path is None:
            return set()
        if path not in self._cmaps:
            from fontTools.ttLib import TTFont  # fonttools ships with matplotlib

            with TTFont(path, lazy=True) as tt:
                self._cmaps[path] = set(tt["cmap"].getBestCmap())
        return self._cmaps[path]

    def char_class(self, ch: str) -> tuple[str, str | None]:
        """(text_rules char_class, font tag for graph characters) of one character."""
        k = self._char_class.get(ch)
        if k is None:
            in_main = ord(ch) in self._cmap(self.font_path)
            in_fb = ord(ch) in self._cmap(self.fallback_path)
            char_class = tr.classify(ch, in_main, in_fb, self.cfg.whitespace)
            tag = (MAIN if in_main else FALLBACK) if char_class == tr.GRAPH else None
            k = self._char_class[ch] = (char_class, tag)
        return k

    def fontset_index(self, ch: str) -> int:
        """Pango's font choice for `ch`: position in the fontset (0 = main, 1 = fallback) of the first font that
        has it; -1 for characters that choose no font, -2 for one no font has (pixar.render.itemise.itemise)."""
        f = self._fontset.get(ch)
        if f is None:
            if chooses_no_font(ch):
                f = -1
            elif ord(ch) in self._cmap(self.font_path):
                f = 0
            elif ord(ch) in self._cmap(self.fallback_path):
                f = 1
            else:  # no font has it: Pango takes the fontset's first font (pixar.render.itemise.itemise)
                f = -2
            self._fontset[ch] = f
        return f

    def fallback_font(self):
        """The fallback font as HarfBuzz + FreeType see it at Pango's size (pixar.render.shaping); None without one."""
        if self._shaper is None and self.fallback_path:
            em = self.cfg.em_px
            self._shaper = FallbackFont(self.fallback_path, em, int(round(em * 64)))
        return self._shaper

    def main_shaper(self):
        """The main font shaped by HarfBuzz, when it is not Pixeloid (PIXEL's GoNoto); None for Pixeloid."""
        if self.shape_main and self._main_shaper is None:
            em = self.cfg.em_px
            self._main_shaper = FallbackFont(self.font_path, em, int(round(em * 64)))
        return self._main_shaper

    def line_metrics(self, key: str) -> tuple[int, int]:
        """(ascent, descent) in px of a line using the main font, the fallback font or a hex box: the measured
        table at the paper's setting, else the font's hinted extents at Pango's em (ceil of each, as Pango's
        hinted metrics give them: (9, 2) and (10, 3) at the paper's em, (15, 4) for GoNoto at 120 dpi)."""
        if not self.direct and self.cfg.dpi == 80:
            return tr.LINE_METRICS[key]
        m = self._metrics.get(key)
        if m is None:
            from fontTools.ttLib import TTFont  # fonttools ships with matplotlib

            path = self.fallback_path if key == FALLBACK and self.fallback_path else self.font_path
            with TTFont(path, lazy=True) as tt:
                upem, hhea = tt["head"].unitsPerEm, tt["hhea"]
                em = self.cfg.em_px
                m = self._metrics[key] = (math.ceil(hhea.ascent * em / upem - 1e-6), math.ceil(-hhea.descent * em / upem - 1e-6))
        return m

    def font_for(self, ch: str) -> tuple[str, str]:
        """(font path, character actually drawn); REPLACEMENT marks a character with no glyph."""
        char_class, tag = self.char_class(ch)
        if char_class == tr.GRAPH:
            return (self.fallback_path if tag == FALLBACK else self.font_path), ch
        if char_class in (tr.HEXBOX, tr.NOTDEF):
            return self.font_path, REPLACEMENT
        return self.font_path, ch

    def normalise(self, text: str) -> str:
        """The text the layout sees: cut at NUL, newline -> space; in "spaces" mode every tab, line
        break and Unicode space becomes " " and invisible characters are dropped."""
        if self.cfg.whitespace == "spaces" and "\r\n" in text:
            text = text.replace("\r\n", "\n")  # one line break -> one space
        text = tr.prepare(text, self.cfg.whitespace)
        if self.cfg.whitespace == "spaces":
            text = text.translate(self._spaces_table)
        return text

    # ---- glyphs -----------------------------------------------------------------------------
    def _space_advance(self, tag: str, ch: str) -> int:
        adv = self._space_adv.get((tag, ch))
        if adv is None:
            adv = self._space_adv[(tag, ch)] = self._space_advance_of(tag, ch)
        return adv

    def _space_advance_of(self, tag: str, ch: str) -> int:
        font = self._font_of_tag(tag)
        own = None
        if ord(ch) in self._cmap(self.fallback_path if tag == FALLBACK else self.font_path):
            own = int(round(font.getlength(ch)))
        if self.cfg.whitespace == "spaces":
            own = int(round(font.getlength(" ")))
        adv = lambda c: int(round(font.getlength(c)))  # noqa: E731
        return tr.space_width(ch, own, adv(" "), adv("0"), adv("."), self.cfg.font_size)

    def glyph_in(self, tag: str, ch: str, baseline: int | None = None, gonoto_line: bool = False) -> Glyph:
        """The glyph of `ch` inside a run of font `tag` (the font only matters for spaces); `gonoto_line`: on a
        line that uses GoNoto (Pango draws hex boxes differently there)."""
        baseline = self.baseline if baseline is None else baseline
        key = (tag, ch, baseline, gonoto_line)
        g = self._glyphs.get(key)
        if g is None:
            H = self.cfg.patch_size
            char_class, own = self.char_class(ch)
            if char_class == tr.GRAPH:
                g = rasterise(self._font_of_tag(own), ch, baseline, H)
            elif char_class == tr.SPACE:
                g = blank(H, self._space_advance(tag, ch))
            elif char_class == tr.TAB:  # context-free upper bound; the layout uses tr.tab_advance
                g = blank(H, tr.TAB_SPACES * self._space_advance(MAIN, " "))
            elif char_class == tr.HEXBOX and self.direct:  # Pango's box is captured at the paper's setting only
                g = rasterise(self._font_of_tag(MAIN), REPLACEMENT, baseline, H)
            elif char_class == tr.HEXBOX:
                g = hexbox(ch, H, baseline, GONOTO_LINE if gonoto_line else None)
            elif char_class == tr.NOTDEF:
                g = rasterise(self._font_of_tag(tag), ch, baseline, H)  # missing in the font: its .notdef box
            else:  # ZERO, BREAK
                g = blank(H, 0)
            self._glyphs[key] = g
        return g

    def glyph(self, ch: str) -> Glyph:
        """The glyph of one character in a main-font run on the single-line baseline."""
        return self.glyph_in(MAIN, ch)

    def _count(self, ch: str, fallback: Counter, unknown: Counter, n: int = 1) -> None:
        char_class, tag = self.char_class(ch)
        if char_class == tr.GRAPH and tag == FALLBACK:
            fallback[ch] += n
        elif char_class in (tr.HEXBOX, tr.NOTDEF) or ch == "\x00":
            unknown[ch] += n
            if ch not in self.unknown_counts:
                log.warning("no glyph for %r (U+%04X): drawn as Pango's hex box", ch, ord(ch))
            self.unknown_counts[ch] += n
