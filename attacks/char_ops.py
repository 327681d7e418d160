"""Character-level word operators (pure functions with an explicit RNG).

Every *word operator* has the signature ``op(word, rng, ...) -> str``: it
takes the core of one word (see :mod:`attacks.words`) and a
``random.Random`` and returns the perturbed word, or the word unchanged when
the operator cannot apply (too short, nothing to change). Operators never
touch global RNG state.

Two families of sources are mirrored:

* **TextAttack** ``textattack/transformations/word_swaps/*`` with
  ``random_one=True``: ``swap``, ``delete``, ``insert``, ``substitute``,
  ``qwerty``, ``homoglyph``. TextAttack returns no candidate for words of
  length <= 1 and drops candidates equal to the input; we return the word
  unchanged in the first case and, instead of proposing a no-op, draw only
  among edits that change the word (e.g. ``swap`` never swaps two equal
  letters, ``substitute`` never re-draws the same letter). This is the same
  distribution TextAttack's ``Augmenter`` ends up sampling from.
* **Zeroé / PIXEL** (``xplip/pixel: scripts/data/robustness/
  adversarial_attacks/simple_attacks/simple_attacks.py``, after BERT-Defense
  and ``ybisk/charNMT-noise``): ``inner_shuffle`` (inner-swap),
  ``full_shuffle`` (full-swap), ``disemvowel``, ``truncate``, ``keyboard``
  (keyboard-typo), ``intrude``; plus the text-level ``segment``
  (``simple_attacks/segmentations.py::manip_segmentations``). Zeroé's
  ``confusable`` is :func:`attacks.visual.zeroe_confuse`, next to the other
  look-alike tables.

Minimum lengths (shorter words are returned unchanged): swap/delete/insert/
substitute/qwerty 2 (3 or 4 with the skip flags), inner_shuffle 4,
full_shuffle 3, disemvowel 3, truncate 4 (drops to no fewer than 3
characters), intrude 2, keyboard and homoglyph 1.
"""

from __future__ import annotations

import random
import string

from attacks.visual import HOMOGLYPHS

__all__ = [
    "swap", "delete", "insert", "substitute", "qwerty", "homoglyph",
    "inner_shuffle", "full_shuffle", "disemvowel", "truncate", "keyboard", "intrude",
    "segment", "QWERTY_ADJACENCY", "KEYBOARD_NEIGHBOURS",
]

#: TextAttack's ``WordSwap._get_random_letter`` alphabet.
LETTERS = string.ascii_letters

#: Lower-case QWERTY adjacency used by TextAttack's ``WordSwapQWERTY``.
QWERTY_ADJACENCY: dict[str, str] = {
    "q": "was", "w": "qeasd", "e": "wsdfr", "r": "edfgt", "t": "rfghy",
    "y": "tghju", "u": "yhjki", "i": "ujklo", "o": "iklp", "p": "ol",
    "a": "qwszx", "s": "qweadzx", "d": "wercxs", "f": "ertgvcd", "g": "rtyhbvd",
    "h": "tyugjbn", "j": "yuikmnh", "k": "uiolmj", "l": "iopk",
    "z": "asx", "x": "sdzc", "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}

_KEY_ROWS = ("1234567890-", "qwertyuiop[", "asdfghjkl;'", "zxcvbnm,./")


def _keyboard_neighbours() -> dict[str, str]:
    """Letter -> neighbouring keys incl. digits and punctuation.

    Reproduces the rule behind charNMT-noise's ``en.key`` (used by PIXEL's
    keyboard-typo): same row left/right, row above at columns c and c+1, row
    below at columns c-1, c and c+1 (staggered keyboard).
    """
    table = {}
    for r, row in enumerate(_KEY_ROWS):
        for c, key in enumerate(row):
            if not key.isalpha():
                continue
            cells = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1),
                     (r + 1, c - 1), (r + 1, c), (r + 1, c + 1)]
            table[key] = "".join(_KEY_ROWS[rr][cc] for rr, cc in cells
                                 if 0 <= rr < len(_KEY_ROWS) and 0 <= cc < len(_KEY_ROWS[rr]))
    return table


#: Zeroé keyboard-typo neighbours (lower-case letter keys).
KEYBOARD_NEIGHBOURS: dict[str, str] = _keyboard_neighbours()


def _span(word: str, skip_first_char: bool, skip_last_char: bool) -> tuple[int, int]:
    """Character positions [start, end) an operator may touch."""
    return (1 if skip_first_char else 0), len(word) - (1 if skip_last_char else 0)


# ----------------------------------------------------------------- TextAttack

def swap(word: str, rng: random.Random, skip_first_char: bool = False,
         skip_last_char: bool = False) -> str:
    """Swap two neighbouring characters (``WordSwapNeighboringCharacterSwap``).

    Chooses ``i`` among positions where ``word[i] != word[i+1]`` inside the
    allowed span; keeps the length and the multiset of characters.
    """
    if len(word) <= 1:
        return word
    start, end = _span(word, skip_first_char, skip_last_char)
    options = [i for i in range(start, end - 1) if word[i] != word[i + 1]]
    if not options:
        return word
    i = rng.choice(options)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def delete(word: str, rng: random.Random, skip_first_char: bool = False,
           skip_last_char: bool = False) -> str:
    """Delete one random character (``WordSwapRandomCharacterDeletion``)."""
    if len(word) <= 1:
        return word
    start, end = _span(word, skip_first_char, skip_last_char)
    if start >= end:
        return word
    i = rng.randrange(start, end)
    return word[:i] + word[i + 1:]


def insert(word: str, rng: random.Random, skip_first_char: bool = False,
           skip_last_char: bool = False) -> str:
    """Insert a random ASCII letter before position ``i``
    (``WordSwapRandomCharacterInsertion``; ``i`` in [start, end) as there)."""
    if len(word) <= 1:
        return word
    start, end = _span(word, skip_first_char, skip_last_char)
    if start >= end:
        return word
    i = rng.randrange(start, end)
    return word[:i] + rng.choice(LETTERS) + word[i:]


def substitute(word: str, rng: random.Random) -> str:
    """Replace one character by a different random ASCII letter
    (``WordSwapRandomCharacterSubstitution``, which has no skip flags)."""
    if len(word) <= 1:
        return word
    i = rng.randrange(len(word))
    letter = rng.choice([c for c in LETTERS if c != word[i]])
    return word[:i] + letter + word[i + 1:]


def qwerty(word: str, rng: random.Random, skip_first_char: bool = False,
           skip_last_char: bool = False) -> str:
    """Replace a letter by an adjacent QWERTY key (``WordSwapQWERTY``).

    Upper-case letters get upper-case neighbours, as in TextAttack. Only
    positions holding a letter with neighbours are eligible (TextAttack's
    ``random_one`` path raises on e.g. a digit; we skip such positions).
    """
    if len(word) <= 1:
        return word
    start, end = _span(word, skip_first_char, skip_last_char)
    options = [i for i in range(start, end) if word[i].lower() in QWERTY_ADJACENCY]
    if not options:
        return word
    i = rng.choice(options)
    new = rng.choice(QWERTY_ADJACENCY[word[i].lower()])
    return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1:]


def homoglyph(word: str, rng: random.Random) -> str:
    """Replace one character by its homoglyph (``WordSwapHomoglyphSwap``).

    TextAttack's table maps each character to a single look-alike and the
    transformation proposes one candidate per mappable position; we pick one
    of those positions uniformly. Table: :data:`attacks.visual.HOMOGLYPHS`.
    """
    options = [i for i, ch in enumerate(word) if ch in HOMOGLYPHS]
    if not options:
        return word
    i = rng.choice(options)
    return word[:i] + HOMOGLYPHS[word[i]] + word[i + 1:]


# --------------------------------------------------------------- Zeroé / PIXEL

def _shuffled(chars: str, rng: random.Random, tries: int = 100) -> str:
    """A permutation of ``chars`` different from it (if one exists)."""
    if len(set(chars)) < 2:
        return chars
    for _ in range(tries):
        perm = list(chars)
        rng.shuffle(perm)
        if "".join(perm) != chars:
            return "".join(perm)
    return chars[1:] + chars[0]  # a 1-rotation differs whenever >= 2 distinct chars


def inner_shuffle(word: str, rng: random.Random) -> str:
    """Zeroé inner-swap: shuffle all characters but the first and the last.

    PIXEL's ``swap(word, inner=True)``: words shorter than 4 are unchanged;
    reshuffles until the word changes (PIXEL gives up after 10 tries; we try
    up to 100 and return the input when the interior has one distinct char).
    """
    if len(word) < 4:
        return word
    return word[0] + _shuffled(word[1:-1], rng) + word[-1]


def full_shuffle(word: str, rng: random.Random) -> str:
    """Zeroé full-swap: shuffle every character of a word of length >= 3
    (PIXEL's ``swap(word, inner=False)``)."""
    if len(word) < 3:
        return word
    return _shuffled(word, rng)


def disemvowel(word: str, rng: random.Random | None = None, vowels: str = "aeiouAEIOU") -> str:
    """Zeroé disemvowel: remove every vowel from a word of length >= 3.

    Words made only of vowels are kept (PIXEL's ``disemvoweling``).
    Deterministic; ``rng`` is accepted for a uniform signature.
    """
    if len(word) < 3 or all(ch in vowels for ch in word):
        return word
    return "".join(ch for ch in word if ch not in vowels)


def truncate(word: str, rng: random.Random | None = None, minlen: int = 3, cutoff: int = 1) -> str:
    """Zeroé truncate: drop up to ``cutoff`` final characters while the word
    is longer than ``minlen`` (PIXEL's ``truncating``). Deterministic."""
    while len(word) > minlen and cutoff > 0:
        word, cutoff = word[:-1], cutoff - 1
    return word


def keyboard(word: str, rng: random.Random) -> str:
    """Zeroé keyboard-typo: replace one letter by a neighbouring key, which may
    be a digit or punctuation (PIXEL's ``key``, charNMT-noise ``en.key``).

    PIXEL picks any position and silently does nothing for non-keys and
    upper case; we pick among letter positions and keep the case of a letter
    neighbour.
    """
    options = [i for i, ch in enumerate(word) if ch.lower() in KEYBOARD_NEIGHBOURS]
    if not options:
        return word
    i = rng.choice(options)
    new = rng.choice(KEYBOARD_NEIGHBOURS[word[i].lower()])
    return word[:i] + (new.upper() if word[i].isupper() else new) + word[i + 1:]


def intrude(word: str, rng: random.Random, p: float = 0.3, tries: int = 100) -> str:
    """Zeroé intruders: insert one random ASCII punctuation mark (the same
    mark for the whole word) into each inner gap with probability ``p``.

    PIXEL's ``intruders`` (with ``p`` = the attack severity): two-letter words
    always get the mark in the middle; otherwise it redraws until at least one
    mark is inserted. We redraw up to ``tries`` times and then insert at one
    random gap, so ``p`` close to 0 cannot loop forever.
    """
    if len(word) < 2:
        return word
    mark = rng.choice(string.punctuation)
    if len(word) == 2:
        return word[0] + mark + word[1]
    for _ in range(tries):
        out = [word[0]]
        for ch in word[1:]:
            if rng.random() < p:
                out.append(mark)
            out.append(ch)
        if len(out) > len(word):
            return "".join(out)
    i = rng.randrange(1, len(word))
    return word[:i] + mark + word[i:]


def segment(text: str, p: float, rng: random.Random) -> str:
    """Zeroé segmentation: delete each ASCII space with probability ``p``.

    Mirrors PIXEL's ``manip_segmentations(sentence, p)`` (remove only, no
    insertion): words run together, e.g. ``"a b c"`` -> ``"abc"`` at p=1.
    Other whitespace (tabs, newlines) is kept. Text-level, not per word.
    """
    return "".join(ch for ch in text if not (ch == " " and rng.random() < p))
