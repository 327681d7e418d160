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
from pixar.config_io import atomic_write, atomic_write_text

from harness.results.reference import NA_AT_CHANCE, diversity, first_word, is_at_chance, reference_rows, status
from harness.results.schema import read_jsonl
from harness.results.stats import mover_diff, paired_proportion_diff, proportion_interval, wilson_interval
from harness.results.tables import markdown_table

Model = Callable[[list[Input]], Sequence[Any]]
Score = Callable[[Any, Mapping[str, Any]], float]

TABLE_COLUMNS = ["attack", "rate", "model", "n", "accuracy", "distinct", "top_answer", "top_share"]
PERTURBED_COLUMNS = ["attack", "rate", "example", "original", "perturbed"]


class SuiteResult(NamedTuple):
    """``table``: one row per (attack, rate, model) with ``TABLE_COLUMNS``; ``perturbed``: one row per
    (attack, rate, example) with ``PERTURBED_COLUMNS`` (pairs are stored as tuples)."""

    table: pd.DataFrame
    perturbed: pd.DataFrame


def exact_match(prediction: Any, example: Mapping[str, Any]) -> float:
    """Default score: 1.0 if ``prediction == example["label"]`` else 0.0."""
    return float(prediction == example["label"])


def answer_of(prediction: Any) -> str:
    """The answer a prediction gives, for answer diversity: the first word of a paper-protocol `Reads`'s first
    reading, else the prediction itself (a class id)."""
    texts = getattr(prediction, "texts", None)
    if isinstance(texts, dict):
        return prediction_answer({"reads": texts})
    return str(prediction)


def _row(attack: str, rate: float, name: str, scores: list[float], preds: Sequence[Any]) -> tuple:
    d = diversity([answer_of(p) for p in preds])
    return (attack, float(rate), name, len(scores), sum(scores) / len(scores) if scores else math.nan,
            d["distinct"], d["top_answer"], d["top_share"])


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
                rows.append(_row(attack, rate, model_name, scores, preds))
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
                rows.append(_row(attack, rate, m.name, scores, preds))
                preds_out += [(attack, float(rate), m.name, i, p) for i, p in enumerate(preds)]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS), preds_out


# ------------------------------------------------------------------ reporting
def _format_input(value: Any) -> str:
    return " ||| ".join(value) if isinstance(value, (tuple, list)) else str(value)


def render_markdown(table: pd.DataFrame, perturbed: pd.DataFrame, title: str, n_samples: int = 3,
                    references: list[dict] | None = None) -> str:
    """Markdown: the reference rows (trivial rules on the clean examples, harness.results.reference), then per
    attack a rate x model accuracy table (95% Wilson intervals; **at chance** when the lower bound does not clear
    the best reference row; distinct answers and the top answer's share when recorded) and a few samples."""
    out = [f"# {title}", ""]
    refs = list(references or [])
    if refs:
        out += ["Reference rows on the same (clean) examples; a model whose 95% lower bound does not clear the best "
                "of them is marked **at chance**:", "",
                markdown_table(["reference", "n", "accuracy (95% CI)", "distinct answers (top, share)"],
                               [[r["name"], str(r["n"]), interval_cell(r), _answers_cell(r)] for r in refs])]
    models = list(dict.fromkeys(table["model"]))
    diverse = "distinct" in table.columns
    for attack, sub in table.groupby("attack", sort=False):
        out += [f"## {attack}", ""]
        rows = []
        for rate, rsub in sub.groupby("rate", sort=True):
            by_model = {r.model: r for r in rsub.itertuples()}
            cells = []
            for m in models:
                r = by_model.get(m)
                if r is None:
                    cells += [""] * (2 if diverse else 1)
                    continue
                lo, hi = accuracy_band(r.accuracy, int(r.n))
                mark = status(lo, refs)
                cells.append(f"{r.accuracy:.4f} [{lo:.2f}, {hi:.2f}]" + (f" **{mark}**" if mark else ""))
                if diverse:
                    cells.append(_answers_cell({"n": r.n, "distinct": r.distinct, "top_answer": r.top_answer,
                                                "top_share": r.top_share}))
            rows.append([f"{rate:g}", str(rsub["n"].iloc[0])] + cells)
        header = [c for m in models for c in ([f"{m} (95% CI)", f"{m} answers: distinct (top, share)"]
                                              if diverse else [f"{m} (95% CI)"])]
        out += [markdown_table(["rate", "n"] + header, rows)]
        samples = perturbed[(perturbed["attack"] == attack) & (perturbed["example"] < n_samples)]
        if len(samples):
            rows = [[f"{r.rate:g}", str(r.example), _format_input(r.perturbed)] for r in samples.itertuples()]
            out += ["Samples:", "", markdown_table(["rate", "example", "perturbed"], rows)]
    return "\n".join(out)


def accuracy_band(accuracy: float, n: int) -> tuple[float, float]:
    """The 95% Wilson band of an accuracy over n examples scored 0/1 (the plot's shaded band); NaNs when n = 0."""
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
                 title: str = "Robustness", stem: str = "robustness", references: list[dict] | None = None
                 ) -> dict[str, Path]:
    """Markdown, CSV and PNG reports of a suite result -> paths under the keys ``markdown``, ``csv``,
    ``perturbed_csv`` and ``plot``. Pairs in ``perturbed`` are written as ``"a ||| b"`` in the CSV."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "csv": out / f"{stem}.csv",
             "perturbed_csv": out / f"{stem}_perturbed.csv", "plot": out / f"{stem}.png"}
    flat = perturbed.assign(original=perturbed["original"].map(_format_input),
                            perturbed=perturbed["perturbed"].map(_format_input))
    atomic_write_text(paths["markdown"], render_markdown(table, perturbed, title, references=references) + "\n")
    bands = [accuracy_band(a, int(n)) for a, n in zip(table["accuracy"], table["n"])]
    numeric = table.assign(ci_low=[lo for lo, _ in bands], ci_high=[hi for _, hi in bands])  # 95% Wilson, numeric
    atomic_write(paths["csv"], lambda tmp: numeric.to_csv(tmp, index=False))
    atomic_write(paths["perturbed_csv"], lambda tmp: flat.to_csv(tmp, index=False))
    atomic_write(paths["plot"], lambda tmp: _plot(table, title, tmp))
    return paths


# ---- two models attacked on the same examples -----------------------------------------------------
def read_flags(predictions: Path) -> dict[tuple[str, float, int], bool]:
    """A one-model attack run's predictions file (or its committed `<file>.gz`) -> {(attack, rate, example): correct}."""
    return {(r["attack"], float(r["rate"]), int(r["example"])): bool(r["correct"]) for r in read_jsonl(predictions)}


def interval_cell(iv: dict | None) -> str:
    """An interval dict (stats.Interval.to_dict) of a proportion or difference -> "12.3 [4.5, 20.1]" (percent);
    a comparison withheld because a model is at chance -> "n/a (at chance)"."""
    if iv is None:
        return "–"
    if iv.get("withheld"):
        return iv["withheld"]
    return f"{100 * iv['estimate']:.1f} [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]"


DROP_HEADER = "drop difference: PIXAR drop - GPT-2 drop (drop = clean - attacked; > 0: PIXAR lost more, < 0: GPT-2 lost more)"
DIFF_HEADER = "PIXAR - GPT-2 (> 0: PIXAR ahead)"


def comparison_rows(pixar: dict, gpt2: dict, seed: int = 0, references: list | None = None) -> list[dict]:
    """Per (attack, rate): each model's accuracy + 95% Wilson interval, the paired PIXAR - GPT-2 difference
    (Newcombe's paired interval), each model's drop from clean (drop = clean - attacked, paired Newcombe
    interval over the same examples) and the drop difference PIXAR drop - GPT-2 drop (> 0: PIXAR lost more;
    MOVER interval from the two drops' intervals, conservative when the drops are positively correlated).

    references: reference rows (harness.results.reference, computed on the clean examples); a model whose Wilson
    lower bound does not clear the best of them is at chance ("pixar_at_chance" / "gpt2_at_chance"): the
    difference at that rate, and every drop involving a model at chance on clean examples, is withheld
    ({"withheld": "n/a (at chance)"}) rather than printed as a number. `seed` is kept for callers (the
    intervals are closed-form)."""

    if set(pixar) != set(gpt2):
        raise ValueError(f"the two attack runs scored different (attack, rate, example) sets "
                         f"({len(set(pixar) ^ set(gpt2))} in only one): rerun both with the same --limit and --seed")
    refs = list(references or [])
    withheld = {"withheld": NA_AT_CHANCE}
    rows = []
    for attack, rate in sorted({(a, r) for a, r, _ in pixar}):
        ids = sorted(i for a, r, i in pixar if (a, r) == (attack, rate))
        p = [float(pixar[(attack, rate, i)]) for i in ids]
        g = [float(gpt2[(attack, rate, i)]) for i in ids]
        ip, ig = proportion_interval(p), proportion_interval(g)
        row = {"attack": attack, "rate": rate, "n": len(ids), "pixar": ip.to_dict(), "gpt2": ig.to_dict(),
               "pixar_at_chance": is_at_chance(ip.low, refs), "gpt2_at_chance": is_at_chance(ig.low, refs)}
        chance = row["pixar_at_chance"] or row["gpt2_at_chance"]
        row["diff"] = withheld if chance else paired_proportion_diff(p, g).to_dict()
        if rate > 0 and all((attack, 0.0, i) in pixar for i in ids):
            pc = [float(pixar[(attack, 0.0, i)]) for i in ids]
            gc = [float(gpt2[(attack, 0.0, i)]) for i in ids]
            dp, dg = paired_proportion_diff(pc, p), paired_proportion_diff(gc, g)  # clean - attacked
            clean_chance = {"pixar": is_at_chance(proportion_interval(pc).low, refs),
                            "gpt2": is_at_chance(proportion_interval(gc).low, refs)}
            row["drop_pixar"] = withheld if clean_chance["pixar"] else dp.to_dict()
            row["drop_gpt2"] = withheld if clean_chance["gpt2"] else dg.to_dict()
            row["drop_diff"] = withheld if any(clean_chance.values()) else mover_diff(dp, dg).to_dict()
        rows.append(row)
    return rows


def prediction_answer(prediction) -> str:
    """The answer a predictions-file row gives: the first word of its first reading (paper protocol `Reads`
    JSON), else the prediction itself (a GLUE class id)."""
    if isinstance(prediction, dict) and "reads" in prediction:
        reads = list(prediction["reads"].values())
        return first_word(reads[0]) if reads else ""
    return str(prediction)


def read_attack_run(predictions: Path) -> dict:
    """A one-model attack run's predictions file -> {"flags": {(attack, rate, example): correct}, "answers":
    {(attack, rate): [answer per example]}, "examples": [{"prompt", "target"} per example, clean]}; prompts come
    from the run's `<stem>_perturbed.csv` (rate 0) when it is there (else examples carry the gold answer only)."""
    predictions = Path(predictions)
    rows = read_jsonl(predictions)
    flags = {(r["attack"], float(r["rate"]), int(r["example"])): bool(r["correct"]) for r in rows}
    answers: dict[tuple, dict[int, str]] = {}
    gold: dict[int, Any] = {}
    for r in rows:
        answers.setdefault((r["attack"], float(r["rate"])), {})[int(r["example"])] = prediction_answer(r.get("prediction", ""))
        gold[int(r["example"])] = r.get("gold")
    prompts: dict[int, str] = {}
    stem = predictions.name.split("_predictions.jsonl")[0]
    for csv in (predictions.with_name(f"{stem}_perturbed.csv"), predictions.with_name(f"{stem}_perturbed.csv.gz")):
        if csv.exists():
            table = pd.read_csv(csv)
            prompts = {int(r.example): str(r.original) for r in table[table["rate"] == 0].itertuples()}
            break
    examples = []
    for i in sorted(gold):
        ex = {"target": str(gold[i])} if not isinstance(gold[i], int) else {"label": gold[i]}
        if i in prompts:
            ex["prompt"] = prompts[i]
        examples.append(ex)
    return {"flags": flags, "examples": examples,
            "answers": {k: [v[i] for i in sorted(v)] for k, v in answers.items()}}


def attack_comparison(pixar_file: Path, gpt2_file: Path, task: str, seed: int = 0) -> dict:
    """Two attack runs on the same examples -> {"rows": comparison_rows, "references": reference rows on the clean
    examples, "diversity": {(attack, rate): {"pixar": ..., "gpt2": ...}}}."""
    a, b = read_attack_run(pixar_file), read_attack_run(gpt2_file)
    refs = [r.to_dict() for r in reference_rows(task, a["examples"], seed)]
    rows = comparison_rows(a["flags"], b["flags"], seed, refs)
    div = {k: {"pixar": diversity(a["answers"][k]), "gpt2": diversity(b["answers"].get(k, []))} for k in a["answers"]}
    for r in rows:
        r["diversity"] = div.get((r["attack"], r["rate"]))
    return {"rows": rows, "references": refs}


def _answers_cell(d: dict | None) -> str:
    return "" if not d or not d["n"] else f"{d['distinct']} ({d['top_answer'] or '(empty)'} {100 * d['top_share']:.0f}%)"


def _model_cell(iv: dict, at_chance: bool) -> str:
    return interval_cell(iv) + (" **at chance**" if at_chance else "")


def comparison_markdown(result: dict) -> str:
    """The comparison table (attack_comparison's result): reference rows on the clean examples, then per
    (attack, rate) both models with their status, answer diversity, the difference and the drop difference."""
    rows, refs = result["rows"], result["references"]
    header = ["attack", "rate", "n", "PIXAR acc.", "GPT-2 acc.", "PIXAR answers: distinct (top, share)",
              "GPT-2 answers: distinct (top, share)", DIFF_HEADER, DROP_HEADER]
    body = [[f"reference: {r['name']} (clean)", "", str(r["n"]), interval_cell(r), interval_cell(r),
             _answers_cell(r), "", "", ""] for r in refs]
    body += [[r["attack"] if r["rate"] > 0 else "none (clean)", f"{r['rate']:g}", str(r["n"]),
              _model_cell(r["pixar"], r["pixar_at_chance"]), _model_cell(r["gpt2"], r["gpt2_at_chance"]),
              _answers_cell((r.get("diversity") or {}).get("pixar")), _answers_cell((r.get("diversity") or {}).get("gpt2")),
              interval_cell(r["diff"]), interval_cell(r.get("drop_diff"))]
             for r in rows if r["rate"] > 0 or r["attack"] == rows[0]["attack"]]
    return markdown_table(header, body)
