"""The multi-script golden set: 1,359 strings in 33 scripts, bidi mixes and controls, combining marks, emoji, hex
boxes and joiners, drawn by the PIXAR authors' renderer (pixar-render 0.5.1, PangoCairo, paper settings).

    python benchmarks/render_multiscript.py [--ref DIR] [--out tests/golden]

Writes tests/golden/multiscript.json ([{"text", "class"}, ...]) and tests/golden/multiscript.npz (the strips
packed along W with np.packbits, 1 = white), which tests/test_render_scripts.py compares with our renderer.
The strings are built from benchmarks/multiscript_words.py with a seeded generator, so the set is reproducible.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from benchmarks.multiscript_words import WORDS
from benchmarks.render_goldens import BENCH_TOOL, default_ref, reference_strips
from pixar.config_io import atomic_write, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
LATIN = ["the", "book", "Hello", "in", "and", "word", "city", "(see)", "price:", "No."]
PUNCT = [",", ".", "!", "?", ":", ";", "…", "-", "«", "»", "(", ")", "\"", "'", "/"]
EMOJI = ["😀", "👍", "❤️", "🇩🇪", "👨‍👩‍👧", "🏳️‍🌈", "👍🏽", "☕", "✅", "🙂", "🚀", "🎉"]
MARKS = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0327", "\u0323", "\u0331", "\u20dd"]
RTL = ("arabic", "persian", "urdu", "hebrew", "thaana", "syriac", "nko")


def script_strings(name: str, words: list[str], rng: random.Random, n: int = 32) -> list[str]:
    """Every word alone, then phrases of 2-4 words with punctuation and digits, and one Latin mix."""
    out = list(words)
    while len(out) < n:
        k = rng.randint(2, 4)
        ws = [rng.choice(words) for _ in range(k)]
        form = rng.randrange(6)
        if form == 0:
            s = " ".join(ws)
        elif form == 1:
            s = ", ".join(ws) + rng.choice([".", "!", "?", ":"])
        elif form == 2:
            s = f"{ws[0]} {rng.randint(0, 2030)} {' '.join(ws[1:])}"
        elif form == 3:
            s = f"({ws[0]}) {' '.join(ws[1:])}"
        elif form == 4:
            s = f"{ws[0]} {rng.choice(LATIN)} {' '.join(ws[1:])}"
        else:
            s = f"{rng.randint(1, 99)}. {' '.join(ws)} {rng.randint(10, 999)}%"
        if s not in out:
            out.append(s)
    return out[:n]


def bidi_mixes(rng: random.Random, n: int = 140) -> list[str]:
    """Latin and right-to-left words side by side with digits, brackets and punctuation, both directions first."""
    out: list[str] = []
    while len(out) < n:
        rtl = WORDS[rng.choice(RTL[:4])]
        a, b = rng.choice(rtl), rng.choice(rtl)
        la, lb = rng.choice(LATIN), rng.choice(LATIN)
        d = rng.randint(0, 9999)
        form = rng.randrange(8)
        s = [f"{la} {a} {lb}", f"{a} {la} {b}", f"{a} {d}", f"{la} {d} {a} {d % 97} {lb}", f"{a}, {b}.",
             f"{la}: {a} ({d})", f"«{a}» {lb}", f"{a} 12.5% {la}-{lb} {b}!"][form]
        if s not in out:
            out.append(s)
    return out


def combining(rng: random.Random, n: int = 50) -> list[str]:
    out = ["e\u0301", "a\u0308b", "n\u0303o", "cafe\u0301 au lait", "x\u0323\u0301", "Z\u0351\u036b\u0343",
           "\u0627\u064e\u0644\u0652", "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd", "\u0915\u093c", "\u0e01\u0e34\u0e4a"]
    while len(out) < n:
        w = rng.choice(["word", "mark", "Ana", "oio", "Text"])
        i = rng.randrange(len(w))
        s = w[: i + 1] + "".join(rng.sample(MARKS, rng.randint(1, 2))) + w[i + 1:]
        if s not in out:
            out.append(s)
    return out


def emoji(rng: random.Random, n: int = 40) -> list[str]:
    out = list(EMOJI)
    while len(out) < n:
        s = f"{rng.choice(LATIN)} {rng.choice(EMOJI)} {rng.choice(LATIN)}{rng.choice(EMOJI) if rng.random() < .3 else ''}"
        if s not in out:
            out.append(s)
    return out


def joiners(rng: random.Random, n: int = 40) -> list[str]:
    """ZWJ / ZWNJ inside words of scripts where they change shaping (Persian, Devanagari, Malayalam, Sinhala)."""
    out = ["می\u200cخواهم", "ک\u200dل", "\u0915\u094d\u200d\u0937", "\u0915\u094d\u200c\u0937", "\u0d28\u0d4d\u200d",
           "\u0dc1\u0dca\u200d\u0dbb\u0dd3", "a\u200db", "a\u200cb", "\u0644\u200d\u0627", "\u0644\u200c\u0627"]
    pools = [WORDS["persian"], WORDS["devanagari"], WORDS["arabic"], WORDS["bengali"], WORDS["malayalam"]]
    while len(out) < n:
        w = rng.choice(rng.choice(pools)).split(" ")[0]
        if len(w) < 2:
            continue
        i = rng.randrange(1, len(w))
        s = w[:i] + rng.choice("\u200c\u200d") + w[i:]
        if s not in out:
            out.append(s)
    return out


def bidi_controls(rng: random.Random, n: int = 24) -> list[str]:
    """Explicit embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and marks (LRM, RLM)."""
    out = [" \u2067 Z", "abc\u202edef\u202c ghi", "x\u2067ab cd\u2069 y", "\u202bhello world\u202c", "(a\u2067b)",
           "1\u202e23 45", "\u2066שלום\u2069 abc", "abc \u200fשלום\u200e 12"]
    controls = ["\u202a", "\u202b", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u200e", "\u200f"]
    while len(out) < n:
        a, b = rng.choice(LATIN), rng.choice(WORDS[rng.choice(RTL[:4])])
        c = rng.choice(controls)
        close = "\u2069" if c in "\u2066\u2067\u2068" else ("\u202c" if c in "\u202a\u202b\u202d\u202e" else "")
        s = f"{a} {c}{b} {rng.randint(0, 99)}{close} {rng.choice(LATIN)}"
        if s not in out:
            out.append(s)
    return out


# hex boxes (characters no font has) on lines that use GoNoto, and alone
BOXES = ["a\x01中", "中\x01", "مرحبا 😀", "a😀b ก", "ก😀ก", "ก 😀", "a😀 中", "😀a 中", "שלום \x02 עולם", "😀", "😀😀 🚀",
         "😀 中", "中文 😀", "नमस्ते 👍 ok"]


def golden_items(seed: int = 21) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    items = [(s, name) for name, words in WORDS.items() for s in script_strings(name, words, rng)]
    items += [(s, "bidi") for s in bidi_mixes(rng)]
    items += [(s, "combining") for s in combining(rng)]
    items += [(s, "emoji") for s in emoji(rng)]
    items += [(s, "joiners") for s in joiners(rng)]
    items += [(s, "bidi_controls") for s in bidi_controls(random.Random(seed + 1))]  # own generator: the rest unchanged
    items += [(s, "boxes") for s in BOXES]
    seen: set[str] = set()
    return [(t, c) for t, c in items if not (t in seen or seen.add(t))]  # a word two scripts share: kept once


def load(folder: Path = GOLDEN) -> tuple[list[str], list[str], np.ndarray]:
    """(texts, classes, uint8 strips [N, 8, W], 1 = white) of the committed multi-script goldens."""
    items = json.loads((folder / "multiscript.json").read_text(encoding="utf-8"))
    z = np.load(folder / "multiscript.npz")
    strips = np.unpackbits(z["bits"], axis=-1, count=int(z["width"]))
    return [it["text"] for it in items], [it["class"] for it in items], strips


def compare(renderer, texts: list[str], strips: np.ndarray) -> list[bool]:
    """Whether each text's strip (one batch) is identical to its golden."""
    px = renderer.render_batch(texts).pixels
    return [bool(np.array_equal(p, g)) for p, g in zip(px, strips)]


def write_known(folder: Path) -> None:
    """multiscript_known.json: the strings that still differ, per class, and the identical count (the floor
    tests/test_render_scripts.py holds us to)."""
    from pixar.config import RenderConfig
    from pixar.render.renderer import Renderer

    texts, classes, strips = load(folder)
    same = compare(Renderer(RenderConfig(max_positions=360)), texts, strips)
    differ: dict[str, list[str]] = {}
    for t, c, ok in zip(texts, classes, same):
        if not ok:
            differ.setdefault(c, []).append(t)
    per = {c: [sum(ok for cc, ok in zip(classes, same) if cc == c), classes.count(c)] for c in dict.fromkeys(classes)}
    known = {"identical": sum(same), "total": len(texts), "per_class": per, "differ": differ}
    atomic_write_text(folder / "multiscript_known.json", json.dumps(known, ensure_ascii=False, indent=1) + "\n")
    print(f"identical {sum(same)}/{len(texts)}; " + " ".join(f"{c} {a}/{b}" for c, (a, b) in per.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", type=Path, default=default_ref())
    ap.add_argument("--tool", type=Path, default=BENCH_TOOL)
    ap.add_argument("--out", type=Path, default=GOLDEN)
    ap.add_argument("--update-known", action="store_true",
                    help="only rewrite tests/golden/multiscript_known.json from today's renderer (no reference needed)")
    args = ap.parse_args()
    if args.update_known:
        write_known(args.out)
        return
    items = golden_items()
    strips = reference_strips([t for t, _ in items], args.ref, args.tool)
    atomic_write_text(args.out / "multiscript.json",
                      json.dumps([{"text": t, "class": c} for t, c in items], ensure_ascii=False, indent=0) + "\n")
    bits = np.packbits(strips.astype(bool), axis=-1)

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez_compressed(f, bits=bits, width=np.array(strips.shape[-1]))

    atomic_write(args.out / "multiscript.npz", write_npz)
    print(f"wrote {len(items)} strips in {len({c for _, c in items})} classes to {args.out}")


if __name__ == "__main__":
    main()
