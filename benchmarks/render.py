"""Rendering throughput and exactness: our Renderer vs the PIXAR authors' renderer and vs our Pillow oracle.

    python benchmarks/render.py [--lines 1000] [--chars 300] [--rounds 3] [--ref DIR] [--texts FILE]

Texts: the first --lines LAMBADA passages cut to --chars (the pango-bench tool's texts) when $PIXAR_DATA
has them, else a fixed pangram mix; or --texts FILE: a JSON list of strings or of {"text": ...} (e.g.
tests/golden/multiscript.json, the multi-script goldens). Prints, from one run:
  * vs the authors' renderer (pixar-render 0.5.1, PangoCairo; set up by ../shared/tools/pango-bench/setup.sh
    in $PANGO_REF or $TMPDIR/pango-ref; skipped with a note when absent): strings/s of theirs (its own
    process, the bench tool's pango_side.py), ours one at a time (`render`) and batched (`render_batch`), in
    interleaved rounds (the machine's speed drifts), the median ratios, and how many strips are identical;
  * the training path: `render_batch(texts, out=buf)` into one batch buffer the caller reuses (a data loader's
    batch array), strings/s and its ratio to the authors' renderer;
  * vs our straightforward Pillow drawing (`render_reference`, the slow oracle): speed ratio and identical strips;
  * the memory floor: allocating and filling one fresh [1, 8, W] strip per string, kept like the results
    (what any renderer returning numpy strips pays), and one [N, 8, W] array for the batch, as strings/s: no
    renderer that returns fresh strips can be faster than its floor.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_goldens import BENCH_TOOL, default_ref, run_reference  # noqa: E402

from pixar.config import RenderConfig  # noqa: E402
from pixar.paths import data_dir  # noqa: E402
from pixar.render.renderer import Renderer  # noqa: E402


def bench_texts(n: int, chars: int) -> tuple[list[str], str]:
    d = data_dir()
    path = d / "lambada" / "lambada_test.jsonl" if d is not None else None
    if path is not None and path.exists():
        with open(path) as f:
            texts = [json.loads(line)["text"][:chars] for line in f][:n]
        return texts, f"first {len(texts)} LAMBADA passages, cut to {chars} chars"
    base = "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! "
    return [(base * 8)[i % 50: i % 50 + chars] for i in range(n)], "pangram mix (no $PIXAR_DATA)"


def timed(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--chars", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--oracle", type=int, default=100, help="texts drawn with the Pillow oracle")
    ap.add_argument("--ref", type=Path, default=default_ref())
    ap.add_argument("--tool", type=Path, default=BENCH_TOOL)
    ap.add_argument("--texts", type=Path, default=None, help="JSON list of strings or of {\"text\": ...}")
    args = ap.parse_args()
    if args.texts:
        items = json.loads(args.texts.read_text(encoding="utf-8"))
        texts = [it["text"] if isinstance(it, dict) else it for it in items][: args.lines]
        what = f"{len(texts)} strings of {args.texts}"
    else:
        texts, what = bench_texts(args.lines, args.chars)
    n = len(texts)
    r = Renderer(RenderConfig(max_positions=360))
    r.render_batch(texts[:20])  # fonts and the first glyphs (as the bench tool does)
    print(f"texts: {what}; strip {r.cfg.width}x{r.cfg.patch_size} px")

    have_ref = (args.ref / "venv" / "bin" / "python").exists() and (args.tool / "pango_side.py").exists()
    rows, gold, single, batch = [], None, None, None
    buf = np.ones((n, 8, r.cfg.width), np.uint8)  # the caller's batch buffer, reused every round
    for k in range(args.rounds):  # interleaved: theirs, ours one at a time, ours batched
        pango = None
        if have_ref:
            gold, pango = run_reference(texts, args.ref, args.tool)
        single, t1 = timed(lambda: [r.render(t).pixels[0] for t in texts])
        batch, t2 = timed(lambda: r.render_batch(texts).pixels)
        floor, t3 = timed(lambda: [np.ones((1, 8, r.cfg.width), np.uint8)[0] for _ in texts])
        floor_b, t4 = timed(lambda: np.ones((n, 8, r.cfg.width), np.uint8))
        into, t5 = timed(lambda: r.render_batch(texts, out=buf).pixels)
        del floor, floor_b
        rows.append((pango, n / t1, n / t2, n / t3, n / t4, n / t5))
        theirs = f"authors' {pango:8.0f}  " if pango else ""
        print(f"round {k + 1}: {theirs}ours single {n / t1:8.0f}  ours batch {n / t2:8.0f}  into buffer {n / t5:8.0f}  "
              f"memory floor single {n / t3:8.0f}  batch {n / t4:8.0f} strings/s")
    med = [statistics.median(x[i] for x in rows) if rows[0][i] else None for i in range(6)]
    if have_ref:
        w = gold.shape[-1]
        same = sum(np.array_equal(s[:, :w], g) for s, g in zip(single, gold))
        same_b = sum(np.array_equal(b[:, :w], g) for b, g in zip(batch, gold))
        print(f"vs the authors' renderer: median speed single {med[1] / med[0]:.2f}x, batch {med[2] / med[0]:.2f}x, "
              f"batch into the caller's buffer {med[5] / med[0]:.2f}x "
              f"(memory floor: single {med[3] / med[0]:.1f}x, batch {med[4] / med[0]:.1f}x); identical strips: single {same}/{n}, batch {same_b}/{n}")
    else:
        print(f"vs the authors' renderer: not set up (no {args.ref}; run {args.tool / 'setup.sh'})")

    sub = texts[: args.oracle]
    ref, t_ref = timed(lambda: [r.render_reference(t).pixels[0] for t in sub])
    fast, t_fast = timed(lambda: [r.render(t).pixels[0] for t in sub])
    same_o = sum(np.array_equal(a, b) for a, b in zip(fast, ref))
    print(f"vs our Pillow oracle ({len(sub)} texts): {len(sub) / t_ref:.0f} strings/s; speed-up {t_ref / t_fast:.1f}x; "
          f"identical strips: {same_o}/{len(sub)}")
    if same_o != len(sub):
        raise SystemExit("fast path and Pillow oracle differ")


if __name__ == "__main__":
    main()
