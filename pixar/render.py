"""Text -> binary pixel strips, the way PIXAR sees text (pixar-paper.md §1).

Geometry (paper settings): an image `patch_size` (8) px high and `max_positions * patch_size * patch_len`
px wide; Pixeloid Sans drawn by FreeType at its native 9-px em with the text origin at (2, -2) (its
baseline at y = 7), which reproduces the authors' PangoCairo renderer pixel for pixel. 1 = white
background, 0 = ink. One model *position* is `patch_len` 8x8 patches (8x16 px).

    col:  0 2            2+advance   +eos_gap   next position boundary
          |.|text text text|.........|..........|################|.......
                                                 ^ EOS block (one position, all ink)
    mask: 1 per position up to and including the EOS position, 0 after (padding).

Two drawing paths give identical pixels (tested with hypothesis):
  * `render_reference`: straightforward Pillow drawing of each same-font run of the string;
  * `render` / `render_batch`: a glyph atlas (each glyph rasterised once, cached with its advance)
    composed with numpy -- the fast path.

Characters the main font lacks fall back to GoNoto, then to the main font's U+FFFD glyph; both are
counted in the result (never silent). Newlines, tabs and Unicode spaces become spaces; zero-width
characters are dropped. Text too long for the strip is cut
at a position boundary and flagged, never an exception mid-batch.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .config import RenderConfig
from .paths import find_font, find_font_optional

log = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"
_SPACE_LIKE = str.maketrans({**{c: " " for c in "\n\r\t\v\f\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                                                  "\u200a\u202f\u205f\u3000"},
                              **{c: None for c in "\u200b\u200c\u200d\u2060\ufeff"}})  # zero-width: dropped


@dataclass
class Glyph:
    ink: np.ndarray  # bool [H, w]: True where the glyph puts ink
    left: int  # column of ink[:, 0] relative to the pen position
    advance: int  # pen advance in px


@dataclass
class RenderedBatch:
    pixels: np.ndarray  # uint8 [B, H, W]: 1 = white, 0 = ink
    mask: np.ndarray  # uint8 [B, P]: 1 for text positions and the EOS position
    eos_position: np.ndarray  # int64 [B]: index of the (last) EOS position
    truncated: np.ndarray  # bool [B]
    fallback_chars: Counter = field(default_factory=Counter)  # drawn with the fallback font
    unknown_chars: Counter = field(default_factory=Counter)  # drawn as the replacement glyph

    @property
    def num_text_positions(self) -> np.ndarray:
        """Positions before the EOS block (for pairs: up to the final EOS)."""
        return self.eos_position.copy()

    @property
    def num_positions(self) -> np.ndarray:
        """Attended positions = text positions + the EOS position."""
        return self.eos_position + 1


class Renderer:
    """Renders text (or text pairs) to binary strips. Picklable: fonts and the atlas rebuild lazily."""

    def __init__(self, cfg: RenderConfig | None = None):
        self.cfg = cfg or RenderConfig()
        self.font_path = str(find_font("pixeloid", self.cfg.font))
        fb = find_font("gonoto", self.cfg.fallback_font) if self.cfg.fallback_font else find_font_optional("gonoto")
        self.fallback_path = str(fb) if fb else None
        self.unknown_counts: Counter = Counter()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._fonts: dict[str, ImageFont.FreeTypeFont] = {}
        self._cmaps: dict[str, set[int]] = {}
        self._atlas: dict[str, Glyph] = {}
        self._font_of: dict[str, str] = {}
        self._words: dict[str, Glyph] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_fonts", "_cmaps", "_atlas", "_font_of", "_words"):
            state.pop(k)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

    # ---- fonts ------------------------------------------------------------------------------
    @property
    def baseline(self) -> int:
        """y of the baseline: the paper's origin (2, -2) plus Pixeloid's ascent (9 px at size 9)."""
        return self.cfg.text_y + self._font(self.font_path).getmetrics()[0]

    def _font(self, path: str) -> ImageFont.FreeTypeFont:
        if path not in self._fonts:
            self._fonts[path] = ImageFont.truetype(path, size=self.cfg.font_size, layout_engine=ImageFont.Layout.BASIC)
        return self._fonts[path]

    def _cmap(self, path: str) -> set[int]:
        if path not in self._cmaps:
            from fontTools.ttLib import TTFont  # fonttools ships with matplotlib

            with TTFont(path, lazy=True) as tt:
                self._cmaps[path] = set(tt["cmap"].getBestCmap())
        return self._cmaps[path]

    def font_for(self, ch: str) -> tuple[str, str]:
        """(font path, character actually drawn) for one normalised character."""
        if ch not in self._font_of:
            if ord(ch) in self._cmap(self.font_path) and ch.isprintable():
                self._font_of[ch] = "main"
            elif self.fallback_path and ch.isprintable() and ord(ch) in self._cmap(self.fallback_path):
                self._font_of[ch] = "fallback"
            else:
                self._font_of[ch] = "unknown"
        kind = self._font_of[ch]
        if kind == "main":
            return self.font_path, ch
        if kind == "fallback":
            return self.fallback_path, ch
        return self.font_path, REPLACEMENT

    def normalise(self, text: str) -> str:
        return text.translate(_SPACE_LIKE)

    # ---- glyph atlas -------------------------------------------------------------------------
    def glyph(self, ch: str) -> Glyph:
        g = self._atlas.get(ch)
        if g is None:
            path, drawn = self.font_for(ch)
            font = self._font(path)
            advance = int(round(font.getlength(drawn)))
            margin = 2 * self.cfg.font_size
            canvas = Image.new("L", (advance + 2 * margin, self.cfg.patch_size), 255)
            ImageDraw.Draw(canvas).text((margin, self.baseline), drawn, font=font, fill=0, anchor="ls")
            ink = np.asarray(canvas) <= 127
            cols = np.flatnonzero(ink.any(axis=0))
            if cols.size:
                g = Glyph(ink[:, cols[0]: cols[-1] + 1].copy(), int(cols[0]) - margin, advance)
            else:
                g = Glyph(np.zeros((self.cfg.patch_size, 0), bool), 0, advance)
            self._atlas[ch] = g
        return g

    def _account(self, text: str, fallback: Counter, unknown: Counter) -> None:
        for ch in set(text):
            self.font_for(ch)
            kind = self._font_of[ch]
            if kind == "fallback":
                fallback[ch] += text.count(ch)
            elif kind == "unknown":
                n = text.count(ch)
                unknown[ch] += n
                if ch not in self.unknown_counts:
                    log.warning("no glyph for %r (U+%04X): drawn as the replacement glyph", ch, ord(ch))
                self.unknown_counts[ch] += n

    def word(self, token: str) -> Glyph:
        """A run of non-space characters composed from the atlas once and cached (words repeat a lot
        in natural text, so this turns per-character work into per-word lookups)."""
        g = self._words.get(token)
        if g is None:
            if len(token) == 1:
                return self.glyph(token)
            glyphs, pens, pen = [self.glyph(c) for c in token], [], 0
            for gl in glyphs:
                pens.append(pen)
                pen += gl.advance
            lo = min((p + gl.left for p, gl in zip(pens, glyphs) if gl.ink.shape[1]), default=0)
            hi = max((p + gl.left + gl.ink.shape[1] for p, gl in zip(pens, glyphs) if gl.ink.shape[1]), default=0)
            ink = np.zeros((self.cfg.patch_size, max(hi - lo, 0)), bool)
            for p, gl in zip(pens, glyphs):
                a = p + gl.left - lo
                ink[:, a: a + gl.ink.shape[1]] |= gl.ink
            g = Glyph(ink, lo, pen)
            if len(self._words) >= self.WORD_CACHE_SIZE:
                self._words.clear()
            self._words[token] = g
        return g

    WORD_CACHE_SIZE = 50_000

    def _draw_atlas(self, strip: np.ndarray, text: str, x0: int, limit: int) -> int:
        """OR the glyphs of `text` into strip (bool ink [H, W]) from pen x0; return the advance."""
        pen = x0
        space = self.glyph(" ").advance
        for i, token in enumerate(text.split(" ")):
            if i:
                pen += space
            if not token:
                continue
            g = self.word(token)
            a, b = pen + g.left, pen + g.left + g.ink.shape[1]
            lo, hi = max(a, 0), min(b, limit)
            if hi > lo:
                strip[:, lo:hi] |= g.ink[:, lo - a: hi - a]
            pen += g.advance
        return pen - x0

    # ---- layout -----------------------------------------------------------------------------
    def _eos_col(self, end_px: int) -> int:
        pw = self.cfg.position_width
        return int(math.ceil((end_px + self.cfg.eos_gap) / pw)) * pw

    def _layout(self, texts: tuple[str, ...], draw) -> tuple[np.ndarray, int, bool]:
        """Place each text then an EOS block; `draw(ink, text, x0, limit) -> advance`."""
        cfg, pw, width = self.cfg, self.cfg.position_width, self.cfg.width
        ink = np.zeros((cfg.patch_size, width), dtype=bool)
        x, eos_col, truncated = cfg.text_x, 0, False
        for text in texts:
            advance = draw(ink, text, x, width)
            eos_col = self._eos_col(x + advance)
            if eos_col + pw > width:  # too long: EOS on the last position, text cut at its boundary
                eos_col, truncated = width - pw, True
                ink[:, eos_col:] = False
                break
            ink[:, eos_col: eos_col + pw] = True
            x = eos_col + pw + cfg.text_x  # pairs: text_b starts 2 px after the first EOS block
        ink[:, eos_col: eos_col + pw] = True
        return ink, eos_col // pw, truncated

    def _finish(self, inks, eos, trunc, fallback, unknown) -> RenderedBatch:
        P = self.cfg.max_positions
        pixels = (~np.stack(inks)).astype(np.uint8)
        eos = np.asarray(eos, dtype=np.int64)
        mask = (np.arange(P)[None, :] <= eos[:, None]).astype(np.uint8)
        return RenderedBatch(pixels, mask, eos, np.asarray(trunc, dtype=bool), fallback, unknown)

    def render_batch(self, texts: list[str] | list[tuple[str, str]]) -> RenderedBatch:
        """Fast path. `texts`: strings, or (a, b) pairs rendered as a, EOS, b, EOS."""
        inks, eos, trunc, fallback, unknown = [], [], [], Counter(), Counter()
        for item in texts:
            parts = tuple(self.normalise(t) for t in ((item,) if isinstance(item, str) else item))
            for t in parts:
                self._account(t, fallback, unknown)
            ink, e, tr = self._layout(parts, self._draw_atlas)
            inks.append(ink)
            eos.append(e)
            trunc.append(tr)
        return self._finish(inks, eos, trunc, fallback, unknown)

    def render(self, text: str | tuple[str, str]) -> RenderedBatch:
        return self.render_batch([text])

    def render_reference(self, text: str | tuple[str, str]) -> RenderedBatch:
        """Straightforward Pillow drawing (one draw call per same-font run); the atlas's yardstick."""
        fallback, unknown = Counter(), Counter()
        parts = tuple(self.normalise(t) for t in ((text,) if isinstance(text, str) else text))
        for t in parts:
            self._account(t, fallback, unknown)

        def draw(ink: np.ndarray, s: str, x0: int, limit: int) -> int:
            img = Image.new("L", (ink.shape[1], ink.shape[0]), 255)
            d = ImageDraw.Draw(img)
            pen = x0
            for path, run in self._runs(s):
                font = self._font(path)
                d.text((pen, self.baseline), run, font=font, fill=0, anchor="ls")
                pen += int(round(font.getlength(run)))
            ink |= np.asarray(img) <= 127
            return pen - x0

        ink, e, tr = self._layout(parts, draw)
        return self._finish([ink], [e], [tr], fallback, unknown)

    def _runs(self, s: str):
        run, run_path = "", None
        for ch in s:
            path, drawn = self.font_for(ch)
            if path != run_path and run:
                yield run_path, run
                run = ""
            run, run_path = run + drawn, path
        if run:
            yield run_path, run

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
        return "pixar-render-" + h.hexdigest()[:16]


def space_text(pixels: np.ndarray, eos_position: np.ndarray, position_width: int, gap: int = 3) -> np.ndarray:
    """PIXAR's `_spacing_text(gap)`: shift each prompt's ink right so exactly `gap` white columns sit
    between the last ink column and the EOS block. pixels uint8 [B, H, W] -> a new array."""
    out = pixels.copy()
    for i, e in enumerate(np.asarray(eos_position)):
        eos_col = int(e) * position_width
        region = out[i, :, :eos_col]
        cols = np.flatnonzero((region == 0).any(axis=0))
        if cols.size == 0:
            continue
        shift = (eos_col - gap - 1) - int(cols[-1])
        shift = max(shift, -int(cols[0]))  # never push ink off the left edge
        if shift > 0:
            region[:, shift:] = region[:, :-shift].copy()
            region[:, :shift] = 1
        elif shift < 0:
            region[:, :shift] = region[:, -shift:].copy()
            region[:, shift:] = 1
    return out


def to_image(pixels: np.ndarray, scale: int = 1, rows: int | None = None) -> Image.Image:
    """A viewable PIL image of one strip [H, W] (values in [0, 1]); optionally wrapped onto rows."""
    arr = np.asarray(pixels, dtype=np.float32)
    if rows and rows > 1:
        H, W = arr.shape
        per = int(math.ceil(W / rows))
        arr = np.pad(arr, ((0, 0), (0, per * rows - W)), constant_values=1.0)
        gap = np.full((2, per), 0.75, dtype=np.float32)
        arr = np.concatenate([np.concatenate([arr[:, r * per:(r + 1) * per], gap]) for r in range(rows)])
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def trim_to_mask(pixels: np.ndarray, num_positions: int, position_width: int) -> np.ndarray:
    """Crop a strip [H, W] to its attended positions (for display)."""
    return pixels[:, : int(num_positions) * position_width]
