"""Calibrate the glyph decoder's abstention (pixar.read.abstention) and print its rates.

    PIXAR_DATA=... python benchmarks/glyph_abstention.py [--words 500] [--noise 300] [--seed 0]

Sets (pixar.read.calibration, all seeded with --seed):
    text      --words distinct corpus tokens ($PIXAR_DATA/corpus), each rendered alone ("clean"), and the same
              strips with 1% / 2% / 5% of pixels flipped: what should be read
    no text   --noise strips of each pixar.read.calibration.NOISE_KINDS kind (random pixels at 6 densities,
              blank and blotchy ink blocks, smudges of ellipses, rendered words dilated by a pixel): what
              should not be read
Each strip is decoded once; every rule below is then applied to the same words, so the rows differ only in
the rule. Columns:
    read        text sets: the reading equals the word (g/q folded), no abstention anywhere in it
    abstained   no-text sets: nothing read (only ABSTAIN_MARKs, or nothing)
The forced-choice decoder (abstain=None) is the first row: it reads every word, so it abstains on nothing.
Targets (tests/test_abstention.py): clean read >= 99%, random-pixel / blank / blotchy abstained >= 95%.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from pixar.read import calibration as cal
from pixar.read.abstention import ABSTAIN_MARK, DEFAULT_RULE, AbstentionRule, Word, abstained
from pixar.read.glyph_decoder import GlyphDecoder
from pixar.render.renderer import Renderer

FLIPS = (0.01, 0.02, 0.05)
SWEEP = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def reading(decoder: GlyphDecoder, parts, rule: AbstentionRule | None) -> str:
    """The decoder's reading of a decoded path's parts under `rule` (None = forced choice)."""
    text = "".join(p if isinstance(p, str) else (p.text if rule is None or rule.accepts(p) else ABSTAIN_MARK)
                   for p in parts)
    return decoder.finish(text)


def fold(s: str) -> str:
    return s.replace("g", "q")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=500)
    ap.add_argument("--noise", type=int, default=300, help="strips per no-text kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)

    renderer = Renderer()
    # min_ink as the default rule: glyph-less ink runs of that size become Words, so every rule can judge them
    permissive = dataclasses.replace(DEFAULT_RULE, max_distance=1.0, max_glyph_mismatch=1.0)
    decoder = GlyphDecoder(renderer, abstain=permissive)
    words = cal.corpus_words(args.words, args.seed, args.data_dir)
    clean = cal.word_strips(renderer, words)
    text_sets = {"clean": clean, **{f"flip {f:.0%}": cal.flip(clean, f, args.seed + 1) for f in FLIPS}}
    noise_sets = {k: cal.noise_strips(k, args.noise, args.seed + 2, renderer=renderer, data=args.data_dir)
                  for k in cal.NOISE_KINDS}
    parts = {name: [p for p, _ in decoder.decode_words_batch(strips)] for name, strips in
             {**text_sets, **noise_sets}.items()}

    rules = {"forced choice (abstain=None)": None}
    rules.update({f"max_distance {d:.2f}{' (DEFAULT_RULE)' if d == DEFAULT_RULE.max_distance else ''}":
                  dataclasses.replace(DEFAULT_RULE, max_distance=d) for d in SWEEP})
    print(f"glyph abstention: {len(words)} corpus words, {args.noise} strips per no-text kind, seed {args.seed}; "
          f"DEFAULT_RULE = {DEFAULT_RULE}")
    names = list(text_sets) + list(noise_sets)
    print("| rule | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    out: dict = {}
    for label, rule in rules.items():
        cells, rates = [], {}
        for name in text_sets:
            rates[name] = float(np.mean([fold(reading(decoder, p, rule)) == fold(w)
                                         for p, w in zip(parts[name], words)]))
        for name in noise_sets:
            rates[name] = float(np.mean([abstained(reading(decoder, p, rule)) or not reading(decoder, p, rule)
                                         for p in parts[name]]))
        cells = [f"{100 * rates[n]:.1f}" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
        out[label] = rates
    feats = {name: [w for p in ps for w in p if isinstance(w, Word)] for name, ps in parts.items()}
    print("\nword Jaccard distance, 1% / 50% / 99% quantiles (decoded words of each set):")
    for name, ws in feats.items():
        q = np.quantile([w.distance for w in ws], [0.01, 0.5, 0.99]) if ws else [np.nan] * 3
        print(f"  {name:12s} {len(ws):5d} words  {q[0]:.3f} {q[1]:.3f} {q[2]:.3f}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
