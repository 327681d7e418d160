"""The robustness suite: accuracy of models under seeded perturbations, and its reports.

:func:`run_suite` perturbs every example for each (attack, rate) (attacks.seeded: example ``i`` is perturbed
with ``random.Random(derive_seed(seed, attack, rate, i))``), asks each model for predictions on the perturbed
inputs and scores them. Models are plain callables ``model(inputs: list[Input]) -> list[prediction]`` where an
``Input`` is a ``str`` or, for sentence-pair tasks, a ``(text_a, text_b)`` tuple (both texts are perturbed).

:func:`run_pixel_suite` does the same for pixel attacks on models that read pixels: the clean inputs go to
``model.predict(inputs, transform=PixelAttack(attack, rate, seed), ids=example indices)``, so each example's
rendered image is perturbed from its own seed, whatever the batch size.

:func:`write_report` writes ``<stem>.md``, ``<stem>.csv``, ``<stem>_perturbed.csv`` and ``<stem>.png``
(accuracy vs rate, one line per model with its 95% Wilson band, one subplot per attack), each atomically.
"""
from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import pandas as pd

from attacks import AttackUnavailableError, get_attack
from attacks.seeded import Input, PixelAttack, derive_seed, perturb_input
from pixar.config import atomic_write, atomic_write_text

from harness.results.tables import markdown_table

Model = Callable[[list[Input]], Sequence[Any]]
Score = Callable[[Any, Mapping[str, Any]], float]

TABLE_COLUMNS = ["attack", "rate", "model", "n", "accuracy"]
PERTURBED_COLUMNS = ["attack", "rate", "example", "original", "perturbed"]


class SuiteResult(NamedTuple):
    """``table``: one row per (attack, rate, model) with ``TABLE_COLUMNS``; ``perturbed``: one row per
    (attack, rate, example) with ``PERTURBED_COLUMNS`` (pairs are stored as tuples)."""

    table: pd.DataFrame
    perturbed: pd.DataFrame


def exact_match(prediction: Any, example: Mapping[str, Any]) -> float:
    """Default score: 1.0 if ``prediction == example["label"]`` else 0.0."""
    return float(prediction == example["label"])


def _predict(model: Model, name: str, batch: list[Input], cache: dict | None) -> list[Any]:
    """Predictions for ``batch``, querying ``model`` only for uncached inputs."""
    todo = batch if cache is None else list(dict.fromkeys(x for x in batch if x not in cache))
    preds = list(model(list(todo))) if todo else []
    if len(preds) != len(todo):
        raise ValueError(f"model {name!r} returned {len(preds)} predictions for {len(todo)} inputs")
    if cache is None:
        return preds
    cache.update(zip(todo, preds))
    return [cache[x] for x in batch]


def run_suite(examples: Sequence[Mapping[str, Any]], attack_names: Sequence[str], rates: Sequence[float],
              models: Mapping[str, Model], score: Score = exact_match, seed: int = 0, text_field: str = "text",
              cache: bool = True) -> SuiteResult:
    """Evaluate every model on every (attack, rate) text perturbation of ``examples``.

    examples: mappings holding the input under ``text_field`` plus whatever ``score`` reads; attack_names:
    registered text attacks; rates: severities (include 0 for the clean baseline); models: name -> callable;
    score(prediction, example) -> float, whose mean is the reported ``accuracy``; cache: call each model once
    per distinct input (rate 0 gives the same clean inputs for every attack); models must be deterministic.
    """
    for name in attack_names:
        spec = get_attack(name)
        if spec.family == "pixel":
            raise ValueError(f"{name!r} is a pixel attack; run_suite perturbs text")
        if not spec.available:
            raise AttackUnavailableError(f"attack {name!r} is unavailable: {spec.unavailable_reason}")
    inputs = [ex[text_field] for ex in examples]
    rows, perturbed_rows = [], []
    caches: dict[str, dict[Input, Any]] = {name: {} for name in models}
    for attack in attack_names:
        for rate in rates:
            rngs = [random.Random(derive_seed(seed, attack, rate, i)) for i in range(len(inputs))]
            batch = [perturb_input(x, attack, rate, r) for x, r in zip(inputs, rngs)]
            perturbed_rows += [(attack, float(rate), i, x, y) for i, (x, y) in enumerate(zip(inputs, batch))]
            for model_name, model in models.items():
                preds = _predict(model, model_name, batch, caches[model_name] if cache else None)
                scores = [float(score(p, ex)) for p, ex in zip(preds, examples)]
                rows.append((attack, float(rate), model_name, len(scores),
                             sum(scores) / len(scores) if scores else math.nan))
    return SuiteResult(pd.DataFrame(rows, columns=TABLE_COLUMNS),
                       pd.DataFrame(perturbed_rows, columns=PERTURBED_COLUMNS))


def run_pixel_suite(examples: Sequence[Mapping[str, Any]], attack_names: Sequence[str], rates: Sequence[float],
                    models: Sequence, score: Score = exact_match, seed: int = 0,
                    text_field: str = "text") -> tuple[pd.DataFrame, list[tuple]]:
    """Pixel attacks through each model's transform argument: ``model.predict(inputs, transform, ids)``.
    -> (table with TABLE_COLUMNS, [(attack, rate, model name, example index, prediction), ...])."""
    inputs = [ex[text_field] for ex in examples]
    ids = list(range(len(inputs)))
    rows, preds_out = [], []
    for m in models:
        for attack in attack_names:
            for rate in rates:
                preds = list(m.predict(inputs, PixelAttack(attack, float(rate), int(seed)), ids))
                scores = [float(score(p, ex)) for p, ex in zip(preds, examples)]
                rows.append((attack, float(rate), m.name, len(scores), sum(scores) / max(len(scores), 1)))
                preds_out += [(attack, float(rate), m.name, i, p) for i, p in enumerate(preds)]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS), preds_out


# ------------------------------------------------------------------ reporting
def _format_input(value: Any) -> str:
    return " ||| ".join(value) if isinstance(value, (tuple, list)) else str(value)


def render_markdown(table: pd.DataFrame, perturbed: pd.DataFrame, title: str, n_samples: int = 3) -> str:
    """Markdown: per attack, a rate x model accuracy table (with 95% Wilson intervals) and a few samples."""
    out = [f"# {title}", ""]
    models = list(dict.fromkeys(table["model"]))
    for attack, sub in table.groupby("attack", sort=False):
        out += [f"## {attack}", ""]
        rows = []
        for rate, rsub in sub.groupby("rate", sort=True):
            by_model = {r.model: r for r in rsub.itertuples()}
            cells = []
            for m in models:
                r = by_model.get(m)
                if r is None:
                    cells.append("")
                    continue
                lo, hi = accuracy_band(r.accuracy, int(r.n))
                cells.append(f"{r.accuracy:.4f} [{lo:.2f}, {hi:.2f}]")
            rows.append([f"{rate:g}", str(rsub["n"].iloc[0])] + cells)
        out += [markdown_table(["rate", "n"] + [f"{m} (95% CI)" for m in models], rows)]
        samples = perturbed[(perturbed["attack"] == attack) & (perturbed["example"] < n_samples)]
        if len(samples):
            rows = [[f"{r.rate:g}", str(r.example), _format_input(r.perturbed)] for r in samples.itertuples()]
            out += ["Samples:", "", markdown_table(["rate", "example", "perturbed"], rows)]
    return "\n".join(out)


def accuracy_band(accuracy: float, n: int) -> tuple[float, float]:
    """The 95% Wilson band of an accuracy over n examples scored 0/1 (the plot's shaded band); NaNs when n = 0."""
    from harness.results.stats import wilson_interval

    if not n or n <= 0 or math.isnan(accuracy):
        return math.nan, math.nan
    iv = wilson_interval(int(round(accuracy * n)), int(n))
    return iv.low, iv.high


def _plot(table: pd.DataFrame, title: str, path: str) -> None:
    """Accuracy vs rate, one line per model with its 95% Wilson band, one panel per attack."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    attacks_ = list(dict.fromkeys(table["attack"]))
    cols = min(3, len(attacks_)) or 1
    rows = max(1, math.ceil(len(attacks_) / cols))
    fig = Figure(figsize=(4 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, attack in zip(axes.flat, attacks_):
        sub = table[table["attack"] == attack]
        for model, msub in sub.groupby("model", sort=False):
            msub = msub.sort_values("rate")
            line, = ax.plot(msub["rate"], msub["accuracy"], marker="o", label=model)
            bands = [accuracy_band(acc, n) for acc, n in zip(msub["accuracy"], msub["n"])]
            ax.fill_between(msub["rate"], [lo for lo, _ in bands], [hi for _, hi in bands], color=line.get_color(),
                            alpha=0.15, linewidth=0)
        ax.set_title(attack)
        ax.set_xlabel("rate")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(attacks_):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.savefig(path, format="png", dpi=100)


def write_report(table: pd.DataFrame, perturbed: pd.DataFrame, out_dir: str | os.PathLike,
                 title: str = "Robustness", stem: str = "robustness") -> dict[str, Path]:
    """Markdown, CSV and PNG reports of a suite result -> paths under the keys ``markdown``, ``csv``,
    ``perturbed_csv`` and ``plot``. Pairs in ``perturbed`` are written as ``"a ||| b"`` in the CSV."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "csv": out / f"{stem}.csv",
             "perturbed_csv": out / f"{stem}_perturbed.csv", "plot": out / f"{stem}.png"}
    flat = perturbed.assign(original=perturbed["original"].map(_format_input),
                            perturbed=perturbed["perturbed"].map(_format_input))
    atomic_write_text(paths["markdown"], render_markdown(table, perturbed, title) + "\n")
    atomic_write(paths["csv"], lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(paths["perturbed_csv"], lambda tmp: flat.to_csv(tmp, index=False))
    atomic_write(paths["plot"], lambda tmp: _plot(table, title, tmp))
    return paths


# ---- two models attacked on the same examples -----------------------------------------------------
def read_flags(predictions: Path) -> dict[tuple[str, float, int], bool]:
    """A one-model attack run's predictions file (or its committed `<file>.gz`) -> {(attack, rate, example): correct}."""
    from harness.results.schema import read_jsonl

    return {(r["attack"], float(r["rate"]), int(r["example"])): bool(r["correct"]) for r in read_jsonl(predictions)}


def interval_cell(iv: dict | None) -> str:
    """An interval dict (stats.Interval.to_dict) of a proportion or difference -> "12.3 [4.5, 20.1]" (percent)."""
    if iv is None:
        return "–"
    return f"{100 * iv['estimate']:.1f} [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]"


def comparison_rows(pixar: dict, gpt2: dict, seed: int = 0) -> list[dict]:
    """Per (attack, rate): each model's accuracy + 95% Wilson interval, the paired PIXAR - GPT-2 difference and
    the paired difference of drops from clean ((PIXAR(r) - PIXAR(0)) - (GPT-2(r) - GPT-2(0))), both with
    paired bootstrap intervals over the same examples."""
    from harness.results.stats import paired_bootstrap_diff, proportion_interval

    if set(pixar) != set(gpt2):
        raise ValueError(f"the two attack runs scored different (attack, rate, example) sets "
                         f"({len(set(pixar) ^ set(gpt2))} in only one): rerun both with the same --limit and --seed")
    rows = []
    for attack, rate in sorted({(a, r) for a, r, _ in pixar}):
        ids = sorted(i for a, r, i in pixar if (a, r) == (attack, rate))
        p = [float(pixar[(attack, rate, i)]) for i in ids]
        g = [float(gpt2[(attack, rate, i)]) for i in ids]
        row = {"attack": attack, "rate": rate, "n": len(ids), "pixar": proportion_interval(p).to_dict(),
               "gpt2": proportion_interval(g).to_dict(), "diff": paired_bootstrap_diff(p, g, seed=seed).to_dict()}
        if rate > 0 and all((attack, 0.0, i) in pixar for i in ids):
            dp = [x - float(pixar[(attack, 0.0, i)]) for x, i in zip(p, ids)]
            dg = [x - float(gpt2[(attack, 0.0, i)]) for x, i in zip(g, ids)]
            row["drop_diff"] = paired_bootstrap_diff(dp, dg, seed=seed).to_dict()
        rows.append(row)
    return rows
