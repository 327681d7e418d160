"""The slow oracle: one text drawn with plain Pillow calls, no glyph table, no column bytes.

Visible characters of the main font are drawn run by run (one `ImageDraw.text` call per run, Pillow's
own advance); fallback-font characters one by one (Pango rounds each advance to a pixel); hex boxes
from their pixel table; whitespace and invisible characters follow pixar.render.text_rules, independently of
the fast path's word and line code in pixar.render.line_layout. Lines that need Pango's itemisation, bidi and
HarfBuzz shaping (a fallback-font character or right-to-left text) are drawn by pixar.render.shaping, the one
implementation of those steps; their pixels are pinned by the multi-script goldens instead.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

from pixar.render import text_rules as tr
from pixar.render.glyph_columns import hexbox, raise_box_bottom
from pixar.render.shaping import needs_shaping


def _line_metrics(renderer, line: str) -> tuple[int, int]:
    asc, desc = tr.LINE_METRICS["main"]
    for ch in line:
        char_class, tag = renderer.char_class(ch)
        key = tag if char_class == tr.GRAPH else (tr.HEXBOX if char_class == tr.HEXBOX else None)
        if key:
            asc, desc = max(asc, tr.LINE_METRICS[key][0]), max(desc, tr.LINE_METRICS[key][1])
    return asc, desc


def _draw_line(renderer, line: str, baseline: int, img: Image.Image, extra: np.ndarray, x0: int) -> int:
    """Draw one line from pen x0 on `baseline`; hex boxes go into `extra` (bool ink). Returns its advance."""
    d = ImageDraw.Draw(img)
    main = renderer._font_of_tag("main")
    font = "main"
    for ch in line:  # leading whitespace takes the font of the first visible character
        char_class, tag = renderer.char_class(ch)
        if char_class == tr.GRAPH:
            font = tag
            break
    pen, run = 0, ""

    def flush():
        nonlocal pen, run
        if run:
            d.text((x0 + pen, baseline), run, font=main, fill=0, anchor="ls")
            pen += int(round(main.getlength(run)))
            run = ""

    space = renderer._space_advance("main", " ")
    for ch in line:
        char_class, tag = renderer.char_class(ch)
        if char_class == tr.GRAPH and tag == "main":
            run += ch
            font = "main"
            continue
        flush()
        if char_class == tr.GRAPH:
            f = renderer._font_of_tag(tag)
            d.text((x0 + pen, baseline), ch, font=f, fill=0, anchor="ls")
            pen += int(round(f.getlength(ch)))
            font = font if tr.is_mark(ch) else tag
        elif char_class == tr.SPACE:
            pen += renderer._space_advance(font, ch)
        elif char_class == tr.TAB:
            pen += tr.tab_advance(pen, space)
        elif char_class == tr.HEXBOX:
            g = hexbox(ch, extra.shape[0], baseline)
            a = x0 + pen + g.left
            lo, hi = max(a, 0), min(a + g.ink.shape[1], extra.shape[1])
            if hi > lo:
                extra[:, lo:hi] |= g.ink[:, lo - a: hi - a]
            pen += g.advance
        elif char_class == tr.NOTDEF:
            f = renderer._font_of_tag(font)
            d.text((x0 + pen, baseline), ch, font=f, fill=0, anchor="ls")
            pen += int(round(f.getlength(ch)))
    flush()
    return pen


def draw_reference(renderer, text: str, ink: np.ndarray, x0: int, fallback: Counter, unknown: Counter) -> int:
    """OR the ink of `text` drawn from pen x0 into `ink` (bool [H, W]); return its advance (widest line)."""
    if "\x00" in text:
        renderer._count("\x00", fallback, unknown, text.count("\x00"))
    text = renderer.normalise(text)
    mode = renderer.cfg.whitespace
    lines = tr.split_lines(text) if mode == "pango" else [text]
    if any(needs_shaping(renderer, ln) for ln in lines):  # Pango's items, bidi and HarfBuzz: pixar.render.shaping
        return renderer.shaped_lines(lines, ink, x0, fallback, unknown)
    for ch in set(text):
        renderer._count(ch, fallback, unknown, text.count(ch))
    lines = [tr.visual_order(ln) for ln in lines]
    baselines = renderer.line_baselines([_line_metrics(renderer, ln) for ln in lines])
    img = Image.new("L", (ink.shape[1], ink.shape[0]), 255)
    extra = np.zeros_like(ink)
    width = 0
    for line, bl in zip(lines, baselines):
        adv = _draw_line(renderer, line, bl, img, extra, x0)
        width = max(width, adv)
        if len(lines) == 1 and line and all(renderer.char_class(c)[0] == tr.HEXBOX for c in line):
            raise_box_bottom(extra, bl, x0, x0 + adv)  # boxes alone: half a pixel higher (measured)
    ink |= (np.asarray(img) <= 127) | extra
    return width
