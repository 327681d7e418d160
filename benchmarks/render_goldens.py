"""Golden strips from the PIXAR authors' own renderer (pixar-render 0.5.1, PangoCairo, paper settings).

    python benchmarks/render_goldens.py [--ref DIR] [--out tests/golden] [--hexbox-table pixar/render/hexbox.py]

Needs the bench tool's reference set up (`../shared/tools/pango-bench/setup.sh DIR`; default DIR:
$PANGO_REF or $TMPDIR/pango-ref). The reference runs in its own virtualenv through the bench tool's
`pango_side.py` (a subprocess); nothing of pixar-render is copied here. Writes

  tests/golden/render_goldens.json   [{"text", "class"}, ...] (what tests/test_render.py renders)
  tests/golden/render_goldens.npz    bits: the strips [N, 8, W] packed along W (np.packbits), 1 = white

and with --hexbox-table, pixar/render/hexbox.py: the pixels of Pango's hex box (frame and each digit in
each slot) captured from the reference, as data.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pixar.config import RenderConfig
from pixar.config_io import atomic_write, atomic_write_text
from pixar.paths import data_dir
from pixar.render.renderer import Renderer
from pixar.render import text_rules as tr
ROOT = Path(__file__).resolve().parents[1]
# the bench tool: ../shared/tools/pango-bench from a checkout (one level further up from a worktree)
BENCH_TOOL = next((p / "shared" / "tools" / "pango-bench" for p in (ROOT.parent, ROOT.parent.parent)
                   if (p / "shared" / "tools" / "pango-bench").is_dir()), ROOT.parent / "shared" / "tools" / "pango-bench")


def run_reference(texts: list[str], ref: Path, tool: Path = BENCH_TOOL) -> tuple[np.ndarray, float]:
    """The authors' renderer on `texts` (its own process, timed by the bench tool's pango_side.py):
    (uint8 [N, 8, W] strips, 1 = white; strings/s)."""
    py = ref / "venv" / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"no Pango reference in {ref}: run {tool / 'setup.sh'} {ref} first")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        out = subprocess.run([str(py), str(tool / "pango_side.py"), str(ref / "wheel"), str(Path(tmp) / "texts.json"),
                              str(Path(tmp) / "out.npz")], env=dict(os.environ, PYTHONPATH=str(ref / "stub")),
                             check=True, capture_output=True, text=True)
        speed = json.loads(out.stdout.strip().splitlines()[-1])["strings_per_s"]
        return np.load(Path(tmp) / "out.npz")["images"], speed


def reference_strips(texts: list[str], ref: Path, tool: Path = BENCH_TOOL) -> np.ndarray:
    """uint8 [N, 8, W] strips (1 = white) of `texts` from the authors' renderer."""
    return run_reference(texts, ref, tool)[0]


def default_ref() -> Path:
    return Path(os.environ.get("PANGO_REF", Path(tempfile.gettempdir()) / "pango-ref"))


def synthetic() -> list[tuple[str, str]]:
    """(text, class) for every class of whitespace / invisible / unusual character in issue 10."""
    out = []
    add = lambda cls, *ts: out.extend((t, cls) for t in ts)  # noqa: E731
    add("tab", "a\tb", "\tx", "ab\t\tc", "word\tword two\tthree", "\t", "x \ty", *("x" * k + "\ty" for k in range(1, 10)))
    add("newline", "a\nb", "\n\na", "a \n b", "line one\nline two\n", "\n")
    add("cr", "a\rb", "top\rbottom", "a\r\rb", "ab\rX", "X\rab", "one\rtwo\rthree", "gq\rjp", "\r")
    add("crlf", "a\r\nb", "line one\r\nline two", "\r\nx")
    add("line-separator", "a\u2028b", "a\u2029b")
    add("nbsp", "a\u00a0b", "\u00a0a", "a\u00a0\u00a0b", "“\u00a0Was", "x\u00a0")
    add("unicode-space", *(f"a{chr(c)}b" for c in range(0x2000, 0x200B)), "a\u202fb", "a\u205fb", "a\u3000b",
        "a\u1680b", "\u2003x", "a\u200a\u200aAt")
    add("zero-width", *(f"a{c}b" for c in "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202c\u202e\u034f"),
        "\u200bx", "x\u200b")
    add("soft-hyphen", "co\u00adop", "a\u00ad", "\u00adx")
    add("combining", "e\u0301", "a\u0308b", "n\u0303o", "x\u20dd", "cafe\u0301 au lait", "\u0301a")
    add("neither-font", "a\u0378b", "a\U0010fffdb", "a\uffffb", "x\ue000y", "a\U000e0080b"[:2] + "b")
    add("control", *(f"a{chr(c)}b" for c in [1, 2, 7, 8, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f, 0x85, 0x9f]),
        "a\x01\x02b", "x\x00y")
    add("fallback-script", "日本語", "日 本", "日\u00a0x", "a\t日", "Привет мир", "αβγ δ", "مرحبا", "שלום",
        "नमस्ते", "สวัสดี", "안녕하세요", "ქართული", "Հայերեն", "ελληνικά and English", "中文，标点。",
        "שלום עולם", "abc שלום def", "שלום 123", "(שלום)", "a 12 שלום 34 b", "עברית, כן.")
    add("truncate", "x" * 1200, "lorem ipsum " * 200, "a b " * 700 + "\tz", "long " * 400 + "日本")
    add("plain", "gq jp Hello", "a", "", "Hello, world!", " leading", "trailing ", "two  spaces")
    return out


def lambada_special(n: int, chars: int) -> list[tuple[str, str]]:
    """Bench passages (first 1,000 LAMBADA, cut to `chars`) that contain a character other than
    printable ASCII and space/newline."""
    d = data_dir()
    if d is None:
        return []
    texts = [json.loads(line)["text"][:chars] for line in open(d / "lambada" / "lambada_test.jsonl")][:1000]
    special = [t for t in texts if any(not (" " <= c <= "~" or c == "\n") for c in t)]
    # every passage with something other than curly quotes first, then the rest
    rare = [t for t in special if any(not (" " <= c <= "~" or c in "\n“”’‘") for c in t)]
    rest = [t for t in special if t not in rare]
    return [(t, "lambada") for t in (rare + rest)[:n]]


# ---- hex box capture -----------------------------------------------------------------------------
def hexbox_chars(renderer: Renderer) -> dict[int, list[str]]:
    """For 4- and 6-digit boxes: characters that cover every (slot, digit) Pango can draw."""
    picks: dict[int, list[str]] = {4: [], 6: []}
    need = {(4, k, d) for k in range(4) for d in "0123456789ABCDEF"}
    need |= {(6, k, d) for k in range(6) for d in "0123456789ABCDEF" if (k, d) != (0, "2")}
    need = {x for x in need if not (x[0] == 6 and x[1] == 0 and x[2] not in "01")}
    ranges = [range(1, 0xD800), range(0xE000, 0x10000), range(0x10000, 0x110000)]
    for rng in ranges:
        for c in rng:
            ch = chr(c)
            if renderer.char_class(ch)[0] != tr.HEXBOX or tr.is_ignorable(ch) or ch in "\x00\x85\n\r\t":
                continue
            digits = f"{c:04X}" if c <= 0xFFFF else f"{c:06X}"
            n = len(digits)
            new = {(n, k, d) for k, d in enumerate(digits)} & need
            if new:
                picks[n].append(ch)
                need -= new
            if not need:
                return picks
    return picks


def capture_hexbox_table(renderer: Renderer, ref: Path, tool: Path) -> str:
    """Python source of pixar/render/hexbox.py from the reference's boxes (single-line baseline)."""
    picks = hexbox_chars(renderer)
    pen0 = 2 + renderer.glyph("a").advance  # the box's pen: after "a" at the text origin
    texts = [f"a{ch}b" for n in (4, 6) for ch in picks[n]]
    strips = reference_strips(texts, ref, tool)
    ink = strips == 0
    boxes: dict[int, list[tuple[str, np.ndarray]]] = {4: [], 6: []}
    i = 0
    for n in (4, 6):
        for ch in picks[n]:
            boxes[n].append((ch, ink[i]))
            i += 1
    frames, advances, slots, digits = {}, {}, {}, {}
    for n, items in boxes.items():
        if not items:
            continue
        im = items[0][1]
        eos = next(e for e in range(0, im.shape[1], 16) if im[:, e: e + 16].all())  # the EOS block
        full = [c for c in np.flatnonzero(im[:, :eos].all(0)) if c > pen0]
        if not full:
            raise SystemExit("no hex box frame found in the reference strip")
        right = max(full)  # the frame's right column (no glyph of "b" spans all 8 rows)
        advance = right + 2 - pen0  # the frame's right edge, one blank column, then the next pen
        crops = np.stack([im[:, pen0: pen0 + advance] for _, im in items])
        frame = crops.all(0)
        frames[n], advances[n] = frame, int(advance)
        slots[n] = [2 + 6 * k for k in range(n)]
        for ch, im in items:
            c = ord(ch)
            ds = f"{c:04X}" if n == 4 else f"{c:06X}"
            crop = im[:, pen0: pen0 + advance] & ~frame
            for k, d in enumerate(ds):
                pat = crop[:, slots[n][k]: slots[n][k] + 6]
                key = (n, k, d)
                if key in digits and not np.array_equal(digits[key], pat):
                    raise SystemExit(f"hex box digit {d} in slot {k} differs between boxes ({ch!r})")
                digits[key] = pat
    art = lambda a: [("".join("#" if v else "." for v in row)) for row in a]  # noqa: E731
    lines = ['"""Pango\'s hex box (a character no font has), as the authors\' renderer draws it at the paper',
             "settings on the baseline of a single line with a box (y = 6): frame rows, advance, digit slots and each digit's",
             "pixels in each slot ('#' = ink). Captured from pixar-render 0.5.1 by",
             '`benchmarks/render_goldens.py --hexbox-table`; do not edit by hand."""', "",
             "BASELINE = 6", f"ADVANCE = {advances!r}", f"SLOT_X = {slots!r}", "FRAMES = {"]
    for n, f in frames.items():
        lines.append(f"    {n}: [")
        lines += [f"        {row!r}," for row in art(f)]
        lines.append("    ],")
    lines += ["}", "DIGITS = {"]
    for key in sorted(digits):
        lines.append(f"    {key!r}: {art(digits[key])!r},")
    lines += ["}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", type=Path, default=default_ref())
    ap.add_argument("--tool", type=Path, default=BENCH_TOOL, help="the bench tool's folder (pango_side.py)")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "golden")
    ap.add_argument("--lambada", type=int, default=120, help="bench passages with special characters")
    ap.add_argument("--hexbox-table", type=Path, default=None, help="also write the hex box table here")
    args = ap.parse_args()
    renderer = Renderer(RenderConfig(max_positions=360))
    if args.hexbox_table:
        atomic_write_text(args.hexbox_table, capture_hexbox_table(renderer, args.ref, args.tool))
        print(f"wrote {args.hexbox_table}")
    items = synthetic() + lambada_special(args.lambada, 300)
    texts = [t for t, _ in items]
    strips = reference_strips(texts, args.ref, args.tool)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "render_goldens.json",
                      json.dumps([{"text": t, "class": c} for t, c in items], ensure_ascii=True, indent=0) + "\n")
    bits = np.packbits(strips.astype(bool), axis=-1)

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, bits=bits, width=np.array(strips.shape[-1]))

    atomic_write(args.out / "render_goldens.npz", write_npz)
    same = sum(np.array_equal(renderer.render(t).pixels[0], s) for t, s in zip(texts, strips))
    print(f"wrote {len(texts)} golden strips to {args.out}; identical to ours now: {same}/{len(texts)}")


if __name__ == "__main__":
    main()
