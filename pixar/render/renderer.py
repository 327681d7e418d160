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
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pixar.config import RenderConfig
from pixar.render import native
from pixar.render.column_cache import BatchArrays, StripBlocks
from pixar.render.glyph_columns import LANE, REPLACEMENT, Glyph, columns_to_pixels, lanes_to_rows, white_bytes
from pixar.render.line_layout import LineLayout
from pixar.render.reference import draw_reference
from pixar.render.settings import render_direct
from pixar.render.strip_ops import space_text, to_image, trim_to_mask

__all__ = ["REPLACEMENT", "Glyph", "RenderedBatch", "Renderer", "space_text", "to_image", "trim_to_mask"]


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


class Renderer(LineLayout):
    """Renders text (or text pairs) to binary strips. Picklable: fonts and caches rebuild lazily. Word and
    line layout (the fast Latin line, the general path, shaped lines) is its base class: pixar.render.line_layout."""

    def __init__(self, cfg: RenderConfig | None = None):
        super().__init__(cfg or RenderConfig())
        self.chars_laid_out = 0  # work counter: characters that went through layout (bounded-cost test)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._init_glyphs()
        self._init_layout()
        c = self.cfg
        self._white_view = memoryview(self._white)
        self._eos = b"\x00" * c.position_width
        self._blocks = StripBlocks(c.patch_size, c.width)
        self._batches = BatchArrays()
        self._native_cache = native.new_cache()  # the native path's own word cache (pixar.render.native)
        self._geometry = (c.text_x, c.eos_gap, c.position_width, c.width)
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
