"""Word segmentation and word-level severity for the orthographic attacks.

Whitespace is preserved exactly: the text is split with a regex that keeps
the separators (``re.split(r"(\\s+)", text)``), so ``"".join(pieces)`` is the
original text and re-joining after perturbation never changes spacing.

A *word* is a whitespace-free chunk that contains at least one alphanumeric
character. Its leading and trailing non-alphanumeric characters
(punctuation, quotes, brackets, symbols) stay attached but are not perturbed:
``"(good),"`` has the core ``"good"`` and the affixes ``"("`` and ``"),"``.
Interior punctuation belongs to the core (``"don't"``, ``"e-mail"``), as in
TextAttack's word tokenisation. Chunks without an alphanumeric character
(``"--"``, ``"..."``) are not words and are never touched.

Severity of word-level attacks (PIXEL / Zeroé semantics,
``xplip/pixel: scripts/data/robustness/adversarial_attacks/simple_attacks``):
``rate`` is the fraction of words to perturb. ``k = ceil(rate * n_words)``
words must be *changed*; words are visited in a random order and the operator
is applied until ``k`` words have actually changed or every word has been
tried. Words the operator cannot change (too short, no vowel, ...) are
skipped and do not count, exactly like PIXEL's ``simple_perturb`` loop, so
``rate=0.5`` on ten perturbable words changes exactly five of them.
Differences from PIXEL: no NLTK tokeniser or Treebank detokeniser (they need
downloaded data and rewrite spacing and quotes), and the RNG is explicit.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Callable

WordOp = Callable[[str, random.Random], str]

_SPLIT_RE = re.compile(r"(\s+)")
# Relative tolerance so that e.g. 0.7 * 10 = 7.000000000000001 gives 7, not 8.
_CEIL_EPS = 1e-9


@dataclass(frozen=True)
class Word:
    """A word inside a whitespace-free chunk: ``prefix + core + suffix``."""

    piece: int  # index into the list returned by :func:`split_keep_whitespace`
    prefix: str
    core: str
    suffix: str


def split_keep_whitespace(text: str) -> list[str]:
    """Split ``text`` into alternating chunks and whitespace runs.

    ``"".join(split_keep_whitespace(t)) == t`` for every string ``t``. Empty
    strings produced by :func:`re.split` at the ends are dropped.
    """
    return [p for p in _SPLIT_RE.split(text) if p]


def split_affixes(chunk: str) -> tuple[str, str, str]:
    """Split a whitespace-free chunk into (leading punct, core, trailing punct).

    The core runs from the first to the last alphanumeric character. A chunk
    with no alphanumeric character returns ``(chunk, "", "")``.
    """
    start = next((i for i, ch in enumerate(chunk) if ch.isalnum()), None)
    if start is None:
        return chunk, "", ""
    end = max(i for i, ch in enumerate(chunk) if ch.isalnum()) + 1
    return chunk[:start], chunk[start:end], chunk[end:]


def find_words(pieces: list[str]) -> list[Word]:
    """Return the words of a :func:`split_keep_whitespace` result, in order."""
    words = []
    for i, piece in enumerate(pieces):
        if piece.isspace():
            continue
        prefix, core, suffix = split_affixes(piece)
        if core:
            words.append(Word(i, prefix, core, suffix))
    return words


def count_words(text: str) -> int:
    """Number of words in ``text`` in the sense of this module."""
    return len(find_words(split_keep_whitespace(text)))


def n_words_to_perturb(rate: float, n_words: int) -> int:
    """``ceil(rate * n_words)`` with float noise removed; ``rate`` in [0, 1]."""
    check_rate(rate)
    return min(n_words, math.ceil(rate * n_words - _CEIL_EPS))


def check_rate(rate: float, upper: float = 1.0) -> None:
    """Raise ``ValueError`` unless ``0 <= rate <= upper``."""
    if not (0.0 <= float(rate) <= upper):
        raise ValueError(f"rate must be in [0, {upper}], got {rate!r}")


def perturb_words(text: str, word_op: WordOp, rate: float, rng: random.Random) -> str:
    """Apply ``word_op`` to ``ceil(rate * n_words)`` words of ``text``.

    See the module docstring for the exact semantics. ``rate == 0`` returns
    ``text`` unchanged without consuming randomness.
    """
    pieces = split_keep_whitespace(text)
    words = find_words(pieces)
    target = n_words_to_perturb(rate, len(words))
    if target == 0:
        return text
    order = list(range(len(words)))
    rng.shuffle(order)
    changed = 0
    for idx in order:
        if changed >= target:
            break
        word = words[idx]
        new_core = word_op(word.core, rng)
        if new_core != word.core:
            pieces[word.piece] = word.prefix + new_core + word.suffix
            changed += 1
    return "".join(pieces)
