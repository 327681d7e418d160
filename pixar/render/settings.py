"""Render settings other than the paper's, and the one drawing path they use.

    render_config("pixar")    the paper: Pixeloid Sans 8 pt at 80 dpi, 8-px patches, 2 per position (the default)
    render_config("pixel")    PIXEL's setting: GoNotoCurrent 8 pt at 120 dpi (13.3 px), 16-px patches, 1 per
                              position, 529 positions (Rust et al. 2023; pixar-render's own defaults)
    render_config("pixar32")  32-px patches: Pixeloid 8 pt at 320 dpi (35.6 px, exactly 4x its pixel grid), 2 per
                              position, 360 positions: the paper's layout at four times the resolution

Each is what the authors' renderer (pixar-render 0.5.1) draws with those arguments (checked on a sample of
the multi-script goldens: benchmarks/render_settings.py, tests/test_render_settings.py). The paper's setting
has the byte-column fast path (pixar.render.renderer); the others are drawn line by line through Pango's
steps (pixar.render.shaping: items, bidi, HarfBuzz for GoNoto, the glyph table for Pixeloid), straight into
the strip's pixels. Not reproduced at these settings: Pango's hex box (a character no font has is drawn as
the main font's .notdef and counted).
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from pixar.config import RenderConfig
from pixar.config_io import ConfigError
from pixar.render import text_rules as tr

SETTINGS = {
    "pixar": {},
    "pixel": {"font": "gonoto", "font_size": 13, "dpi": 120, "patch_size": 16, "patch_len": 1, "max_positions": 529},
    "pixar32": {"font_size": 36, "dpi": 320, "patch_size": 32, "patch_len": 2, "max_positions": 360},
}


def render_config(name: str, **overrides) -> RenderConfig:
    """The RenderConfig of a named setting (SETTINGS), with any field overridden."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown render setting {name!r}; choose one of {', '.join(SETTINGS)}")
    return dataclasses.replace(RenderConfig(), **{**SETTINGS[name], **overrides})


def render_direct(renderer, texts, out: np.ndarray | None = None):
    """Strings or (a, b) pairs -> the fields of a RenderedBatch (pixels, mask, eos, truncated, fallback, unknown),
    every line through pixar.render.shaping, ink straight into the pixels (`out`: the caller's uint8 [B, H, W]
    buffer, as Renderer.render_batch)."""
    cfg = renderer.cfg
    H, W, pw = cfg.patch_size, cfg.width, cfg.position_width
    B = len(texts)
    if out is not None:
        renderer._check_out(out, B)
    pixels = out if out is not None else np.empty((B, H, W), np.uint8)
    eos = np.zeros(B, np.int64)
    truncated = np.zeros(B, bool)
    fallback, unknown = Counter(), Counter()
    cap = W + 64  # a text longer than this cannot fit: laid out from its prefix (bounded cost), flagged truncated
    for i, item in enumerate(texts):
        ink = np.zeros((H, W), bool)
        x, eos_col = cfg.text_x, 0
        for text in ((item,) if isinstance(item, str) else tuple(item)):
            if len(text) > cap:
                text, truncated[i] = text[:cap], True
            renderer.chars_laid_out += len(text)
            if "\x00" in text:
                renderer._count("\x00", fallback, unknown, text.count("\x00"))
            text = renderer.normalise(text)
            multi = cfg.whitespace == "pango" and any(c in text for c in tr.LINE_BREAKS)
            advance = renderer.shaped_lines(tr.split_lines(text) if multi else [text], ink, x, fallback, unknown)
            eos_col = renderer._eos_col(x + advance)
            if eos_col + pw > W:  # too long: EOS on the last position, the text cut at its boundary
                eos_col, truncated[i] = W - pw, True
                break
            ink[:, eos_col: eos_col + pw] = True
            x = eos_col + pw + cfg.text_x
        ink[:, eos_col: eos_col + pw] = True
        ink[:, eos_col + pw:] = False
        np.logical_not(ink, out=pixels[i].view(bool))
        eos[i] = eos_col // pw
    return pixels, renderer._masks[eos], eos, truncated, fallback, unknown
