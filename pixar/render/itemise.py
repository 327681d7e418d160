"""Pango's itemisation of one line, as data: bidi levels, script runs and the font of every character.

The authors' renderer (Pango 1.50 + fribidi + HarfBuzz) splits a line into *items*, each one bidi level, one
script and one font, shapes each item on its own, and lays the items out in visual order. This module
reproduces the three splits (docs/rendering.md):

  * bidi levels: the Unicode Bidirectional Algorithm (python-bidi's Rust UBA, brackets and isolates
    included), with rule L1 (trailing whitespace back to the paragraph level) as fribidi applies it;
  * scripts: Pango's script iterator (ICU's): Common and Inherited characters join the run they are in,
    a run that starts with them takes the first real script after them, a closing bracket takes the
    script of its opening bracket;
  * fonts: each visible character the first font of the fontset that has it (Pixeloid, then GoNoto);
    spaces, controls, format characters and variation selectors choose no font and join the item they
    are in, except that the spaces ending an item move to the next item when its font comes earlier in
    the fontset (pango#249: "spaces use the better font").
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bidi.bidi import get_display_inner
from fontTools import unicodedata as fu

# Pango's paired punctuation (pango-script.c): even index = opening, odd = its closing partner
_PAIRS = [0x28, 0x29, 0x3C, 0x3E, 0x5B, 0x5D, 0x7B, 0x7D, 0xAB, 0xBB, 0x0F3A, 0x0F3B, 0x0F3C, 0x0F3D, 0x169B, 0x169C,
          0x2018, 0x2019, 0x201C, 0x201D, 0x2039, 0x203A, 0x2045, 0x2046, 0x207D, 0x207E, 0x208D, 0x208E,
          0x27E6, 0x27E7, 0x27E8, 0x27E9, 0x27EA, 0x27EB, 0x2983, 0x2984, 0x2985, 0x2986, 0x2987, 0x2988,
          0x2989, 0x298A, 0x298B, 0x298C, 0x298D, 0x298E, 0x298F, 0x2990, 0x2991, 0x2992, 0x2993, 0x2994,
          0x2995, 0x2996, 0x2997, 0x2998, 0x29D8, 0x29D9, 0x29DA, 0x29DB, 0x29FC, 0x29FD, 0x3008, 0x3009,
          0x300A, 0x300B, 0x300C, 0x300D, 0x300E, 0x300F, 0x3010, 0x3011, 0x3014, 0x3015, 0x3016, 0x3017,
          0x3018, 0x3019, 0x301A, 0x301B, 0xFD3E, 0xFD3F, 0xFE59, 0xFE5A, 0xFE5B, 0xFE5C, 0xFE5D, 0xFE5E,
          0xFF08, 0xFF09, 0xFF3B, 0xFF3D, 0xFF5B, 0xFF5D, 0xFF5F, 0xFF60, 0xFF62, 0xFF63]
PAIR_INDEX = {chr(c): i for i, c in enumerate(_PAIRS)}
COMMON = ("Zyyy", "Zinh", "Zzzz")
RTL_CLASSES = frozenset(("R", "AL", "AN", "RLE", "RLO", "RLI", "LRE", "LRO", "LRI", "FSI", "PDF", "PDI"))
_LEVEL = re.compile(r"Level\(\s*(\d+)")
_NOT_PLAIN_RTL = frozenset(("L", "EN", "AN", "RLE", "RLO", "RLI", "LRE", "LRO", "LRI", "FSI", "PDF", "PDI"))


class _CharProps(dict):
    """char -> (script, bidi class, general category), looked up once per character."""

    def __missing__(self, ch: str):
        v = self[ch] = (fu.script(ch), unicodedata.bidirectional(ch), unicodedata.category(ch))
        return v


PROPS = _CharProps()


@dataclass(frozen=True)
class Item:
    start: int  # character offsets into the line
    end: int
    level: int  # bidi embedding level: odd = right to left
    script: str  # ISO 15924 code (fontTools.unicodedata)
    font: int  # index into the fontset (0 = main font, 1 = fallback); -1: no font (only invisible characters)


def needs_bidi(line: str) -> bool:
    props = PROPS
    return any(props[c][1] in RTL_CLASSES for c in line)


def bidi_levels(line: str) -> list[int]:
    """Resolved embedding level of each character (UAX #9 up to L1), paragraph direction from the first strong
    character as Pango finds it (pango_find_base_dir: the first L, R or AL, even inside an isolate)."""
    if not line or not needs_bidi(line):
        return [0] * len(line)
    classes = {PROPS[c][1] for c in line}
    if classes.isdisjoint(_NOT_PLAIN_RTL) and classes & {"R", "AL"}:
        # right-to-left strong characters only (no L, no numbers, no explicit controls): the paragraph is
        # right to left and every character resolves to level 1 (W1-W7, N1-N2, I1; L1 keeps the base level)
        return [1] * len(line)
    # Pango's base direction (pango_find_base_dir): the first L, R or AL character, isolates not skipped
    first = next((PROPS[c][1] for c in line if PROPS[c][1] in ("L", "R", "AL")), "L")
    info = get_display_inner(line, "L" if first == "L" else "R", True)  # the resolved BidiInfo, per UTF-8 byte
    head, _, paras = info.partition("paragraphs:")
    per_byte = [int(v) for v in _LEVEL.findall(head.partition("levels:")[2])]
    base = int(_LEVEL.search(paras).group(1))
    levels, b = [], 0
    for ch in line:
        levels.append(per_byte[b])
        b += len(ch.encode())
    # L1: whitespace and isolate/format characters before a segment separator or the line's end -> paragraph level
    i = len(line)
    while i > 0 and (unicodedata.bidirectional(line[i - 1]) in ("WS", "BN", "S", "B", "FSI", "LRI", "RLI", "PDI")):
        i -= 1
        levels[i] = base
    for k, ch in enumerate(line):
        if unicodedata.bidirectional(ch) == "S":  # a tab: it and the whitespace before it
            levels[k] = base
            j = k
            while j > 0 and unicodedata.bidirectional(line[j - 1]) in ("WS", "BN", "FSI", "LRI", "RLI", "PDI"):
                j -= 1
                levels[j] = base
    return levels


def script_runs(line: str) -> list[str]:
    """The script each character is shaped with (Pango's script iterator)."""
    out: list[str] = []
    run_start, run_script, stack = 0, "Zyyy", []  # stack: [pair index, script] of open brackets
    start_sp = 0  # stack depth when the run started
    props = PROPS
    for i, ch in enumerate(line):
        sc = props[ch][0]
        pair = PAIR_INDEX.get(ch, -1)
        if pair >= 0:
            if pair % 2 == 0:
                stack.append([pair, run_script])
            else:
                while stack and stack[-1][0] != pair - 1:
                    stack.pop()
                if stack:
                    sc = stack[-1][1]
        if run_script in COMMON or sc in COMMON or sc == run_script:
            if run_script in COMMON and sc not in COMMON:
                run_script = sc
                out[run_start:] = [sc] * (i - run_start)
                for entry in stack[start_sp:]:
                    entry[1] = sc
            out.append(run_script)
        else:  # a new run
            run_start, run_script, start_sp = i, sc, len(stack)
            if pair >= 0 and pair % 2 == 0:
                stack[-1][1] = sc
            out.append(sc)
        if pair >= 0 and pair % 2 == 1 and stack:
            stack.pop()
            start_sp = min(start_sp, len(stack))
    return out


def chooses_no_font(ch: str) -> bool:
    """Characters Pango's itemiser gives no font of their own: they join the item they are in."""
    cat = PROPS[ch][2]
    return (cat in ("Cc", "Cf", "Cs", "Zl", "Zp") or (cat == "Zs" and ch != "\u1680")
            or "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef")


# Emoji_Presentation (emoji-data.txt): characters drawn as emoji without a variation selector
_EMOJI_RANGES = ((0x231A, 0x231B), (0x23E9, 0x23EC), (0x23F0, 0x23F0), (0x23F3, 0x23F3), (0x25FD, 0x25FE),
                 (0x2614, 0x2615), (0x2648, 0x2653), (0x267F, 0x267F), (0x2693, 0x2693), (0x26A1, 0x26A1),
                 (0x26AA, 0x26AB), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26CE, 0x26CE), (0x26D4, 0x26D4),
                 (0x26EA, 0x26EA), (0x26F2, 0x26F3), (0x26F5, 0x26F5), (0x26FA, 0x26FA), (0x26FD, 0x26FD),
                 (0x2705, 0x2705), (0x270A, 0x270B), (0x2728, 0x2728), (0x274C, 0x274C), (0x274E, 0x274E),
                 (0x2753, 0x2755), (0x2757, 0x2757), (0x2795, 0x2797), (0x27B0, 0x27B0), (0x27BF, 0x27BF),
                 (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x1F004, 0x1F004), (0x1F0CF, 0x1F0CF),
                 (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1E6, 0x1F1FF), (0x1F201, 0x1F201), (0x1F21A, 0x1F21A),
                 (0x1F22F, 0x1F22F), (0x1F232, 0x1F236), (0x1F238, 0x1F23A), (0x1F250, 0x1F251), (0x1F300, 0x1F320),
                 (0x1F32D, 0x1F335), (0x1F337, 0x1F37C), (0x1F37E, 0x1F393), (0x1F3A0, 0x1F3CA), (0x1F3CF, 0x1F3D3),
                 (0x1F3E0, 0x1F3F0), (0x1F3F4, 0x1F3F4), (0x1F3F8, 0x1F43E), (0x1F440, 0x1F440), (0x1F442, 0x1F4FC),
                 (0x1F4FF, 0x1F53D), (0x1F54B, 0x1F54E), (0x1F550, 0x1F567), (0x1F57A, 0x1F57A), (0x1F595, 0x1F596),
                 (0x1F5A4, 0x1F5A4), (0x1F5FB, 0x1F64F), (0x1F680, 0x1F6C5), (0x1F6CC, 0x1F6CC), (0x1F6D0, 0x1F6D2),
                 (0x1F6D5, 0x1F6D7), (0x1F6DC, 0x1F6DF), (0x1F6EB, 0x1F6EC), (0x1F6F4, 0x1F6FC), (0x1F7E0, 0x1F7EB),
                 (0x1F7F0, 0x1F7F0), (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1F9FF), (0x1FA70, 0x1FAFF))
# characters that continue an emoji sequence: VS16, ZWJ, skin tones, keycap, tags
_EMOJI_CONTINUE = frozenset([0xFE0F, 0x200D, 0x20E3, *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080)])


LAST = 1 << 20  # the fontset position Pango gives the font of a character no font has


def _is_emoji(c: int) -> bool:
    return any(lo <= c <= hi for lo, hi in _EMOJI_RANGES)


def emoji_runs(line: str) -> list[bool]:
    """Pango's emoji iterator, simplified: True for the characters of an emoji presentation sequence (an
    Emoji_Presentation character, or any symbol followed by U+FE0F, and the VS16, ZWJ, skin tone, keycap and
    tag characters that continue it). Pango itemises these apart and gives a character no font has there no
    font of its own (the item takes the fontset's first font, and spaces before it do not move)."""
    out, prev = [], False
    for k, ch in enumerate(line):
        c = ord(ch)
        nxt = ord(line[k + 1]) if k + 1 < len(line) else 0
        if _is_emoji(c) or (nxt == 0xFE0F and (PROPS[ch][2] in ("So", "Sm") or ch in "0123456789#*")):
            prev = True
        elif not (prev and c in _EMOJI_CONTINUE):
            prev = False
        out.append(prev)
    return out


def itemise(line: str, font_of) -> list[Item]:
    """Items of one line in logical order. `font_of(ch)`: index of the first font that has `ch`; -1 for the
    characters that choose no font (chooses_no_font); -2 for one no font has (the fontset's first font, as a
    font of its own, except in an emoji run where it chooses none)."""
    levels, scripts = bidi_levels(line), script_runs(line)
    emoji = emoji_runs(line) if any(ord(c) >= 0x2300 for c in line) else [False] * len(line)
    items: list[Item] = []
    n, i = len(line), 0
    while i < n:  # one state run: same level, script and emoji presentation
        j = i
        while j < n and levels[j] == levels[i] and scripts[j] == scripts[i] and emoji[j] == emoji[i]:
            j += 1
        start, font, pos, first_space = i, -1, -1, -1  # pos: the item font's place in the fontset
        for k in range(i, j):
            ch = line[k]
            f = font_of(ch)
            fpos = f
            if f == -2:  # no font has it: the first font, found last (spaces before it never move to it)
                f, fpos = (-1, -1) if emoji[i] else (0, LAST)
            if font < 0 and f >= 0:
                font, pos = f, fpos
            elif font >= 0 and f < 0:
                f, fpos = font, pos
            if f != font:
                if start < first_space and fpos < pos:  # trailing spaces move to the better font's item
                    cut = first_space
                else:
                    cut = k
                items.append(Item(start, cut, levels[i], scripts[i], font))
                start, font, pos = cut, f, fpos
            if PROPS[ch][2] == "Zs":
                first_space = k if first_space < 0 else first_space
            else:
                first_space = -1
        items.append(Item(start, j, levels[i], scripts[i], font))
        i = j
    return items


def visual_order(items: list[Item]) -> list[Item]:
    """UAX #9 L2 over whole items: from the highest level down to the lowest odd one, reverse every run of
    items at that level or higher."""
    order = list(items)
    if not order:
        return order
    top = max(it.level for it in order)
    odd = [it.level for it in order if it.level % 2]
    if not odd:
        return order
    for lv in range(top, min(odd) - 1, -1):
        k = 0
        while k < len(order):
            if order[k].level >= lv:
                m = k
                while m < len(order) and order[m].level >= lv:
                    m += 1
                order[k:m] = order[k:m][::-1]
                k = m
            else:
                k += 1
    return order
