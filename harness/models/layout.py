"""PIXAR's evaluation layout in pixel positions (one position = 8x16 px): fitting a context, scoring windows,
generation budgets. Pure functions over a `pixar.render.renderer.Renderer`; the PIXAR runner composes them.

    fold_gq(text)                       the 8-px font draws g and q alike: compare with both folded to q
    positions_for_chars(n, P)           generation budget in positions for n characters (with margin)
    left_fit(renderer, text, budget)    the longest word-suffix of text whose rendering fits `budget` positions
    window_plan(n_prefix, n_target, P)  disjoint scoring windows: every target position scored exactly once
"""
from __future__ import annotations

import math

import numpy as np

from pixar.render.renderer import Renderer

CHARS_PER_POSITION = 3.3  # mean of Pixeloid Sans on LAMBADA text (4.9 px per character, 16 px per position)
GEN_MARGIN = 1.25
SPACING = 3  # PIXAR's _spacing_text(3): white columns between the context and its EOS slot


def fold_gq(text: str) -> str:
    return text.replace("g", "q")


def positions_for_chars(num_chars: int, max_positions: int) -> int:
    """Generation budget in positions for `num_chars` characters (with margin), capped to fit."""
    return max(1, min(math.ceil(num_chars / CHARS_PER_POSITION * GEN_MARGIN) + 1, max_positions - 1))


def left_fit(renderer: Renderer, text: str, budget: int) -> str:
    """The longest suffix of `text`, cut at a word start when possible, whose rendering needs at most
    `budget` positions before its EOS block (at least 1)."""
    cfg, pw = renderer.cfg, renderer.cfg.position_width
    text = renderer.normalise(text)
    limit = max(budget, 1) * pw - cfg.eos_gap - cfg.text_x  # pen advance that still fits
    adv = np.fromiter((renderer.glyph(c).advance for c in text), dtype=np.int64, count=len(text))
    suffix = np.concatenate([np.cumsum(adv[::-1])[::-1], [0]])  # suffix[i] = advance of text[i:]
    if suffix[0] <= limit:
        return text
    first_fit = int(np.argmax(suffix <= limit))  # smallest i whose suffix fits
    for i in range(first_fit, len(text)):
        if i == 0 or text[i - 1] == " ":
            return text[i:].lstrip(" ") if text[i:].strip() else text[first_fit:]
    return text[first_fit:]


def window_plan(n_prefix: int, n_target: int, max_positions: int) -> list[tuple[int, int, int, int]]:
    """Disjoint scoring windows over a sequence of n_prefix context + n_target scored positions.
    Returns (in_start, in_end, score_start, score_end) in absolute indices: the model reads
    [in_start, in_end) (at most max_positions) and scores [score_start, score_end) = the last
    positions of that window; every scored index appears once. Needs n_prefix >= 1."""
    if n_prefix < 1:
        raise ValueError("scoring needs at least one context position")
    plans, a, end = [], n_prefix, n_prefix + n_target
    while a < end:
        b = min(a + max_positions - 1, end)
        plans.append((max(0, b - max_positions), b, a, b))
        a = b
    return plans
