"""GLUE fine-tuned dev results with intervals, reference rows and at-chance notes (written by `pixar bench glue`).

    write_dev_predictions(model, devs, folder)   after fine-tuning (the model holds its best-dev weights): one
                                                 predictions-<split>.jsonl per dev split {idx, label, prediction}
    glue_metrics(record, folder, task, split)    schema rows for one (model, task, dev split): each metric the
                                                 results.json recorded, with a 95% interval computed from the
                                                 predictions file (accuracy: Wilson; F1, MCC, Pearson, Spearman:
                                                 seeded percentile bootstrap over dev examples), the reference rows
                                                 (majority class, uniform chance; harness.results.reference) on the
                                                 same examples, and the note "at chance" when the lower bound does
                                                 not clear them (accuracy: the best reference row; MCC and the
                                                 correlations: 0, what any constant or random guess scores)
A results.json without a predictions file (written before this) keeps its numbers without intervals.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.models.glue_classifiers import predict_logits
from harness.results import stats
from harness.results.reference import is_at_chance, reference_rows
from harness.results.schema import Metric, read_jsonl, write_jsonl
from harness.tasks.glue import METRIC_FNS

BOOTSTRAP_METRICS = ("f1", "mcc", "pearson", "spearman")
ZERO_CHANCE = ("mcc", "pearson", "spearman")  # a constant or random predictor scores 0 on these
RESAMPLES, SEED = 2000, 0


def predictions_name(split: str) -> str:
    return f"predictions-{split}.jsonl"


def write_dev_predictions(model, devs: dict, folder: Path, batch_size: int = 64) -> dict[str, str]:
    """{split: file name} of the per-example dev predictions of `model` (class id, or score for regression)."""
    names = {}
    for split, data in devs.items():
        out = predict_logits(model, data.texts, batch_size)
        preds = out[:, 0] if out.shape[1] == 1 else out.argmax(-1)
        rows = [{"idx": i, "label": float(y) if isinstance(y, (float, np.floating)) else int(y),
                 "prediction": float(p) if out.shape[1] == 1 else int(p)} for i, (y, p) in enumerate(zip(data.labels, preds))]
        names[split] = predictions_name(split)
        write_jsonl(Path(folder) / names[split], rows)
    return names


def bootstrap_metric(fn, preds: np.ndarray, labels: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED,
                     level: float = stats.LEVEL) -> stats.Interval:
    """Percentile bootstrap interval of fn(preds, labels) over examples resampled with replacement (seeded)."""
    n = len(labels)
    if n == 0:
        raise ValueError("bootstrap_metric: no examples")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, n, size=n)
        values[b] = fn(preds[idx], labels[idx])
    values = values[np.isfinite(values)]
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if values.size else (np.nan, np.nan)
    return stats.Interval(float(fn(preds, labels)), float(lo), float(hi), level, "bootstrap-percentile", n,
                          resamples, seed)


def glue_metrics(record: dict, folder: Path, task: str, split: str, protocol: str,
                 have: list[Metric] | None = None) -> list[Metric]:
    """Schema rows of one (model, task, dev split): recorded metrics with intervals, reference rows (unless `have`
    already holds them for this task: every model of a task is scored on the same dev examples), notes."""
    values = record["metrics"][split]
    n = record["data"]["dev"][split]["n"]
    model = record["model"]
    path = Path(folder) / predictions_name(split)
    if not (path.exists() or path.with_name(path.name + ".gz").exists()):
        return [Metric(task, model, protocol, m, v, n, *(_wilson(v, n) if m == "accuracy" else (None, None, None)))
                for m, v in values.items() if v == v]
    rows = read_jsonl(path)
    labels = np.asarray([r["label"] for r in rows])
    preds = np.asarray([r["prediction"] for r in rows])
    out: list[Metric] = []
    refs = [] if record.get("problem_type") == "regression" or labels.dtype.kind == "f" else \
        reference_rows(task, [{"label": int(y)} for y in labels])
    for m, v in values.items():
        if v != v:
            continue
        if m == "accuracy":
            lo, hi, how = _wilson(v, len(rows))
        elif m in BOOTSTRAP_METRICS and m in METRIC_FNS:
            iv = bootstrap_metric(METRIC_FNS[m], preds, labels)
            lo, hi, how = iv.low, iv.high, f"bootstrap95 ({RESAMPLES} resamples, seed {SEED})"
        else:
            lo, hi, how = None, None, None
        metric = Metric(task, model, protocol, m, v, len(rows), lo, hi, how)
        if m == "accuracy" and is_at_chance(lo, refs) or m in ZERO_CHANCE and lo is not None and not lo > 0:
            metric.note = "at chance"
        out.append(metric)
    known = {(m.task, m.model) for m in have or []}
    out += [Metric(task, f"reference: {r.name}", protocol, "accuracy", r.interval.estimate, r.interval.n,
                   r.interval.low, r.interval.high, "wilson95") for r in refs
            if (task, f"reference: {r.name}") not in known]
    return out


def _wilson(v: float, n: int) -> tuple:
    if not n:
        return None, None, None
    iv = stats.wilson_interval(round(v * n), n)
    return iv.low, iv.high, "wilson95"


def table_with_intervals(rows: list[dict], metrics: list[Metric]):
    """The GLUE table rows (one per model x task, "fine-tuned dev <metric> (x100)" columns) with numeric
    "<column> ci_low" / "<column> ci_high" (x100) beside each value, a "note" column ("at chance: <metrics>") and
    the reference rows of each task appended (tables.to_markdown shows each pair as one "95% CI" column)."""
    import pandas as pd

    by = {(m.task, m.model, m.metric): m for m in metrics}
    out = []
    for row in rows:
        row = dict(row)
        notes = []
        for col in [c for c in list(row) if c.startswith("fine-tuned dev ")]:
            metric = col[len("fine-tuned dev "):].split(" (x100)")[0]
            m = by.get((row["task"], row["model"], metric))
            row[f"{col} ci_low"] = 100 * m.ci_low if m is not None and m.ci_low is not None else None
            row[f"{col} ci_high"] = 100 * m.ci_high if m is not None and m.ci_high is not None else None
            if m is not None and m.note:
                notes.append(metric)
        row["note"] = f"at chance: {', '.join(notes)}" if notes else ""
        out.append(row)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for m in metrics:
        if m.model.startswith("reference: ") and m.task in tasks:
            col = "fine-tuned dev accuracy (x100)"
            out.append({"model": m.model, "task": m.task, "n_dev": m.n, col: round(100 * m.value, 2),
                        f"{col} ci_low": 100 * m.ci_low, f"{col} ci_high": 100 * m.ci_high, "note": ""})
    if not out:
        return pd.DataFrame(columns=["model", "task"])
    df = pd.DataFrame(out)
    empty = [c for c in df.columns if c.endswith((" ci_low", " ci_high")) and df[c].isna().all()]
    return df.drop(columns=empty)
