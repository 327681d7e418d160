"""Comparison tables: one row per (task, model), one column per metric with its protocol in the name, and the
95% interval of each number beside it (harness.results.schema). `markdown_table` is the one Markdown table writer.

Column names say what a number is, so incomparable quantities never share a column:
    "paper: ..."    generate a fixed number of positions/tokens, read back, score the first word
    "lm-eval: ..."  lm-eval's own request types and metrics (through PixarLM or HFLM)
PIXAR's lm-eval loglikelihood is in pixel NLL (nats per target word's pixels); GPT-2's in token NLL: they get
separate columns, as do the two kinds of lm-eval `acc` (PIXAR: greedy positions read back by OCR equal the
target; GPT-2: every target token is the argmax).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pixar.config_io import atomic_write_text

from harness.results.schema import read_summary

ID_COLUMNS = ["task", "model", "kind", "params", "non-embedding params", "match", "finetuned", "ocr", "n"]

# metric keys (as produced by harness.eval.bench) -> column labels
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


def metric_label(metric: str, protocol: str) -> str:
    """The column a metric row lands in: its METRIC_LABELS label, else "<protocol>: <metric>" -- the protocol is
    always part of the column, so two protocols never share one."""
    return METRIC_LABELS.get(metric) or f"{protocol}: {metric}"


def _interval(lo, hi) -> str:
    if lo is None or hi is None or pd.isna(lo) or pd.isna(hi):
        return ""
    return f"[{_fmt(float(lo))}, {_fmt(float(hi))}]"


LOW, HIGH, CI = " ci_low", " ci_high", " 95% CI"


def metrics_table(metrics: list[dict], ids: dict[tuple, dict] | None = None) -> pd.DataFrame:
    """Schema metric rows ({task, model, protocol, metric, value, n, ci_low, ci_high[, note]}, + optional "run")
    -> one row per (run, task, model): id columns, n, and per metric its value, numeric "<label> ci_low" /
    "<label> ci_high" columns (what the CSV holds; `to_markdown` shows them as one "<label> 95% CI" column) and a
    "<label> note" column where a row carries a note ("at chance"). ids: extra id columns per (task, model)."""
    if not metrics:
        return pd.DataFrame()
    keys, table = [], {}
    for m in metrics:
        key = (m.get("run", ""), m["task"], m["model"])
        if key not in table:
            keys.append(key)
            table[key] = {"run": key[0], "task": key[1], "model": key[2],
                          **(ids or {}).get((key[1], key[2]), {}), "n": m["n"]}
        row, label = table[key], metric_label(m["metric"], m["protocol"])
        row["n"] = max(row["n"] or 0, m["n"] or 0)
        row[label] = m["value"]
        for suffix, k in ((LOW, "ci_low"), (HIGH, "ci_high")):
            v = m.get(k)
            row[label + suffix] = float(v) if v is not None else float("nan")
        if m.get("note"):
            row[f"{label} note"] = m["note"]
    df = pd.DataFrame([table[k] for k in keys])
    if not df["run"].astype(bool).any():
        df = df.drop(columns="run")
    empty = [c for c in df.columns if c.endswith((LOW, HIGH)) and df[c].isna().all()]
    df = df.drop(columns=empty)
    notes = [c for c in df.columns if c.endswith(" note")]
    df[notes] = df[notes].fillna("")
    return df


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric "<label> ci_low" / "<label> ci_high" column pairs shown as one "<label> 95% CI" text column."""
    out = df.copy()
    for col in [c for c in df.columns if c.endswith(LOW)]:
        label = col[: -len(LOW)]
        if label + HIGH not in df.columns:
            continue
        cells = [_interval(lo, hi) for lo, hi in zip(df[col], df[label + HIGH])]
        at = list(out.columns).index(col)
        out = out.drop(columns=[col, label + HIGH])
        out.insert(at, label + CI, cells)
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        if pd.isna(v):
            return ""
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.4g}"
    return "" if v is None else str(v)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; cells are formatted (floats to 4 decimals) and '|' / newlines escaped."""
    esc = lambda s: _fmt(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(df: pd.DataFrame) -> str:
    df = display_frame(df)
    cols = list(df.columns)
    return markdown_table(cols, [[r[c] for c in cols] for _, r in df.iterrows()])


def write_table(df: pd.DataFrame, out_dir: str | Path, stem: str = "table", title: str = "") -> tuple[Path, Path]:
    """<stem>.md (Markdown, with an optional preamble) + <stem>.csv in out_dir, each written atomically."""
    out = Path(out_dir)
    md, csv = out / f"{stem}.md", out / f"{stem}.csv"
    atomic_write_text(md, (title.rstrip() + "\n\n" if title else "") + to_markdown(df))
    atomic_write_text(csv, df.to_csv(index=False))
    return md, csv


def collect(results_root: str | Path) -> pd.DataFrame:
    """Every metric row of every summary.json (harness.results.schema schema) under results_root, as one table;
    "run" names the folder each row came from. A summary of another schema is an error naming the file."""
    root, rows = Path(results_root), []
    for path in sorted(root.rglob("summary.json")):
        run = path.parent.relative_to(root).as_posix()
        rows += [{**m, "run": "" if run == "." else run} for m in read_summary(path)["metrics"]]
    return metrics_table(rows)


def main(argv: list[str] | None = None) -> None:
    """python -m harness.results.tables [RESULTS_DIR] [--out DIR]: one table of every run's metrics."""
    import argparse

    p = argparse.ArgumentParser(description="Collect results/**/summary.json metrics into one comparison table.")
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
