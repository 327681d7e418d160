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


def itemise(line: str, font_of) -> list[Item]:
    """Items of one line in logical order. `font_of(ch)`: index of the first font that has `ch`, -1 for none and
    for the characters that choose no font (chooses_no_font)."""
    levels, scripts = bidi_levels(line), script_runs(line)
    items: list[Item] = []
    n, i = len(line), 0
    while i < n:  # one state run: same level and script
        j = i
        while j < n and levels[j] == levels[i] and scripts[j] == scripts[i]:
            j += 1
        start, font, first_space = i, -1, -1
        for k in range(i, j):
            ch = line[k]
            f = font_of(ch)
            if font < 0 and f >= 0:
                font = f
            elif font >= 0 and f < 0:
                f = font
            if f != font:
                if start < first_space and f < font:  # trailing spaces move to the better font's item
                    cut = first_space
                else:
                    cut = k
                items.append(Item(start, cut, levels[i], scripts[i], font))
                start, font = cut, f
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
