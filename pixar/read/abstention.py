"""When the glyph decoder should say "I cannot read this": per-word confidence and abstention.

The glyph decoder (pixar.read.glyph_decoder) is a shortest path over the strip's columns: it always finds the
cheapest explanation in glyph templates, so a blob of ink comes out as "tlllllllina". Abstention judges each
word of that explanation by how well its templates fit the pixels, and replaces a word that does not fit
by ABSTAIN_MARK.

Words. The decoded path is a sequence of steps: a glyph (its template over the columns [x, x + advance)) or a
skipped column. A step is a *separator* when it is a space or a skipped column with no ink (pixels < 0.5
P(white)); a *word* is a maximal run of the other steps (so ink that the path explains as a space or skips
joins the word next to it, and two words joined by ink in their gap are judged together).

Confidence of a word (on the strip thresholded at 0.5, what a reader sees):
    distance    the Jaccard distance between the strip's ink and the word's templates' ink over the word's
                columns: mismatched pixels / pixels inked in either (skipped ink counts as mismatched);
                0 = the templates explain the pixels exactly, 1 = nothing in common;
    worst       the largest fraction of mismatched pixels of any one glyph of the word (over the 8 x advance
                pixels of its columns): one garbage glyph in a long word;
    speck       fewer than `min_ink` ink pixels and no letter or digit: a lone pixel is exactly a '.' in
                an 8-px font, but random specks are not text.
A word is read when distance <= max_distance, worst <= max_glyph_mismatch and it is not a speck; otherwise it
is replaced by ABSTAIN_MARK ("\\ufffd"). A run with ink but no glyph (the path explained it as spaces or skips)
is a word too (distance 1, so never read), unless it has fewer than `min_ink` pixels (then it stays blank).

What an abstained word scores: every scorer's prediction regex (^[a-zA-Z]*, [a-zA-Z]+, the first alphabetic
run) gives "" for ABSTAIN_MARK, and no vocabulary holds it, so an abstained first word is neither readable
nor correct; the mark keeps the word's place, so the word after it never moves into first position.

Calibration: benchmarks/glyph_abstention.py decodes seeded sets (pixar.read.calibration: corpus words rendered
clean and with flipped pixels; random pixels, blank and blotchy ink blocks, smudges, dilated words) and prints
what each threshold reads and abstains on; DEFAULT_RULE is the middle of the range where every no-text kind
abstains on >= 97% of strips and clean words all read (the figures are quoted beside it).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

ABSTAIN_MARK = "\ufffd"
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class AbstentionRule:
    """When a word is read (module docstring): distance <= max_distance, worst <= max_glyph_mismatch, and not a
    speck (fewer than min_ink pixels with no letter or digit)."""

    max_distance: float
    max_glyph_mismatch: float
    min_ink: int = 4

    def __post_init__(self) -> None:
        if not (0 <= self.max_distance <= 1 and 0 <= self.max_glyph_mismatch <= 1) or self.min_ink < 1:
            raise ValueError("abstention thresholds must lie in [0, 1] and min_ink be >= 1, got "
                             f"{self.max_distance}, {self.max_glyph_mismatch}, {self.min_ink}")

    def accepts(self, word: "Word") -> bool:
        if word.ink < self.min_ink and not _LETTER_OR_DIGIT.search(word.text):
            return False  # a speck: a lone pixel is a '.', but not a word
        return word.distance <= self.max_distance and word.worst <= self.max_glyph_mismatch


# Calibrated by benchmarks/glyph_abstention.py (seed 0: 500 corpus words, 300 strips per no-text kind). Words
# read exactly: clean 100%, 1% / 2% / 5% flipped pixels 89.6 / 82.2 / 56.4% (forced choice: 100, 89.8, 84.4,
# 67.0). Strips with nothing read: random pixels at densities 0.05-0.75 100%, blank blocks 97.0%, blotchy
# blocks 98.7%, smudges 100%, dilated words 100% (forced choice: 0-29%). max_distance 0.25-0.35 gives the same
# no-text rates; 0.40 lets noise through (98.7% at density 0.05, 96.3% blank), 0.20 costs flipped text.
DEFAULT_RULE = AbstentionRule(max_distance=0.30, max_glyph_mismatch=0.25, min_ink=4)


@dataclass(frozen=True)
class Word:
    """One word of a decoded path: its text, columns [x0, x1) of the padded strip, and its template fit."""

    text: str
    x0: int
    x1: int
    height: int
    ink: float  # ink pixels of the strip in the word's columns
    template_ink: float  # ink pixels of the word's templates
    miss: float  # pixels where they disagree (skipped ink included)
    worst: float  # the worst glyph's mismatched pixels / (height * advance); 0 without glyphs
    glyphs: int  # non-space glyphs in the word
    read: bool = True  # False: replaced by ABSTAIN_MARK

    @property
    def mismatch(self) -> float:
        """Mismatched pixels / the pixels of the word's columns."""
        return self.miss / (self.height * (self.x1 - self.x0))

    @property
    def distance(self) -> float:
        """Jaccard distance of the strip's ink and the templates' ink: mismatched / union (0 = exact)."""
        union = (self.ink + self.template_ink + self.miss) / 2
        return self.miss / union if union else 0.0


def words_of_path(path, chars: list[str], advances: np.ndarray, template_ink: np.ndarray, hamming: np.ndarray,
                  col_ink: np.ndarray, height: int, rule: AbstentionRule | None) -> list[Word | str]:
    """path [(pen x, template index or -1 = skip)] -> separators (str: " " or "") and Words in strip order.

    template_ink [C]: ink pixels of each template; hamming [C, N]: mismatched pixels of template c with its pen
    at x (thresholded strip); col_ink [N]: ink pixels of column x. rule None: every word is read."""
    out: list[Word | str] = []
    cur: list[tuple[str, int, int, float, float, float]] = []  # (char, x, width, miss, strip ink, template ink)

    def flush() -> None:
        if not cur:
            return
        glyph_fits = [m / (height * w) for c, _, w, m, _, _ in cur if c not in ("", " ")]
        word = Word("".join(c for c, *_ in cur), cur[0][1], cur[-1][1] + cur[-1][2], height,
                    sum(e[4] for e in cur), sum(e[5] for e in cur), sum(e[3] for e in cur),
                    max(glyph_fits, default=0.0), len(glyph_fits))
        if not word.glyphs and (rule is None or word.ink < rule.min_ink):
            out.append(word.text)  # blank-ish run explained by spaces/skips: stays what it was
        else:
            out.append(word if rule is None or rule.accepts(word) else dataclasses.replace(word, read=False))
        cur.clear()

    for x, c in path:
        if c < 0:
            ch, width, miss, t_ink = "", 1, float(col_ink[x]), 0.0
        else:
            ch, width, miss, t_ink = chars[c], int(advances[c]), float(hamming[c, x]), float(template_ink[c])
        ink = float(col_ink[x: x + width].sum())
        if (c < 0 or ch == " ") and ink == 0:
            flush()
            out.append(ch)
        else:
            cur.append((ch, x, width, miss, ink, t_ink))
    flush()
    return out


def assemble(parts: list[Word | str]) -> str:
    """The text of words_of_path's output: separators as they are, read words' text, ABSTAIN_MARK for the rest."""
    return "".join(p if isinstance(p, str) else (p.text if p.read else ABSTAIN_MARK) for p in parts)


def abstained(text: str) -> bool:
    """True when a reading has no read character: only ABSTAIN_MARKs and whitespace, and at least one mark."""
    return ABSTAIN_MARK in text and not text.replace(ABSTAIN_MARK, "").strip()
