"""Pango's hex box on a line that uses GoNoto, captured from the authors' renderer (pixar/render/hexbox.py holds
the box on a Pixeloid line). Pango sizes and places the box from the item's font and the line's metrics:

  * "gonoto_line": a box in a Pixeloid item on a line that also uses GoNoto (13 px high, centred on a half
    pixel): `a{box}b ก`;
  * "gonoto_item": a box inside a GoNoto item (an emoji next to Thai, CJK, Arabic, ...): `ก{box}ก`.
Both give the same pixels (checked here), so the module keeps one table, GONOTO_LINE.

    python benchmarks/render_hexbox_variants.py [--ref DIR]    -> pixar/render/hexbox_variants.py
"""
from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_goldens import default_ref, reference_strips  # noqa: E402

from pixar.config import RenderConfig  # noqa: E402
from pixar.config_io import atomic_write_text  # noqa: E402
from pixar.render import text_rules as tr  # noqa: E402
from pixar.render.renderer import Renderer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"gonoto_line": ("a{}b ก", "a"), "gonoto_item": ("ก{}ก", "ก")}


def box_chars(renderer: Renderer) -> dict[int, list[str]]:
    """hexbox_chars without control characters: next to GoNoto text, Pango breaks the paragraph at U+001C-U+001F
    and treats the others apart; any box covers the same (slot, digit) pixels."""
    picks: dict[int, list[str]] = {4: [], 6: []}
    need = {(4, k, d) for k in range(4) for d in "0123456789ABCDEF"}
    need |= {(6, k, d) for k in range(6) for d in "0123456789ABCDEF" if (k, d) != (0, "2")}
    need = {x for x in need if not (x[0] == 6 and x[1] == 0 and x[2] not in "01")}
    for c in [*range(0x100, 0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000)]:
        ch = chr(c)
        if renderer.char_class(ch)[0] != tr.HEXBOX or tr.is_ignorable(ch) or unicodedata.category(ch) == "Cc":
            continue
        digits = f"{c:04X}" if c <= 0xFFFF else f"{c:06X}"
        new = {(len(digits), k, d) for k, d in enumerate(digits)} & need
        if new:
            picks[len(digits)].append(ch)
            need -= new
        if not need:
            break
    return picks


def capture(renderer: Renderer, picks: dict[int, list[str]], form: str, before: str, ref: Path) -> dict:
    # the box's pen: the advance of the text before it, measured on the reference itself (a box-free strip)
    lone = reference_strips([before], ref)[0] == 0
    eos = next(e for e in range(0, lone.shape[1], 16) if lone[:, e: e + 16].all())
    texts = [form.format(ch) for n in (4, 6) for ch in picks[n]]
    ink = reference_strips(texts, ref) == 0
    out = {"ADVANCE": {}, "SLOT_X": {}, "FRAMES": {}, "DIGITS": {}}
    i = 0
    for n in (4, 6):
        items = []
        for ch in picks[n]:
            items.append((ch, ink[i]))
            i += 1
        im = items[0][1]
        # the box starts after the glyph before it: its left edge is the first column inked in every box strip
        # but not in the strip of the glyph alone
        every = np.stack([x for _, x in items]).all(0).any(0)
        left = next(c for c in range(2, eos + 64) if every[c] and not lone[:, c].any())
        end = next(e for e in range(0, im.shape[1], 16) if im[:, e: e + 16].all())  # the box strip's EOS block
        full = [c for c in np.flatnonzero(im.all(0)) if left < c < min(left + 8 * n + 12, end)]
        right = max(full)
        pen0 = left - 1  # the frame's left column is 1 px right of the pen (as on a Pixeloid line)
        advance = right + 2 - pen0
        crops = np.stack([x[:, pen0: pen0 + advance] for _, x in items])
        frame = crops.all(0)
        out["FRAMES"][n], out["ADVANCE"][n] = frame, int(advance)
        out["SLOT_X"][n] = [2 + 6 * k for k in range(n)]
        for ch, x in items:
            ds = f"{ord(ch):04X}" if n == 4 else f"{ord(ch):06X}"
            crop = x[:, pen0: pen0 + advance] & ~frame
            for k, d in enumerate(ds):
                pat = crop[:, out["SLOT_X"][n][k]: out["SLOT_X"][n][k] + 6]
                if (n, k, d) in out["DIGITS"] and not np.array_equal(out["DIGITS"][(n, k, d)], pat):
                    raise SystemExit(f"hex box digit {d} in slot {k} differs between boxes ({ch!r}, {form!r})")
                out["DIGITS"][(n, k, d)] = pat
    return out


def source(tables: dict[str, dict]) -> str:
    art = lambda a: ["".join("#" if v else "." for v in row) for row in a]  # noqa: E731
    lines = ['"""Pango\'s hex box on a line that uses GoNoto (pixar/render/hexbox.py: on a Pixeloid line), per variant:',
             "advance, digit slots, frame rows and each digit's pixels in each slot ('#' = ink), on the single-line",
             "baseline of such a line. Captured from pixar-render 0.5.1 by `benchmarks/render_hexbox_variants.py`;",
             'do not edit by hand."""', ""]
    for name, t in tables.items():
        lines.append(f"{name} = {{")
        lines.append("    'BASELINE': 7,  # the single-line baseline of a GoNoto line, 6.5, as cairo rounds it")
        lines.append(f"    'ADVANCE': {t['ADVANCE']!r},")
        lines.append(f"    'SLOT_X': {t['SLOT_X']!r},")
        lines.append("    'FRAMES': {")
        for n, f in t["FRAMES"].items():
            lines.append(f"        {n}: {art(f)!r},")
        lines.append("    },")
        lines.append("    'DIGITS': {")
        for key in sorted(t["DIGITS"]):
            lines.append(f"        {key!r}: {art(t['DIGITS'][key])!r},")
        lines += ["    },", "}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", type=Path, default=default_ref())
    ap.add_argument("--out", type=Path, default=ROOT / "pixar" / "render" / "hexbox_variants.py")
    args = ap.parse_args()
    r = Renderer(RenderConfig(max_positions=360))
    picks = box_chars(r)
    tables = {name: capture(r, picks, form, before, args.ref) for name, (form, before) in VARIANTS.items()}
    a, b = tables.values()
    if any(not np.array_equal(a[k][n], b[k][n]) for k in ("FRAMES", "DIGITS") for n in a[k]) or a["ADVANCE"] != b["ADVANCE"]:
        raise SystemExit("the box differs between a GoNoto item and a Pixeloid item on a GoNoto line: keep both tables")
    atomic_write_text(args.out, source({"GONOTO_LINE": a}))
    print(f"wrote {args.out}: " + ", ".join(f"{k} advance {v['ADVANCE']}" for k, v in tables.items()))


if __name__ == "__main__":
    main()
