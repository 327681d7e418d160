"""Comparison tables: one row per (task, model), one column per metric with its protocol in the name.

Column names say what a number is, so incomparable quantities never share a column:
    "paper: ..."    generate a fixed number of positions/tokens, read back, score the first word
    "lm-eval: ..."  lm-eval's own request types and metrics (through PixarLM or HFLM)
PIXAR's lm-eval loglikelihood is in pixel NLL (nats per target word's pixels); GPT-2's in token NLL: they get
separate columns, as do the two kinds of lm-eval `acc` (PIXAR: greedy positions read back by OCR equal the
target; GPT-2: every target token is the argmax).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pixar.config import atomic_write_text

ID_COLUMNS = ["task", "model", "kind", "params", "non-embedding params", "match", "finetuned", "ocr", "n"]

# metric keys (as produced by harness.bench) -> column labels
PIXAR_PAPER = {
    "paper_acc_glyph": "paper: first-word acc (glyph read-back)",
    "paper_acc_tesseract": "paper: first-word acc (tesseract read-back)",
    "paper_acc_union": "paper: first-word acc (union of read-backs)",
    "paper_readability": "paper: readability (first read word is English)",
}
GPT2_PAPER = {
    "paper_acc_ci": "paper: first-word acc (GPT-2 text, case-insensitive as evaluate_gpt2.py)",
    "paper_acc_cs": "paper: first-word acc (GPT-2 text, case-sensitive)",
    "paper_readability_text": "paper: readability of GPT-2 text (first word is English)",
}
LM_EVAL = {
    "lm_eval_acc_ocr": "lm-eval: acc (PIXAR greedy positions read back = target)",
    "lm_eval_acc_token": "lm-eval: acc (GPT-2 token argmax = target)",
    "lm_eval_pixel_nll": "lm-eval: pixel NLL per target (nats)",
    "lm_eval_pixel_ppl": "lm-eval: exp(pixel NLL per target)",
    "lm_eval_token_nll": "lm-eval: token NLL per target (nats)",
    "lm_eval_token_ppl": "lm-eval: token perplexity per target (lambada_openai)",
    "lm_eval_exact_match": "lm-eval: exact_match (first word, case/punct-insensitive)",
}
METRIC_LABELS = {**PIXAR_PAPER, **GPT2_PAPER, **LM_EVAL}


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    """Rows of {id columns..., metric keys...} -> DataFrame with labelled metric columns (unused ones dropped)."""
    df = pd.DataFrame(rows)
    ids = [c for c in ID_COLUMNS if c in df.columns]
    metrics = [k for k in METRIC_LABELS if k in df.columns and df[k].notna().any()]
    unknown = [c for c in df.columns if c not in ids and c not in METRIC_LABELS]
    if unknown:
        raise ValueError(f"unlabelled metric column(s) {unknown}: add them to harness.tables.METRIC_LABELS")
    return df[ids + metrics].rename(columns=METRIC_LABELS)


def _fmt(v) -> str:
    if isinstance(v, float):
        if pd.isna(v):
            return ""
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"
    return "" if v is None else str(v)


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir: str | Path, stem: str = "table") -> tuple[Path, Path]:
    """table.md (Markdown) + table.csv in out_dir, each written atomically."""
    out = Path(out_dir)
    md, csv = out / f"{stem}.md", out / f"{stem}.csv"
    atomic_write_text(md, to_markdown(df))
    atomic_write_text(csv, df.to_csv(index=False))
    return md, csv


def collect(results_root: str | Path) -> pd.DataFrame:
    """All rows of every `summary.json` under results_root, as one labelled table."""
    rows = []
    for path in sorted(Path(results_root).rglob("summary.json")):
        summary = json.loads(path.read_text())
        for row in summary.get("rows", []):
            rows.append({**row, "task": row.get("task", "")})
    return comparison_table(rows) if rows else pd.DataFrame()


def main(argv: list[str] | None = None) -> None:
    """python -m harness.tables [RESULTS_DIR] [--out DIR]: one table of every run's rows."""
    import argparse

    p = argparse.ArgumentParser(description="Collect results/**/summary.json rows into one comparison table.")
    p.add_argument("root", nargs="?", default="results")
    p.add_argument("--out", help="Also write <out>/comparison.md + .csv")
    args = p.parse_args(argv)
    df = collect(args.root)
    if df.empty:
        raise SystemExit(f"no summary.json under {args.root}")
    print(to_markdown(df))
    if args.out:
        write_table(df, args.out, "comparison")


if __name__ == "__main__":
    main()
