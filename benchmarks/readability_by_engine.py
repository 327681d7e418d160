"""Readability per engine and the strict variant, stage 1 vs stage 2, from the committed per-example rows.

    PIXAR_DATA=... python benchmarks/readability_by_engine.py [--results results] [--resamples 2000]

Reads only committed files: each run's results/<folder>/summary.json (protocol spec, seed, model names) and its
predictions-*.jsonl(.gz) rows (the texts each engine read). The rows keep the texts, not the pixels, so they
cannot be read again: every number here is of the readings as committed, i.e. of the glyph decoder BEFORE
abstention (pixar.read.abstention), which read every blob as letters. The readability vocabulary is rebuilt
as the run built it (harness.eval.protocols.build_vocabulary: the paper's word list in $PIXAR_DATA, plus the
evaluation set's words where the protocol adds them); the recomputed union must equal every stored
`readable` flag, and the script stops if it does not.

Metrics (harness.eval.readability): the paper's readability of the union (glyph or Tesseract: paddle-less)
and of each engine alone, and the strict variant (>= 3 letters, punctuation stripped) likewise; GPT-2's text
gets the same two rules. Stage 2 - stage 1 differences are paired on the examples both runs scored
(harness.eval.protocols.paired_difference, paired percentile bootstrap, seed 0), in percentage points.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pixar.provenance import slug

from harness.eval import readability as rd
from harness.eval.official_scorers import get_scorer
from harness.eval.protocols import ProtocolSpec, build_vocabulary, load_examples, paired_difference
from harness.results import stats
from harness.results.schema import read_jsonl

# (label, stage-2 folder, stage-1 folder, protocol label); folders under --results
PAIRS = [
    ("LAMBADA, stage 2 (alpha 1)", "lambada/stage2-vs-gpt2", "lambada/stage1-vs-gpt2", "lambada:paper"),
    ("LAMBADA, stage 2 (alpha 0.3)", "stage2-sweep/lambada-alpha0.3", "lambada/stage1-vs-gpt2", "lambada:paper"),
    ("LAMBADA, stage 2 (alpha 0.1)", "stage2-sweep/lambada-alpha0.1", "lambada/stage1-vs-gpt2", "lambada:paper"),
    ("LAMBADA capped, stage 2 (alpha 1)", "lambada/stage2-cap", "lambada/stage1-cap", "lambada:paper+cap75"),
    ("bAbI, stage 2 (alpha 1)", "babi/stage2-vs-gpt2", "babi/stage1-vs-gpt2", "babi:paper"),
    ("bAbI, stage 2 (alpha 0.3)", "stage2-sweep/babi-alpha0.3", "babi/stage1-vs-gpt2", "babi:paper"),
    ("bAbI, stage 2 (alpha 0.1)", "stage2-sweep/babi-alpha0.1", "babi/stage1-vs-gpt2", "babi:paper"),
    ("bAbI all questions, stage 2 (alpha 1)", "babi/stage2-all-questions", "babi/stage1-all-questions",
     "babi:paper-all-questions[glyph]"),
]
FLAGS = [("paper union", "readable", None), ("paper glyph", "readable_by", "glyph"),
         ("paper tesseract", "readable_by", "tesseract"), ("strict union", "readable_strict", None),
         ("strict glyph", "readable_strict_by", "glyph"), ("strict tesseract", "readable_strict_by", "tesseract")]
_vocabs: dict = {}


def spec_of(summary: dict, label: str) -> ProtocolSpec:
    d = {k: v for k, v in summary["protocol_specs"][label].items() if k != "label"}
    return ProtocolSpec(**{**d, "engines": tuple(d["engines"])})


def vocabulary(spec: ProtocolSpec, seed: int):
    key = (spec.vocabulary, spec.vocab_eval_words and (spec.data, spec.prompt_prep, spec.babi_stories, seed))
    if key not in _vocabs:
        examples = load_examples(spec, None, seed) if spec.vocab_eval_words else []
        _vocabs[key] = build_vocabulary(spec, examples, None, required=True)
    return _vocabs[key]


def load_run(results: Path, folder: str, label: str) -> dict[str, list[dict]]:
    """{model: rows with per-engine and strict readability} for one protocol of one committed run."""
    summary = json.loads((results / folder / "summary.json").read_text(encoding="utf-8"))
    spec = spec_of(summary, label)
    vocab = vocabulary(spec, int(summary.get("seed") or 0))
    out = {}
    for model in dict.fromkeys(m["model"] for m in summary["metrics"] if m["protocol"] == label):
        prefix = f"predictions-{slug(model)}-{slug(label)}"
        names = [f for f in summary["files"] if f.startswith(prefix) and ".jsonl" in f]
        if len(names) != 1:
            raise SystemExit(f"{folder}: expected one predictions file for {model} / {label}, found {names}")
        rows = read_jsonl(results / folder / names[0].removesuffix(".gz"))
        scorer = get_scorer("gpt2-official" if set(rows[0]["read"]) == {"text"} else spec.scorer)  # text_model_spec
        rows, differ = rd.rescore(rows, scorer.readable, vocab)
        if differ:
            raise SystemExit(f"{folder}/{names[0]}: the recomputed union differs from the stored readable flag on "
                             f"{differ} rows (vocabulary or scorer not the run's)")
        out[model] = rows
    return out


def flags(rows: list[dict], key: str, engine: str | None) -> list[bool] | None:
    if engine is not None and engine not in rows[0][key]:
        return None
    return [bool(r[key][engine] if engine else r[key]) for r in rows]


def pct(iv) -> str:
    return f"{100 * iv.estimate:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]"


def short_share(rows: list[dict], vocab_key: str = "readable") -> str:
    """Of the readable examples, the share whose readable first tokens are all 1-3 characters."""
    readable = [r for r in rows if r[vocab_key]]
    if not readable:
        return "-"
    short = sum(all(len(t.split()[0]) <= 3 for e, t in r["read"].items() if r["readable_by"][e]) for r in readable)
    return f"{100 * short / len(readable):.0f}%"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--resamples", type=int, default=stats.RESAMPLES)
    args = ap.parse_args(argv)
    results = Path(args.results)
    runs: dict[tuple[str, str], dict] = {}
    for _, a, b, label in PAIRS:
        for folder in (a, b):
            if (folder, label) not in runs:
                runs[(folder, label)] = load_run(results, folder, label)

    print("Readability of the committed rows (glyph decoder before abstention), % [Wilson 95%]. 'short': of the "
          "readable examples, the share whose readable first tokens are 1-3 characters.\n")
    head = [name for name, _, _ in FLAGS]
    print("| run | model | protocol | n | " + " | ".join(head) + " | short |")
    print("|---|---|---|---|" + "---|" * (len(head) + 1))
    for (folder, label), models in runs.items():
        for model, rows in models.items():
            cells = [pct(stats.proportion_interval(f)) if (f := flags(rows, key, e)) is not None else "-"
                     for _, key, e in FLAGS]
            print(f"| {folder} | {model} | {label} | {len(rows)} | " + " | ".join(cells) + f" | {short_share(rows)} |")

    print("\nStage 2 - stage 1, PIXAR, paired on the examples both scored, percentage points "
          "[paired bootstrap 95%, seed 0]:\n")
    print("| comparison | protocol | n | " + " | ".join(head) + " |")
    print("|---|---|---|" + "---|" * len(head))
    for name, a, b, label in PAIRS:
        pa = next(rows for m, rows in runs[(a, label)].items() if m.startswith("pixar"))
        pb = next(rows for m, rows in runs[(b, label)].items() if m.startswith("pixar"))
        cells, n = [], 0
        for _, key, e in FLAGS:
            if flags(pa, key, e) is None:
                cells.append("-")
                continue
            d = paired_difference(pa, pb, key, e, resamples=args.resamples, seed=0, common=True)
            cells.append(f"{100 * d.estimate:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]")
            n = d.n
        print(f"| {name} | {label} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
