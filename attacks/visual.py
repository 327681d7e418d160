"""Visual attacks: Unicode look-alike substitution and pixel-space noise.

Text side
---------
* :data:`CONFUSABLES` and :func:`confuse` mirror PIXAR's robustness attack
  (``april-tools/pixar: LatentPixel/CONFUSABLES.py`` and ``utils.confuse``):
  each ASCII Latin letter is replaced, with probability ``p``, by a random
  look-alike from a 52-entry table (a-z, A-Z). Our table is our own, built
  from Unicode *names* so each entry can be audited: Cyrillic, Greek,
  Armenian, Cherokee and Lisu letters, Roman-numeral and letterlike symbols,
  and the fullwidth and mathematical sans-serif forms of the letter.
  **Fix of PIXAR's bug:** PIXAR writes each letter's alternatives as one
  space-separated string (``"a": "𝗮 а α"``); a ``random.choice`` on that
  string picks a *character* and can return ``" "``, inserting whitespace
  (reported in our dossier for ``utils.confuse``; the copy of
  ``CONFUSABLES.py`` we inspected, commit 24f87e8, ends with a ``.split()``
  loop, so whether a run was hit depends on the version and call site).
  Here alternatives are lists of single non-ASCII, non-space characters
  (checked at import), so ``confuse(text, 1.0, rng)`` replaces every Latin
  letter with a non-ASCII character and never inserts whitespace. Unlike
  PIXAR's table (which offers the ASCII digit ``"0"`` for ``"O"``), no
  alternative is ASCII.
* :data:`HOMOGLYPHS` is a one-to-one map in the style of TextAttack's
  ``WordSwapHomoglyphSwap`` table (one look-alike per character, covering
  ``-``, ``'``, digits and letters; we add upper case). Our own choices.
* :func:`zeroe_confuse` mirrors Zeroé/PIXEL's ``UnicodeConfusable``
  (``xplip/pixel: .../visual_attacks/unicode_confusables.py``): every
  character except whitespace and punctuation is replaced with probability
  ``p`` by a random confusable. PIXEL's table comes from Unicode's
  ``confusables.txt``, which we do not ship; :data:`ZEROE_CONFUSABLES`
  approximates it for ASCII letters and digits by the union of the tables
  above and every fullwidth, letterlike and mathematical-alphanumeric
  character whose NFKC form is that letter or digit (``confusables.txt``
  lists those as confusables too). Other characters are left unchanged, as
  PIXEL leaves characters missing from its table.

Pixel side (family ``pixel``)
-----------------------------
Binary images with 1 = white background and 0 = ink, shape ``[H, W]`` or
``[B, H, W]``, any integer or bool dtype. :func:`salt_pepper` flips each
pixel with probability ``p``; :func:`shift` moves the content by whole
pixels with white fill. Both return new arrays and never modify the input.
"""

from __future__ import annotations

import random
import string
import unicodedata

import numpy as np

__all__ = [
    "CONFUSABLES", "HOMOGLYPHS", "ZEROE_CONFUSABLES", "confuse", "zeroe_confuse",
    "salt_pepper", "shift", "random_shift",
]

# Look-alikes by Unicode name; fullwidth and math sans-serif forms are added below.
_LOOKALIKE_NAMES: dict[str, tuple[str, ...]] = {
    "a": ("CYRILLIC SMALL LETTER A", "GREEK SMALL LETTER ALPHA"),
    "b": ("CYRILLIC CAPITAL LETTER SOFT SIGN", "LATIN SMALL LETTER TONE SIX"),
    "c": ("CYRILLIC SMALL LETTER ES", "GREEK LUNATE SIGMA SYMBOL"),
    "d": ("CYRILLIC SMALL LETTER KOMI DE",),
    "e": ("CYRILLIC SMALL LETTER IE",),
    "f": ("LATIN SMALL LETTER F WITH HOOK",),
    "g": ("LATIN SMALL LETTER SCRIPT G",),
    "h": ("CYRILLIC SMALL LETTER SHHA", "ARMENIAN SMALL LETTER HO"),
    "i": ("CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I", "LATIN SMALL LETTER DOTLESS I"),
    "j": ("CYRILLIC SMALL LETTER JE", "GREEK LETTER YOT"),
    "k": ("CYRILLIC SMALL LETTER KA",),
    "l": ("CYRILLIC LETTER PALOCHKA", "LATIN SMALL LETTER DOTLESS I"),
    "m": ("CYRILLIC SMALL LETTER TE",),
    "n": ("ARMENIAN SMALL LETTER VO",),
    "o": ("CYRILLIC SMALL LETTER O", "GREEK SMALL LETTER OMICRON"),
    "p": ("CYRILLIC SMALL LETTER ER", "GREEK SMALL LETTER RHO"),
    "q": ("CYRILLIC SMALL LETTER QA",),
    "r": ("CYRILLIC SMALL LETTER GHE",),
    "s": ("CYRILLIC SMALL LETTER DZE",),
    "t": ("LATIN SMALL LETTER T WITH HOOK",),
    "u": ("ARMENIAN SMALL LETTER SEH", "GREEK SMALL LETTER UPSILON"),
    "v": ("GREEK SMALL LETTER NU", "CYRILLIC SMALL LETTER IZHITSA"),
    "w": ("CYRILLIC SMALL LETTER WE", "LATIN LETTER SMALL CAPITAL W"),
    "x": ("CYRILLIC SMALL LETTER HA", "MULTIPLICATION SIGN"),
    "y": ("CYRILLIC SMALL LETTER U", "GREEK SMALL LETTER GAMMA"),
    "z": ("LATIN LETTER SMALL CAPITAL Z",),
    "A": ("CYRILLIC CAPITAL LETTER A", "GREEK CAPITAL LETTER ALPHA"),
    "B": ("CYRILLIC CAPITAL LETTER VE", "GREEK CAPITAL LETTER BETA"),
    "C": ("CYRILLIC CAPITAL LETTER ES", "GREEK CAPITAL LUNATE SIGMA SYMBOL"),
    "D": ("LISU LETTER DA",),
    "E": ("CYRILLIC CAPITAL LETTER IE", "GREEK CAPITAL LETTER EPSILON"),
    "F": ("GREEK LETTER DIGAMMA",),
    "G": ("CYRILLIC CAPITAL LETTER KOMI SJE",),
    "H": ("CYRILLIC CAPITAL LETTER EN", "GREEK CAPITAL LETTER ETA"),
    "I": ("CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I", "GREEK CAPITAL LETTER IOTA"),
    "J": ("CYRILLIC CAPITAL LETTER JE", "GREEK CAPITAL LETTER YOT"),
    "K": ("CYRILLIC CAPITAL LETTER KA", "GREEK CAPITAL LETTER KAPPA", "KELVIN SIGN"),
    "L": ("CHEROKEE LETTER TLE",),
    "M": ("CYRILLIC CAPITAL LETTER EM", "GREEK CAPITAL LETTER MU"),
    "N": ("GREEK CAPITAL LETTER NU",),
    "O": ("CYRILLIC CAPITAL LETTER O", "GREEK CAPITAL LETTER OMICRON"),
    "P": ("CYRILLIC CAPITAL LETTER ER", "GREEK CAPITAL LETTER RHO"),
    "Q": ("CYRILLIC CAPITAL LETTER QA",),
    "R": ("CHEROKEE LETTER SV", "CHEROKEE LETTER E"),
    "S": ("CYRILLIC CAPITAL LETTER DZE",),
    "T": ("CYRILLIC CAPITAL LETTER TE", "GREEK CAPITAL LETTER TAU"),
    "U": ("ARMENIAN CAPITAL LETTER SEH", "LISU LETTER U"),
    "V": ("CYRILLIC CAPITAL LETTER IZHITSA",),
    "W": ("CYRILLIC CAPITAL LETTER WE", "LISU LETTER WA"),
    "X": ("CYRILLIC CAPITAL LETTER HA", "GREEK CAPITAL LETTER CHI"),
    "Y": ("CYRILLIC CAPITAL LETTER STRAIGHT U", "GREEK CAPITAL LETTER UPSILON"),
    "Z": ("GREEK CAPITAL LETTER ZETA",),
}


def _styled(letter: str) -> list[str]:
    """The fullwidth form of an ASCII letter. (Mathematical sans-serif/monospace letters and Roman numerals
    were dropped: neither Pixeloid Sans nor its GoNoto fallback draws them, so a pixel model would see a
    replacement box, not a look-alike; tests/test_attacks.py checks every entry has a glyph.)"""
    case = "CAPITAL" if letter.isupper() else "SMALL"
    return [unicodedata.lookup(f"FULLWIDTH LATIN {case} LETTER {letter.upper()}")]


def _build_confusables() -> dict[str, list[str]]:
    table = {}
    for letter, names in _LOOKALIKE_NAMES.items():
        table[letter] = [unicodedata.lookup(n) for n in names] + _styled(letter)
    return table


#: PIXAR-style table: ASCII letter -> list of single-character look-alikes.
CONFUSABLES: dict[str, list[str]] = _build_confusables()

#: TextAttack-style one-to-one homoglyph table (our own choices).
HOMOGLYPHS: dict[str, str] = {
    "-": unicodedata.lookup("HYPHEN"),
    "'": unicodedata.lookup("MODIFIER LETTER APOSTROPHE"),
    **{d: unicodedata.lookup(f"MATHEMATICAL SANS-SERIF DIGIT {unicodedata.name(d).split()[-1]}")
       for d in string.digits},
    **{c: alts[0] for c, alts in CONFUSABLES.items()},
}


def _build_zeroe_table() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {c: list(alts) for c, alts in CONFUSABLES.items()}
    for c, h in HOMOGLYPHS.items():
        if c.isalnum() and h not in table.setdefault(c, []):
            table[c].append(h)
    # Fullwidth forms, letterlike symbols / number forms, math alphanumerics.
    for lo, hi in ((0xFF10, 0xFF5B), (0x2100, 0x2190), (0x1D400, 0x1D800)):
        for cp in range(lo, hi):
            ch = chr(cp)
            base = unicodedata.normalize("NFKC", ch)
            if len(base) != 1 or not (base.isascii() and base.isalnum()):
                continue
            if ch not in table.setdefault(base, []):
                table[base].append(ch)
    return table


#: Zeroé-style table (approximation of Unicode confusables for ASCII alnum).
ZEROE_CONFUSABLES: dict[str, list[str]] = _build_zeroe_table()


def _check_tables() -> None:
    """Every alternative is one non-ASCII, non-space character (no bare asserts:
    this must also hold under ``python -O``)."""
    if set(CONFUSABLES) != set(string.ascii_letters):
        raise RuntimeError("CONFUSABLES must cover exactly a-z and A-Z")
    for table in (CONFUSABLES, ZEROE_CONFUSABLES, {k: [v] for k, v in HOMOGLYPHS.items()}):
        for key, alts in table.items():
            if not alts or any(len(a) != 1 or a.isascii() or a.isspace() for a in alts):
                raise RuntimeError(f"bad look-alike entry for {key!r}: {alts!r}")


_check_tables()


def confuse(text: str, p: float, rng: random.Random) -> str:
    """PIXAR's confusable attack: each ASCII letter -> look-alike with prob. ``p``.

    Mirrors ``april-tools/pixar`` ``utils.confuse(text, ratio)`` (applied to
    LAMBADA and bAbI prompts at p in {0.01, ..., 0.6}). Non-letters are
    copied unchanged and consume no randomness, so whitespace, digits and
    punctuation are preserved exactly.
    """
    out = []
    for ch in text:
        alts = CONFUSABLES.get(ch)
        if alts is not None and rng.random() < p:
            ch = rng.choice(alts)
        out.append(ch)
    return "".join(out)


def _is_spared(ch: str) -> bool:
    """Whitespace and punctuation are spared by Zeroé's confusable attack."""
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def zeroe_confuse(text: str, p: float, rng: random.Random) -> str:
    """Zeroé/PIXEL ``UnicodeConfusable``: per-character probability ``p``.

    Every character that is neither whitespace nor punctuation and has an
    entry in :data:`ZEROE_CONFUSABLES` is replaced with probability ``p`` by a
    uniformly chosen confusable. Differences from PIXEL: the table (see the
    module docstring) and an explicit RNG instead of ``default_rng(42)``.
    """
    out = []
    for ch in text:
        alts = None if _is_spared(ch) else ZEROE_CONFUSABLES.get(ch)
        if alts is not None and rng.random() < p:
            ch = rng.choice(alts)
        out.append(ch)
    return "".join(out)


# --------------------------------------------------------------------------
# Pixel-space attacks. Images: 1 = white, 0 = ink; [H, W] or [B, H, W].
# --------------------------------------------------------------------------

def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image [H, W] or a batch [B, H, W], got shape {image.shape}")
    return image


def numpy_generator(rng: random.Random) -> np.random.Generator:
    """A numpy Generator seeded from (and advancing) a ``random.Random``."""
    return np.random.default_rng(rng.getrandbits(64))


def salt_pepper(image: np.ndarray, p: float, rng: random.Random) -> np.ndarray:
    """Flip each pixel of a binary image independently with probability ``p``.

    White (1) becomes ink (0) and ink becomes white; the expected fraction of
    flipped pixels is ``p``. The flip mask comes from a numpy ``Generator``
    seeded from ``rng``. Returns a new array with the input's dtype.
    """
    image = _check_image(image)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p!r}")
    if p == 0:
        return image.copy()
    mask = numpy_generator(rng).random(image.shape) < p
    if image.dtype == np.bool_:
        return image ^ mask
    return np.where(mask, 1 - image, image).astype(image.dtype)


def shift(image: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """Translate the content by ``dx`` columns (right if > 0) and ``dy`` rows
    (down if > 0), filling the uncovered border with white (1).

    Content pushed past the edge is lost. Works on ``[H, W]`` and on every
    image of a ``[B, H, W]`` batch. Returns a new array.
    """
    image = _check_image(image)
    dx, dy = int(dx), int(dy)
    out = np.ones_like(image)
    h, w = image.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = image[..., src_y, src_x]
    return out


_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # right, left, down, up


def random_shift(image: np.ndarray, pixels: float, rng: random.Random) -> np.ndarray:
    """Shift by ``pixels`` (a non-negative whole number) in a random direction.

    The direction is drawn uniformly from right, left, down and up; severity
    ``0`` is the identity. This is the registry's ``shift`` attack.
    """
    if pixels < 0 or float(pixels) != int(pixels):
        raise ValueError(
            f"shift severity must be a non-negative whole number of pixels, got {pixels!r}")
    if pixels == 0:
        return _check_image(image).copy()
    ddx, ddy = rng.choice(_DIRECTIONS)
    return shift(image, ddx * int(pixels), ddy * int(pixels))
