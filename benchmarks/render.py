"""Rendering throughput: glyph-atlas fast path vs straightforward Pillow drawing, same strings, same run.

    python benchmarks/render.py [--lines 300] [--chars 300]

Strings are corpus lines when $PIXAR_DATA is set (else a fixed pangram mix). Prints strings/s, chars/s
and the atlas/Pillow speed ratio; also checks that both paths produced identical pixels.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from pixar.config import RenderConfig
from pixar.paths import data_dir
from pixar.render import Renderer


def corpus_lines(n: int, chars: int) -> list[str]:
    d = data_dir()
    text = ""
    if d is not None:
        for p in sorted((d / "corpus" / "gitenberg").glob("*.txt"))[:2]:
            text += p.read_text(encoding="utf-8", errors="replace")
    if not text:
        text = "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! " * 200
    words = text.split()
    lines, cur = [], []
    for w in words:
        cur.append(w)
        if sum(len(x) + 1 for x in cur) >= chars:
            lines.append(" ".join(cur))
            cur = []
            if len(lines) == n:
                break
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--chars", type=int, default=300)
    args = ap.parse_args()
    lines = corpus_lines(args.lines, args.chars)
    n_chars = sum(map(len, lines))
    r = Renderer(RenderConfig())
    r.render_batch(lines[:5])  # warm the atlas (a one-off cost, reported separately)

    t0 = time.perf_counter()
    fast = r.render_batch(lines)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = np.stack([r.render_reference(s).pixels[0] for s in lines])
    t_ref = time.perf_counter() - t0

    cold = Renderer(RenderConfig())
    t0 = time.perf_counter()
    cold.render_batch(lines[:1])
    t_cold = time.perf_counter() - t0

    same = bool((fast.pixels == ref).all())
    print(f"strings: {len(lines)}  chars: {n_chars}  (avg {n_chars / len(lines):.0f} chars, strip {r.cfg.width}x{r.cfg.patch_size} px)")
    print(f"pillow reference : {len(lines) / t_ref:10.1f} strings/s  {n_chars / t_ref:12.0f} chars/s")
    print(f"glyph atlas      : {len(lines) / t_fast:10.1f} strings/s  {n_chars / t_fast:12.0f} chars/s")
    print(f"speed-up atlas/pillow: {t_ref / t_fast:.2f}x   identical pixels: {same}   first-call atlas build: {t_cold * 1e3:.0f} ms")
    if not same:
        raise SystemExit("atlas and reference renders differ")


if __name__ == "__main__":
    main()
