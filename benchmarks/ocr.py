"""Read-back accuracy and speed: glyph decoder vs Tesseract on the same clean corpus strips, same run.

    PIXAR_DATA=... python benchmarks/ocr.py [--lines 200] [--width 60] [--seed 0] [--noise 0.0]
                                            [--lexicon] [--no-tesseract] [--json results/ocr_bench.json]

Protocol (this harness's, not the paper's): `--lines` lines of about `--width` characters are drawn from
the book corpus ($PIXAR_DATA/corpus, pixar.read.wordlist.corpus_lines with --seed), rendered with the paper's
Renderer, and the text region (everything before the EOS block) is read back by each engine. Word
accuracy = word_accuracy below: the fraction of gold whitespace words matched exactly by a difflib
alignment with the reading, case-sensitive, with the paper's g -> q fold ("folded") and without it.
`--noise p` flips each pixel with probability p (seeded) before reading.

Speed: lines/s of the glyph decoder one strip at a time (GlyphDecoder.decode) and batched
(pixar.read.ocr.read_strips, 64 a call), and of Tesseract (pytesseract subprocess per line, --psm 7,
OMP_THREAD_LIMIT=1, or tesserocr in-process when installed); ratios glyph / Tesseract. The single-strip
glyph and Tesseract calls alternate line by line, so both see the same machine load. Template building
(~0.1 s, once per decoder) is excluded and printed separately.
"""
from __future__ import annotations

import argparse
import difflib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from pixar.read import ocr
from pixar.config_io import atomic_write_text
from pixar.read.glyph_decoder import GlyphDecoder
from pixar.render.renderer import Renderer
from pixar.read.wordlist import corpus_lines, word_counts


def word_accuracy(golds: list[str], preds: list[str], fold_gq: bool = True) -> float:
    """Read-back word accuracy (a protocol of this harness, not the paper's): the fraction of gold
    whitespace words that a difflib alignment of each gold line with its reading matches exactly
    (case-sensitive; optional g -> q fold). Insertions/splits do not shift later words out of line."""
    ok = total = 0
    for gold, pred in zip(golds, preds, strict=True):
        gw, pw = gold.split(), pred.split()
        if fold_gq:
            gw, pw = [ocr.normalise_word(w) for w in gw], [ocr.normalise_word(w) for w in pw]
        ok += sum(m.size for m in difflib.SequenceMatcher(a=gw, b=pw, autojunk=False).get_matching_blocks())
        total += len(gw)
    return ok / total if total else 0.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--width", type=int, default=60, help="characters per line (word-wrapped)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.0, help="pixel flip probability before reading")
    ap.add_argument("--lexicon", action="store_true", help="g/q choice by corpus word counts (else q-before-u)")
    ap.add_argument("--no-tesseract", action="store_true")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    lines = corpus_lines(args.data_dir, n=args.lines, width=args.width, seed=args.seed)
    renderer = Renderer()
    batch = renderer.render_batch(lines)
    pw = renderer.cfg.position_width
    strips = [batch.pixels[i][:, : int(batch.eos_position[i]) * pw] for i in range(len(lines))]
    if args.noise > 0:
        rng = np.random.default_rng(args.seed)
        strips = [np.where(rng.random(s.shape) < args.noise, 1 - s, s).astype(np.uint8) for s in strips]
    n_words = sum(len(s.split()) for s in lines)
    print(f"{len(lines)} corpus lines ({n_words} words, mean {np.mean([s.shape[1] for s in strips]):.0f} px wide), "
          f"seed {args.seed}, noise {args.noise}")

    t0 = time.perf_counter()
    decoder = GlyphDecoder(renderer, lexicon=word_counts(args.data_dir) if args.lexicon else None)
    t_build = time.perf_counter() - t0
    use_tess = not args.no_tesseract and ocr.tesseract_available()
    reader = ocr.TesseractReader() if use_tess else None
    if reader is not None:
        reader.read(strips[0])  # warm-up (first process start, page cache)
    decoder.decode(strips[0])
    # interleaved per line, so both engines are timed under the same machine load
    glyph_single, tess, t_single, t_tess = [], [], 0.0, 0.0
    for s in strips:
        t0 = time.perf_counter()
        glyph_single.append(decoder.decode(s))
        t1 = time.perf_counter()
        if reader is not None:
            tess.append(reader.read(s))
        t_single, t_tess = t_single + (t1 - t0), t_tess + (time.perf_counter() - t1)
    t0 = time.perf_counter()
    glyph = ocr.read_strips(strips, "glyph", decoder=decoder)
    t_batch = time.perf_counter() - t0
    assert glyph == glyph_single, "batched and single-strip decoding disagree"

    res = {"protocol": "corpus lines rendered clean (plus --noise flips), text region read back; word accuracy "
                       "= difflib-aligned exact words (word_accuracy below); not the paper's first-word score",
           "lines": len(lines), "words": n_words, "width_chars": args.width, "seed": args.seed, "noise": args.noise,
           "gq": "corpus lexicon" if args.lexicon else "q-before-u rule", "python": platform.python_version(),
           "glyph": {"word_acc_folded": word_accuracy(lines, glyph),
                     "word_acc_unfolded": word_accuracy(lines, glyph, fold_gq=False),
                     "line_exact_folded": float(np.mean([ocr.normalise_word(a) == ocr.normalise_word(b)
                                                         for a, b in zip(lines, glyph)])),
                     "lines_per_s_single": len(lines) / t_single, "lines_per_s_batched": len(lines) / t_batch,
                     "template_build_s": t_build}}
    g = res["glyph"]
    print(f"glyph     word acc {g['word_acc_folded']:.4%} folded, {g['word_acc_unfolded']:.4%} unfolded; "
          f"lines exact (folded) {g['line_exact_folded']:.2%}; "
          f"{g['lines_per_s_single']:.0f} lines/s single, {g['lines_per_s_batched']:.0f} lines/s batched "
          f"(templates built once in {t_build:.2f} s)")

    if reader is None:
        print("tesseract skipped" + ("" if args.no_tesseract else f" (not installed: {ocr.TESSERACT_INSTALL})"))
    else:
        union = float(np.mean([word_accuracy([gold], [a]) == 1.0 or word_accuracy([gold], [b]) == 1.0
                               for gold, a, b in zip(lines, glyph, tess)]))
        t = res["tesseract"] = {"version": reader.version(), "backend": reader.backend,
                                "word_acc_folded": word_accuracy(lines, tess),
                                "word_acc_unfolded": word_accuracy(lines, tess, fold_gq=False),
                                "lines_per_s": len(lines) / t_tess}
        res["union_line_exact_folded"] = union
        res["speed_ratio_single"] = g["lines_per_s_single"] / t["lines_per_s"]
        res["speed_ratio_batched"] = g["lines_per_s_batched"] / t["lines_per_s"]
        print(f"tesseract word acc {t['word_acc_folded']:.4%} folded, {t['word_acc_unfolded']:.4%} unfolded; "
              f"{t['lines_per_s']:.2f} lines/s ({t['version']}, {reader.backend})")
        print(f"speed ratio glyph/tesseract: {res['speed_ratio_single']:.0f}x single-strip, "
              f"{res['speed_ratio_batched']:.0f}x batched")
        print(f"union (either engine reads the whole line exactly, folded): {union:.2%}")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
