"""Seeded strips for calibrating and testing the glyph decoder's abstention (pixar.read.abstention).

Every strip is uint8 [8, W] (1 = white, 0 = ink), the renderer's convention; every generator takes a seed and
draws from its own numpy Generator, so a set is the same on every machine.

    corpus_words(n, seed)          n whitespace tokens of corpus prose (punctuation attached, as in text)
    word_strips(renderer, words)   each word rendered alone, its text region (what should be read)
    flip(strips, rate, seed)       each pixel flipped with probability `rate` (readable but noisy)
    NOISE_KINDS                    strips that hold no text (what should not be read):
        random-<d>    every pixel ink with probability d
        blank         a solid ink block (random rows and columns, >= 3 x 4 px) on white
        blotchy       such a block with each of its pixels ink with probability 0.6-0.95
        smudge        3-8 filled ellipses of ink (1-4 px half-height, 1-8 px half-width), 3% flips
        dilated       a rendered corpus word dilated by one pixel in every direction (bold, merged strokes)
"""
from __future__ import annotations

import random
import re

import numpy as np

from pixar.read.wordlist import corpus_lines

HEIGHT = 8
WIDTHS = (32, 48, 64, 80)  # 2-5 positions of 16 px: the generated spans the paper protocols read
RANDOM_DENSITIES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75)
NOISE_KINDS = tuple(f"random-{d}" for d in RANDOM_DENSITIES) + ("blank", "blotchy", "smudge", "dilated")


def corpus_words(n: int, seed: int = 0, data=None) -> list[str]:
    """n distinct whitespace tokens of corpus prose (random.Random(seed)), at most 24 characters each."""
    lines = corpus_lines(data, n=max(4 * n // 8, 50), width=60, seed=seed)
    words = sorted({w for line in lines for w in line.split() if len(w) <= 24 and not re.search(r"\s", w)})
    rng = random.Random(seed)
    return rng.sample(words, min(n, len(words)))


def word_strips(renderer, words: list[str]) -> list[np.ndarray]:
    """Each word rendered alone: the text region before its EOS block, uint8 [8, W]."""
    batch = renderer.render_batch(list(words))
    pw = renderer.cfg.position_width
    return [batch.pixels[i][:, : int(batch.eos_position[i]) * pw].astype(np.uint8) for i in range(len(words))]


def flip(strips: list[np.ndarray], rate: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.where(rng.random(s.shape) < rate, 1 - s, s).astype(np.uint8) for s in strips]


def noise_strips(kind: str, n: int, seed: int = 0, renderer=None, data=None) -> list[np.ndarray]:
    """n strips of `kind` (NOISE_KINDS); 'dilated' needs a renderer (and the corpus)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r} (known: {', '.join(NOISE_KINDS)})")
    rng = np.random.default_rng(seed)
    if kind == "dilated":
        if renderer is None:
            raise ValueError("noise kind 'dilated' needs a renderer")
        return [_dilate(s) for s in word_strips(renderer, corpus_words(n, seed, data))]
    out = []
    for _ in range(n):
        w = int(rng.choice(WIDTHS))
        if kind.startswith("random-"):
            ink = rng.random((HEIGHT, w)) < float(kind.split("-", 1)[1])
        elif kind in ("blank", "blotchy"):
            ink = np.zeros((HEIGHT, w), dtype=bool)
            r0 = int(rng.integers(0, HEIGHT - 2))
            r1 = int(rng.integers(r0 + 3, HEIGHT + 1))
            c0 = int(rng.integers(0, w - 4))
            c1 = int(rng.integers(c0 + 4, w + 1))
            block = np.ones((r1 - r0, c1 - c0), dtype=bool)
            if kind == "blotchy":
                block = rng.random(block.shape) < rng.uniform(0.6, 0.95)
            ink[r0:r1, c0:c1] = block
        else:  # smudge
            ink = np.zeros((HEIGHT, w), dtype=bool)
            rows, cols = np.mgrid[0:HEIGHT, 0:w]
            for _ in range(int(rng.integers(3, 9))):
                cy, cx = rng.uniform(0, HEIGHT), rng.uniform(0, w)
                ry, rx = rng.uniform(1, 4), rng.uniform(1, 8)
                ink |= ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
            ink ^= rng.random(ink.shape) < 0.03
        out.append((~ink).astype(np.uint8))
    return out


def _dilate(strip: np.ndarray) -> np.ndarray:
    ink = strip == 0
    grown = ink.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= np.roll(np.roll(np.pad(ink, 1), dy, 0), dx, 1)[1:-1, 1:-1]
    return (~grown).astype(np.uint8)
