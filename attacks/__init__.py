"""Orthographic and visual attacks for robustness evaluation.

Every attack is registered in :data:`ATTACKS` under its CLI-facing name and
belongs to one *family*, which fixes what the severity ``rate`` means:

``word``
    Fraction of words perturbed (PIXEL / Zeroé semantics):
    ``ceil(rate * n_words)`` words are changed by the operator, chosen in a
    random order; words the operator cannot change (too short, ...) are
    skipped and do not count. ``rate`` in [0, 1]. See :mod:`attacks.words`.
    ``intrude`` also uses ``rate`` as its per-gap insertion probability,
    as PIXEL does.
``char``
    Per-character probability ``rate`` in [0, 1]: ``confusable`` (PIXAR,
    each ASCII letter), ``zeroe-confusable`` (Zeroé, each non-space,
    non-punctuation character), ``segment`` (Zeroé, each ASCII space is
    deleted).
``pixel``
    Operate on binary images (1 = white, 0 = ink), ``[H, W]`` or
    ``[B, H, W]``, through :func:`perturb_image`: ``salt-pepper`` flips each
    pixel with probability ``rate``; ``shift`` moves the content by ``rate``
    whole pixels in a random direction (right/left/down/up), white fill.

Severity 0 is the identity for every attack. All randomness comes from the
``random.Random`` passed in; nothing touches global RNG state. Seeding per
example (and pixel attacks as model transforms) is :mod:`attacks.seeded`.

This package is pure perturbation: it imports ``pixar.render.renderer`` at most and
nothing from ``harness``; applying attacks to models (the robustness suite,
``pixar attack``, TextAttack recipes) lives in ``harness``.

Two PIXEL attacks need data we do not ship and are registered as
unavailable: ``phonetic`` and ``natural-typo``. :func:`perturb` raises
:class:`AttackUnavailableError` for them.

Example::

    >>> import random
    >>> from attacks import perturb
    >>> perturb("the movie was good", "disemvowel", 1.0, random.Random(0))
    'th mv ws gd'
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from attacks import char_ops, visual
from attacks.words import check_rate, count_words, perturb_words, split_keep_whitespace
from pixar.errors import PixarError

__all__ = [
    "ATTACKS", "AttackSpec", "AttackUnavailableError", "FAMILIES", "available_attacks",
    "count_words", "get_attack", "perturb", "perturb_image", "split_keep_whitespace",
]

FAMILIES = {
    "word": "fraction of words perturbed: ceil(rate * n_words) words changed",
    "char": "per-character probability",
    "pixel": "per-pixel flip probability (salt-pepper) / shift in whole pixels (shift)",
}


class AttackUnavailableError(PixarError, RuntimeError):
    """Raised when an attack is registered but cannot run (missing data)."""


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``apply`` depends on the family: ``word``: ``(word, rng, rate) -> str``
    applied per word by :func:`attacks.words.perturb_words`; ``char``:
    ``(text, rate, rng) -> str``; ``pixel``: ``(image, rate, rng) -> ndarray``.
    """

    name: str
    family: str
    description: str
    source: str
    apply: Callable[..., Any] | None
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @property
    def severity(self) -> str:
        """What ``rate`` means for this attack."""
        return FAMILIES[self.family]


def _word(op: Callable[[str, random.Random], str]) -> Callable[[str, random.Random, float], str]:
    return lambda word, rng, rate: op(word, rng)


_TA = "TextAttack textattack/transformations/word_swaps/"
_ZEROE = "Zeroé via xplip/pixel scripts/data/robustness/adversarial_attacks/"
_NO_DATA = ("needs data this project does not ship ({}); PIXEL/Zeroé read it from "
            "files in xplip/pixel. Add the data and an operator to enable it.")

_SPECS = [
    AttackSpec("swap", "word", "swap two neighbouring characters",
               _TA + "word_swap_neighboring_character_swap.py", _word(char_ops.swap)),
    AttackSpec("delete", "word", "delete one random character",
               _TA + "word_swap_random_character_deletion.py", _word(char_ops.delete)),
    AttackSpec("insert", "word", "insert one random ASCII letter",
               _TA + "word_swap_random_character_insertion.py", _word(char_ops.insert)),
    AttackSpec("substitute", "word", "replace one character by a random ASCII letter",
               _TA + "word_swap_random_character_substitution.py", _word(char_ops.substitute)),
    AttackSpec("qwerty", "word", "replace one letter by an adjacent QWERTY key",
               _TA + "word_swap_qwerty.py", _word(char_ops.qwerty)),
    AttackSpec("homoglyph", "word", "replace one character by its Unicode homoglyph",
               _TA + "word_swap_homoglyph_swap.py (our table)", _word(char_ops.homoglyph)),
    AttackSpec("inner-shuffle", "word", "shuffle a word's interior (first/last kept)",
               _ZEROE + "simple_attacks (inner-swap)", _word(char_ops.inner_shuffle)),
    AttackSpec("full-shuffle", "word", "shuffle all characters of a word",
               _ZEROE + "simple_attacks (full-swap)", _word(char_ops.full_shuffle)),
    AttackSpec("disemvowel", "word", "remove the vowels of a word",
               _ZEROE + "simple_attacks (disemvowel)", _word(char_ops.disemvowel)),
    AttackSpec("truncate", "word", "drop a word's last character",
               _ZEROE + "simple_attacks (truncate)", _word(char_ops.truncate)),
    AttackSpec("keyboard", "word", "replace one letter by a neighbouring key",
               _ZEROE + "simple_attacks (keyboard-typo)", _word(char_ops.keyboard)),
    AttackSpec("intrude", "word", "insert a punctuation mark into inner gaps (prob. = rate)",
               _ZEROE + "simple_attacks (intrude)",
               lambda word, rng, rate: char_ops.intrude(word, rng, p=rate)),
    AttackSpec("segment", "char", "delete each space with probability rate",
               _ZEROE + "simple_attacks/segmentations.py", char_ops.segment),
    AttackSpec("zeroe-confusable", "char", "each non-space, non-punctuation char -> confusable",
               _ZEROE + "visual_attacks/unicode_confusables.py (our table)",
               visual.zeroe_confuse),
    AttackSpec("confusable", "char", "each ASCII letter -> Unicode look-alike (PIXAR)",
               "april-tools/pixar LatentPixel/CONFUSABLES.py, utils.confuse (our table)",
               visual.confuse),
    AttackSpec("phonetic", "word", "phonetic respelling",
               _ZEROE + "phonetic_attacks", None,
               _NO_DATA.format("CMUdict-based n-gram statistics gram_{1,2,3}.pkl")),
    AttackSpec("natural-typo", "word", "replace words by real human typos",
               _ZEROE + "simple_attacks (natural-typo)", None,
               _NO_DATA.format("the en.natural list of observed typos")),
    AttackSpec("salt-pepper", "pixel", "flip each pixel with probability rate",
               "ours (pixel-space noise)", visual.salt_pepper),
    AttackSpec("shift", "pixel", "shift the text by rate pixels, random direction",
               "ours (pixel-space translation)", visual.random_shift),
]

#: Name -> spec, in registration order.
ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in _SPECS}


def get_attack(name: str) -> AttackSpec:
    """Return the spec registered as ``name``; ``ValueError`` if unknown."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; valid names: {', '.join(ATTACKS)}") from None


def available_attacks(family: str | None = None) -> list[str]:
    """Names of attacks that can run, optionally restricted to one family."""
    return [n for n, s in ATTACKS.items() if s.available and (family is None or s.family == family)]


def _runnable(name: str) -> AttackSpec:
    spec = get_attack(name)
    if not spec.available:
        raise AttackUnavailableError(f"attack {name!r} is unavailable: {spec.unavailable_reason}")
    return spec


def perturb(text: str, name: str, rate: float, rng: random.Random) -> str:
    """Perturb ``text`` with the text attack ``name`` at severity ``rate``.

    ``rng`` is the only source of randomness (it is advanced). See the module
    docstring for the meaning of ``rate`` per family. Raises ``ValueError``
    for unknown names or an out-of-range rate, :class:`AttackUnavailableError`
    for unavailable attacks and ``TypeError`` for pixel attacks.
    """
    spec = _runnable(name)
    if spec.family == "pixel":
        raise TypeError(f"attack {name!r} works on images; use perturb_image()")
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    check_rate(rate)
    if spec.family == "word":
        return perturb_words(text, lambda word, r: spec.apply(word, r, rate), rate, rng)
    return spec.apply(text, rate, rng)


def perturb_image(image: np.ndarray, name: str, rate: float, rng: random.Random) -> np.ndarray:
    """Apply the pixel attack ``name`` to a binary image or batch; new array."""
    spec = _runnable(name)
    if spec.family != "pixel":
        raise TypeError(f"attack {name!r} works on text; use perturb()")
    return spec.apply(image, rate, rng)
