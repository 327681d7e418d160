"""Model-agnostic robustness runner and report writer.

:func:`run_suite` perturbs every example for each (attack, rate), asks each
model for predictions on the perturbed inputs and scores them. Models are
plain callables ``model(inputs: list[Input]) -> list[prediction]`` where an
``Input`` is a ``str`` or, for sentence-pair tasks, a ``(text_a, text_b)``
tuple (both texts are perturbed). Nothing here imports model code.

Determinism: example ``i`` under ``(attack, rate)`` is perturbed with
``random.Random(derive_seed(seed, attack, rate, i))``, a SHA-256 of those
values (never Python's salted ``hash()``), so a result does not depend on
the order of attacks or rates, on other examples, or on the process.

:func:`write_report` writes ``<stem>.md``, ``<stem>.csv``,
``<stem>_perturbed.csv`` and ``<stem>.png`` (accuracy vs rate, one line per
model, one subplot per attack), each atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import pandas as pd

from attacks import AttackUnavailableError, get_attack, perturb

Input = str | tuple[str, str]
Model = Callable[[list[Input]], Sequence[Any]]
Score = Callable[[Any, Mapping[str, Any]], float]

TABLE_COLUMNS = ["attack", "rate", "model", "n", "accuracy"]
PERTURBED_COLUMNS = ["attack", "rate", "example", "original", "perturbed"]


class SuiteResult(NamedTuple):
    """``table``: one row per (attack, rate, model) with ``TABLE_COLUMNS``;
    ``perturbed``: one row per (attack, rate, example) with
    ``PERTURBED_COLUMNS`` (pairs are stored as tuples)."""

    table: pd.DataFrame
    perturbed: pd.DataFrame


def derive_seed(seed: int, attack: str, rate: float, index: int) -> int:
    """Stable 64-bit seed from (seed, attack, rate, example index)."""
    key = f"{int(seed)}|{attack}|{float(rate)!r}|{int(index)}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def exact_match(prediction: Any, example: Mapping[str, Any]) -> float:
    """Default score: 1.0 if ``prediction == example["label"]`` else 0.0."""
    return float(prediction == example["label"])


def perturb_input(value: Input, attack: str, rate: float, rng: random.Random) -> Input:
    """Perturb a text or each text of a pair with the same ``rng``."""
    if isinstance(value, str):
        return perturb(value, attack, rate, rng)
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        return tuple(perturb(v, attack, rate, rng) for v in value)
    raise TypeError(f"input must be str or a tuple of str, got {value!r}")


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


def run_suite(
    examples: Sequence[Mapping[str, Any]],
    attack_names: Sequence[str],
    rates: Sequence[float],
    models: Mapping[str, Model],
    score: Score = exact_match,
    seed: int = 0,
    text_field: str = "text",
    cache: bool = True,
) -> SuiteResult:
    """Evaluate every model on every (attack, rate) perturbation of ``examples``.

    Args:
        examples: mappings holding the input under ``text_field`` (a ``str``
            or a ``(text_a, text_b)`` pair) plus whatever ``score`` reads.
        attack_names: registered text attacks (``attacks.ATTACKS``).
        rates: severities; include ``0`` for the clean baseline.
        models: name -> callable mapping a list of inputs to predictions.
        score: ``score(prediction, example) -> float``; the reported
            ``accuracy`` is its mean over examples (default: exact match
            against ``example["label"]``).
        seed: base seed; see the module docstring.
        text_field: key of the input in each example.
        cache: call each model only once per distinct input (rate 0 gives the
            same clean inputs for every attack); models must be deterministic.

    Returns:
        :class:`SuiteResult` ``(table, perturbed)``; unpackable as a tuple.
    """
    for name in attack_names:
        spec = get_attack(name)
        if spec.family == "pixel":
            raise ValueError(f"{name!r} is a pixel attack; run_suite perturbs text")
        if not spec.available:
            raise AttackUnavailableError(
                f"attack {name!r} is unavailable: {spec.unavailable_reason}")
    inputs = [ex[text_field] for ex in examples]
    rows, perturbed_rows = [], []
    caches: dict[str, dict[Input, Any]] = {name: {} for name in models}
    for attack in attack_names:
        for rate in rates:
            rngs = [random.Random(derive_seed(seed, attack, rate, i)) for i in range(len(inputs))]
            batch = [perturb_input(x, attack, rate, r) for x, r in zip(inputs, rngs)]
            perturbed_rows += [(attack, float(rate), i, x, y)
                               for i, (x, y) in enumerate(zip(inputs, batch))]
            for model_name, model in models.items():
                preds = _predict(model, model_name, batch, caches[model_name] if cache else None)
                scores = [float(score(p, ex)) for p, ex in zip(preds, examples)]
                acc = sum(scores) / len(scores) if scores else math.nan
                rows.append((attack, float(rate), model_name, len(scores), acc))
    return SuiteResult(pd.DataFrame(rows, columns=TABLE_COLUMNS),
                       pd.DataFrame(perturbed_rows, columns=PERTURBED_COLUMNS))


# ------------------------------------------------------------------ reporting

def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` then ``os.replace`` onto ``path`` (pixar.config.atomic_write)."""
    from pixar.config import atomic_write

    atomic_write(path, write)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _format_input(value: Any) -> str:
    return " ||| ".join(value) if isinstance(value, (tuple, list)) else str(value)


def render_markdown(table: pd.DataFrame, perturbed: pd.DataFrame, title: str,
                    n_samples: int = 3) -> str:
    """Markdown: per attack, a rate x model accuracy table and a few samples."""
    out = [f"# {title}", ""]
    models = list(dict.fromkeys(table["model"]))
    for attack, sub in table.groupby("attack", sort=False):
        out += [f"## {attack}", ""]
        pivot = sub.pivot(index="rate", columns="model", values="accuracy").reindex(columns=models)
        n = sub.groupby("rate")["n"].first()
        rows = [[f"{rate:g}", str(n[rate])] + [f"{pivot.loc[rate, m]:.4f}" for m in models]
                for rate in pivot.index]
        out += [_markdown_table(["rate", "n"] + models, rows), ""]
        samples = perturbed[(perturbed["attack"] == attack) & (perturbed["example"] < n_samples)]
        if len(samples):
            rows = [[f"{r.rate:g}", str(r.example), _format_input(r.perturbed)]
                    for r in samples.itertuples()]
            out += ["Samples:", "", _markdown_table(["rate", "example", "perturbed"], rows), ""]
    return "\n".join(out)


def _plot(table: pd.DataFrame, title: str, path: str) -> None:
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
            ax.plot(msub["rate"], msub["accuracy"], marker="o", label=model)
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
    """Write Markdown, CSV and PNG reports of a :func:`run_suite` result.

    Returns the written paths under the keys ``markdown``, ``csv``,
    ``perturbed_csv`` and ``plot``. Pairs in ``perturbed`` are written as
    ``"a ||| b"`` in the CSV.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "csv": out / f"{stem}.csv",
             "perturbed_csv": out / f"{stem}_perturbed.csv", "plot": out / f"{stem}.png"}
    flat = perturbed.assign(original=perturbed["original"].map(_format_input),
                            perturbed=perturbed["perturbed"].map(_format_input))
    markdown = render_markdown(table, perturbed, title)

    def write_text(tmp: str) -> None:
        Path(tmp).write_text(markdown + "\n", encoding="utf-8")

    _atomic_write(paths["markdown"], write_text)
    _atomic_write(paths["csv"], lambda tmp: table.to_csv(tmp, index=False))
    _atomic_write(paths["perturbed_csv"], lambda tmp: flat.to_csv(tmp, index=False))
    _atomic_write(paths["plot"], lambda tmp: _plot(table, title, tmp))
    return paths
