"""What the authors' PangoCairo renderer does with each character, as data (docs/rendering.md).

Measured by running `pixar-render==0.5.1` (Pango 1.50 + HarfBuzz, paper settings) on every class of
whitespace and invisible character; the committed goldens (tests/golden/) pin it. Two modes
(`RenderConfig.whitespace`):

  * "pango" (default, faithful: what a PIXAR checkpoint was trained on):
      - U+0000 ends the text (Pango takes a C string); "\\n" becomes one space (the authors' code);
      - "\\r", "\\r\\n", U+2028, U+2029 start a new layout line; the lines are stacked and centred
        vertically on the 8-px strip, so with two lines the strip shows the bottom of the first
        line and the top of the second; the EOS goes after the widest line;
      - "\\t" advances to the next multiple of 8 spaces that leaves at least one space of room;
      - Unicode spaces take HarfBuzz's fallback widths (fractions of Pango's em, 8 pt at 80 dpi);
        U+00A0 and U+202F are the font's own space glyph;
      - default-ignorable characters (zero-width space/joiners, bidi controls, soft hyphen, word
        joiner, BOM, variation selectors, tags, ...) are invisible and take no room;
      - other control characters (and U+0085, U+FFF9-FFFB) and characters in neither font are drawn
        as Pango's hex box; U+1680 (a space no font here has) is the main font's .notdef box;
      - a whitespace or invisible character takes the font of the character before it (the first
        visible one at the start of a line), so a space after a fallback-font character is that
        font's space.
  * "spaces" (normalising): every line break, tab and Unicode space becomes one ordinary space and
    every default-ignorable character is dropped, so nothing after a newline is hidden.
"""
from __future__ import annotations

import unicodedata

MODES = ("pango", "spaces")
LINE_BREAKS = "\r\u2028\u2029"
TAB_SPACES = 8  # Pango's default tab stop: 8 space widths
PANGO_DPI, PANGO_PT = 80, 8  # the authors' renderer: font_size=8, dpi=80 -> em = 8.889 px

# Line metrics (ascent, descent) in px, as Pango's hinted metrics give them at the paper's em, of a line
# that uses the main font, the fallback font or a hex box; Pango centres a line of height a + d on the
# strip, so a hex box (descent 3) moves the whole line up 1 px (measured; pixar.render.line_layout.LineLayout.line_baselines).
LINE_METRICS = {"main": (9, 2), "fallback": (10, 3), "hexbox": (9, 3)}

# Character kinds.
GRAPH, SPACE, ZERO, TAB, HEXBOX, NOTDEF, BREAK = "graph", "space", "zero", "tab", "hexbox", "notdef", "break"

# HarfBuzz's fallback widths for Unicode spaces a font lacks (hb-ot-shape-fallback.cc), in ems;
# "figure" = width of the digit 0, "punct" = width of ".", "space" = the font's own space.
SPACE_FALLBACK: dict[str, float | str] = {
    "\u00a0": "space", "\u2000": 1 / 2, "\u2001": 1.0, "\u2002": 1 / 2, "\u2003": 1.0, "\u2004": 1 / 3,
    "\u2005": 1 / 4, "\u2006": 1 / 6, "\u2007": "figure", "\u2008": "punct", "\u2009": 1 / 5,
    "\u200a": 1 / 16, "\u202f": "narrow", "\u205f": 4 / 18, "\u3000": 1.0,
}

# Unicode Default_Ignorable_Code_Point (DerivedCoreProperties) that HarfBuzz hides; the Hangul fillers
# (U+115F, U+1160, U+3164, U+FFA0) are left out: the fallback font draws them.
_IGNORABLE_RANGES = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x17B4, 0x17B5), (0x180B, 0x180F),
                     (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
                     (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


def is_ignorable(ch: str) -> bool:
    c = ord(ch)
    return any(lo <= c <= hi for lo, hi in _IGNORABLE_RANGES)


def is_mark(ch: str) -> bool:
    """A combining mark: HarfBuzz clusters it with its base, so the text after it (a space) stays in
    the base's font (measured: "cafe\u0301 au" spaces like "cafe au")."""
    return unicodedata.category(ch) in ("Mn", "Me")


def pango_em(font_size: int) -> float:
    """Pango's em in px for a Pillow font size (9 px Pillow <-> 8 pt at 80 dpi = 8.889 px)."""
    return font_size * PANGO_DPI * PANGO_PT / 72 / 9


def classify(ch: str, in_main: bool, in_fallback: bool, mode: str) -> str:
    """The kind of one character (after NUL cutting and newline -> space)."""
    if ch == "\t":
        return TAB if mode == "pango" else SPACE
    if ch in LINE_BREAKS:
        return BREAK if mode == "pango" else SPACE
    if ch == " ":
        return SPACE
    cat = unicodedata.category(ch)
    if cat == "Zs":
        if mode == "spaces" or ch in SPACE_FALLBACK or in_main:
            return SPACE
        return GRAPH if in_fallback else NOTDEF  # U+1680 OGHAM SPACE MARK: no font here has it
    if is_ignorable(ch):
        return ZERO
    if cat == "Cc" or (cat == "Cf" and not (in_main or in_fallback)):
        return SPACE if mode == "spaces" and ch in "\x0b\x0c\x1c\x1d\x1e\x1f\x85" else HEXBOX
    if in_main or in_fallback:
        return GRAPH
    return HEXBOX


def space_width(ch: str, own_advance: int | None, space: int, figure: int, punct: int, font_size: int) -> int:
    """Advance of a space-kind character: the font's own glyph when it has one, else HarfBuzz's fallback."""
    if own_advance is not None:
        return own_advance
    rule = SPACE_FALLBACK.get(ch, "space")
    if rule == "space":
        return space
    if rule == "narrow":
        return space  # HarfBuzz: half a space... only reached for fonts without U+202F; Pixeloid has it
    if rule == "figure":
        return figure
    if rule == "punct":
        return punct
    return int(round(float(rule) * pango_em(font_size)))


def tab_advance(pen: int, space: int) -> int:
    """Pango's default tabs: stops every 8 spaces; the stop must leave at least one space of room."""
    stop = TAB_SPACES * space
    nxt = -(-(pen + space) // stop) * stop
    return nxt - pen


def split_lines(text: str) -> list[str]:
    """Pango paragraphs: "\\r\\n", "\\r", U+2028, U+2029 each end a line."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\r")
    for sep in "\u2028\u2029":
        if sep in text:
            text = text.replace(sep, "\r")
    return text.split("\r")


def prepare(text: str, mode: str) -> str:
    """Text-level steps before layout: cut at NUL (Pango reads a C string; "spaces" mode drops NULs
    instead), newline -> space."""
    cut = text.find("\x00")
    if cut >= 0:
        text = text[:cut] if mode == "pango" else text.replace("\x00", "")
    if "\n" in text:
        text = text.replace("\n", " ")
    return text


MIRROR = _MIRROR = dict(zip("()[]{}<>«»", ")(][}{><»«"))


def visual_order(line: str) -> str:
    """The left-to-right drawing order of one line with right-to-left characters (Hebrew, Arabic), as
    Pango's Unicode bidi gives it for plain text: the paragraph's direction is its first strong
    character's; right-to-left runs (with the spaces and punctuation between them) are reversed, digit
    runs inside them keep their order, mirrored brackets are swapped. Lines without R/AL characters
    come back unchanged. (A subset of UAX #9: no explicit embeddings or isolates.)"""
    bidi = [unicodedata.bidirectional(c) for c in line]
    if "R" not in bidi and "AL" not in bidi:
        return line
    strong = [b for b in bidi if b in ("L", "R", "AL")]
    base = 1 if strong[0] in ("R", "AL") else 0
    # resolved direction per character: 0 = LTR, 1 = RTL, None = neutral (resolved below)
    dirs: list[int | None] = []
    last = base
    for b in bidi:
        if b in ("R", "AL"):
            last = 1
            dirs.append(1)
        elif b == "L":
            last = 0
            dirs.append(0)
        elif b in ("EN", "AN"):
            dirs.append(2 if last == 1 else 0)  # a number after RTL text: an LTR island inside it
        else:
            dirs.append(None)
    for i, d in enumerate(dirs):  # neutrals: the direction on both sides when they agree, else the base
        if d is None:
            j = next((k for k in range(i - 1, -1, -1) if dirs[k] is not None), None)
            k = next((k for k in range(i + 1, len(dirs)) if dirs[k] is not None), None)
            side = lambda x: base if x is None else min(dirs[x], 1)  # noqa: E731
            dirs[i] = side(j) if side(j) == side(k) else base
    levels = [base + (1 if d == 1 and base == 0 else 0) + (1 if d == 0 and base == 1 else 0)
              + (2 if d == 2 and base == 0 else 1 if d == 2 else 0) for d in dirs]
    chars = [(_MIRROR.get(c, c) if lv % 2 else c) for c, lv in zip(line, levels)]
    for lv in range(max(levels), 0, -1):  # UAX #9 L2: reverse every run at this level or higher
        i = 0
        while i < len(chars):
            if levels[i] >= lv:
                j = i
                while j < len(chars) and levels[j] >= lv:
                    j += 1
                chars[i:j], levels[i:j] = chars[i:j][::-1], levels[i:j][::-1]
                i = j
            else:
                i += 1
    return "".join(chars)
