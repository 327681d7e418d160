"""The three kinds of attack run behind `pixar attack`, each writing its report files and returning its rows:

    run_text_attacks   text perturbations (harness.robustness.suite.run_suite) against every model
    run_pixel_attacks  pixel perturbations as a transform (attacks.seeded.PixelAttack) against pixel models
    run_recipes        TextAttack recipes (harness.robustness.textattack_bridge) against GLUE classifiers

`metric_rows` turns a suite table into harness.results.schema rows: accuracy under (attack, rate) with its 95% Wilson
interval; the row's protocol is the model's score label, so PIXAR's OCR accuracy and GPT-2's text accuracy
never share a column.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pixar.config_io import atomic_write_text

from harness.eval.protocols import count_token_cuts, fit_record
from harness.models import Reads
from harness.models.gpt2_baselines import PAPER_NEW_TOKENS
from harness.models.layout import left_fit
from harness.results.reference import reference_rows, status
from harness.results.schema import Metric, dumps, point, proportion
from harness.results.tables import markdown_table
from harness.robustness.pixel_identity import identity, sampled_pairs
from harness.robustness.suite import PERTURBED_COLUMNS, run_pixel_suite, run_suite, write_report
from harness.robustness.tasks import AttackConfigError, glyph_coverage, score_prediction
from harness.robustness.textattack_bridge import BADCHARS_SEARCH, BADCHARS_TYPES, RECIPES, run_recipe

RECIPE_COLUMNS = ["task", "recipe", "model", "n", "clean_accuracy", "num_attacked", "num_skipped", "num_succeeded",
                  "num_failed", "attack_success_rate", "accuracy_under_attack", "avg_num_queries",
                 "avg_words_perturbed", "avg_perturbed_word_share", "query_budget"]


def attack_metric(attack: str, rate: float) -> str:
    return f"accuracy under {attack} @ {rate:g}"


def _pixel_room(runner, positions: int, prompts: list[str]) -> tuple[int, str, list[bool]]:
    budget = runner.P - positions  # PixarRunner.first_words keeps P - positions context positions
    return budget, "positions", [left_fit(runner.renderer, p, budget) != runner.renderer.normalise(p) for p in prompts]


def _token_room(runner, positions: int, prompts: list[str]) -> tuple[int, str, list[bool]]:
    room, flags = count_token_cuts(runner.tokenizer, runner.hf_model.config.n_positions, PAPER_NEW_TOKENS, prompts)
    return room, "tokens", flags


FIRST_WORDS_FIT = {"pixar": _pixel_room, "gpt2": _token_room}  # runner kind -> the room its first_words leaves


def attack_fits(data, models) -> dict[str, dict]:
    """{model name: fit record} of the paper-protocol models on the task's clean prompts (GLUE classifiers: none):
    how many prompts first_words cut to fit the model (harness.eval.protocols.fit_record)."""
    prompts = [ex["text"] for ex in data.examples if isinstance(ex.get("text"), str) and "target" in ex]
    out = {}
    for m in models:
        room = FIRST_WORDS_FIT.get(m.kind) if prompts and m.positions else None
        if room is not None:
            budget, unit, flags = room(m.runner, int(m.positions), prompts)
            out[m.name] = {"model": m.name, **fit_record(f"attack: {m.metric}", budget, unit, flags)}
    return out


def metric_rows(table: pd.DataFrame, task: str, models, references: list[dict] | None = None,
                fits: dict[str, dict] | None = None) -> list[Metric]:
    """Schema rows of a suite table under "attack: <model's metric>" (+fit<N> when the model cut clean prompts to
    fit, `fits`); `references` (reference rows on the clean examples) add the note "at chance" to a row whose lower
    bound does not clear the best of them."""
    label = {m.name: (fits or {}).get(m.name, {}).get("label") or f"attack: {m.metric}" for m in models}
    rows = []
    for r in table.itertuples():
        m = proportion(task, r.model, label[r.model], attack_metric(r.attack, r.rate), r.accuracy, int(r.n))
        m.note = status(m.ci_low, references or []) or None
        rows.append(m)
    return rows


def attack_references(data, seed: int = 0) -> list[dict]:
    """Reference rows (harness.results.reference) on the task's clean examples: what trivial rules score."""
    examples = [{"prompt": ex["text"], "target": ex["target"]} if "target" in ex else {"label": ex["label"]}
                for ex in data.examples]
    return [r.to_dict() for r in reference_rows(getattr(data, "task_key", "") or data.name, examples, seed)]


def _jsonl(rows: list[dict]) -> str:
    return "".join(dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _prediction_json(pred):
    return pred.to_json() if isinstance(pred, Reads) else pred


def _recording(model):
    """model.predict wrapped to remember input -> prediction (for the predictions file)."""
    store: dict = {}

    def call(inputs: list) -> list:
        preds = list(model.predict(inputs))
        store.update(zip(inputs, preds))
        return preds

    return call, store


def run_pixel_attacks(data, models, attacks_: list[str], rates: list[float], seed: int, out: Path) -> dict:
    """Pixel-space attacks on the images pixel models render (each example perturbed from its own seed, via the
    runner's transform argument); token models have no pixels to attack. -> {'files', 'rows', 'metrics'}."""
    pixel_models = [m for m in models if m.supports_pixels]
    if not pixel_models:
        raise AttackConfigError(f"pixel attacks {attacks_} need a PIXAR model (--checkpoint); GPT-2 reads tokens")
    table, preds = run_pixel_suite(data.examples, attacks_, rates, pixel_models, score_prediction, seed)
    table = table.assign(task=data.name, metric=table["model"].map({m.name: m.metric for m in models}))
    stem = f"{data.name}-pixel"
    refs, fits = attack_references(data, seed), attack_fits(data, pixel_models)
    paths = write_report(table, pd.DataFrame(columns=PERTURBED_COLUMNS), out,
                         title=f"Accuracy under pixel-space attacks (PIXAR only): {data.name}", stem=stem,
                         references=refs)
    rows = [{"attack": a, "rate": r, "example": i, "model": name, "prediction": _prediction_json(p),
             "gold": data.examples[i].get("target", data.examples[i].get("label")),
             "correct": bool(score_prediction(p, data.examples[i]))} for a, r, name, i, p in preds]
    paths["predictions"] = out / f"{stem}_predictions.jsonl"
    atomic_write_text(paths["predictions"], _jsonl(rows))
    return {"files": {k: str(v) for k, v in paths.items()}, "rows": table.to_dict("records"), "references": refs,
            "fits": list(fits.values()), "metrics": metric_rows(table, data.name, pixel_models, refs, fits)}


def run_text_attacks(data, models, attacks_: list[str], rates: list[float], seed: int, out: Path) -> dict:
    """run_suite + write_report + predictions file + protocol notes; -> {'files', 'rows', 'metrics', ...}."""
    recorders = {m.name: _recording(m) for m in models}
    table, perturbed = run_suite(data.examples, attacks_, rates, {n: r[0] for n, r in recorders.items()},
                                 score=score_prediction, seed=seed)
    table = table.assign(task=data.name, metric=table["model"].map({m.name: m.metric for m in models}))
    refs, fits = attack_references(data, seed), attack_fits(data, models)
    paths = write_report(table, perturbed, out, title=f"Accuracy under attack: {data.name}", stem=data.name,
                         references=refs)
    notes = [f"Task `{data.name}`: {len(data.examples)} of {data.n_total} examples ({Path(data.source).name}); "
             "rate = severity per attack family (see attacks/__init__.py); [95% Wilson interval]. Metric per model:",
             ""]
    notes += [f"- `{m.name}`: {m.metric} -- {m.protocol}" for m in models]
    coverage = {}
    for m in (m for m in models if m.renderer is not None):
        coverage[m.name] = {a: glyph_coverage(m.renderer, sub["perturbed"].tolist())
                            for a, sub in perturbed[perturbed["rate"] > 0].groupby("attack", sort=False)}
        notes += [f"- `{m.name}` renderer: {c['no_glyph_fraction']:.2%} of the non-space characters of the attacked "
                  f"({a}) inputs have no glyph and are drawn as the replacement box: {c['no_glyph_chars']}"
                  for a, c in coverage[m.name].items() if c["no_glyph"]]
    notes += [f"- `{f['model']}`: {f['cut']} of {f['n']} clean prompts ({100 * f['share']:.1f}%) cut to {f['budget']} "
              f"{f['unit']} (each keeps its end; protocol label `{f['label']}`)" for f in fits.values() if f["cut"]]
    md = paths["markdown"].read_text(encoding="utf-8").split("\n", 1)
    atomic_write_text(paths["markdown"], md[0] + "\n\n" + "\n".join(notes) + "\n" + (md[1] if len(md) > 1 else ""))
    rows = []
    for r in perturbed.itertuples(index=False):
        example = data.examples[r.example]
        for m in models:
            pred = recorders[m.name][1][r.perturbed]
            rows.append({"attack": r.attack, "rate": r.rate, "example": r.example, "model": m.name,
                         "prediction": _prediction_json(pred), "gold": example.get("target", example.get("label")),
                         "correct": bool(score_prediction(pred, example))})
    paths["predictions"] = out / f"{data.name}_predictions.jsonl"
    atomic_write_text(paths["predictions"], _jsonl(rows))
    return {"files": {k: str(v) for k, v in paths.items()}, "rows": table.to_dict("records"), "references": refs,
            "fits": list(fits.values()), "pixar_glyph_coverage": coverage,
            "metrics": metric_rows(table, data.name, models, refs, fits)}


def run_recipes(data, models, recipes: list[str], seed: int, query_budget: int | None, out: Path) -> dict:
    """TextAttack recipes against every classifier; one table (Markdown + CSV) and records file per recipe. For a
    BadCharacters recipe and a model that reads pixels, also whether the perturbations change its pixels
    (harness.robustness.pixel_identity): over the search's own results and over seeded samples of its search space."""
    dataset = [(ex["text"], ex["label"]) for ex in data.examples]
    files, all_rows, metrics, pixels = {}, [], [], {}
    for recipe in recipes:
        rows, records = [], []
        for m in models:
            res = run_recipe(recipe, m.predict_proba, dataset, seed=seed, query_budget=query_budget)
            n = len(dataset)
            rows.append({"task": data.name, "recipe": recipe, "model": m.name, "n": n,
                         "clean_accuracy": res["num_attacked"] / n if n else float("nan"),
                         **{k: res[k] for k in RECIPE_COLUMNS if k in res},
                         "accuracy_under_attack": res["num_failed"] / n if n else float("nan"),
                         "query_budget": query_budget})
            records += [{"model": m.name, **r} for r in res["records"]]
            protocol = f"textattack {recipe}: {m.metric}"
            r = rows[-1]
            metrics += [proportion(data.name, m.name, protocol, f"{recipe} clean accuracy", r["clean_accuracy"], n),
                        proportion(data.name, m.name, protocol, f"{recipe} accuracy under attack",
                                   r["accuracy_under_attack"], n),
                        point(data.name, m.name, protocol, f"{recipe} avg queries", r["avg_num_queries"],
                              r["num_attacked"]),
                        point(data.name, m.name, protocol, f"{recipe} avg words perturbed", r["avg_words_perturbed"],
                              r["num_succeeded"])]
            if r["num_attacked"]:
                metrics.append(proportion(data.name, m.name, protocol, f"{recipe} attack success rate",
                                          r["attack_success_rate"], r["num_attacked"]))
            if recipe in BADCHARS_TYPES and m.renderer is not None:
                found = [(x["original"], x["perturbed"]) for x in res["records"] if x["status"] != "skipped"]
                sampled = sampled_pairs(BADCHARS_TYPES[recipe], [t for t, _ in dataset], seed,
                                        BADCHARS_SEARCH["perturbs"])
                pixels[f"{recipe} {m.name}"] = {"recipe": recipe, "model": m.name,
                                                "search_results": identity(m.renderer, found),
                                                "sampled": identity(m.renderer, sampled)}
                for key, what in (("search_results", "its search's candidates"), ("sampled", "seeded samples")):
                    iv = pixels[f"{recipe} {m.name}"][key]
                    if iv["n"]:
                        metrics.append(proportion(data.name, m.name, f"pixels unchanged: {recipe}, {what}",
                                                  f"{recipe} pixels unchanged ({key})", iv["share"], iv["n"]))
        df = pd.DataFrame(rows, columns=RECIPE_COLUMNS)
        stem = out / f"{data.name}-{recipe}"
        budget = (f" Search: BadCharacters2021 ({BADCHARS_TYPES[recipe]}), differential evolution with "
                  f"{BADCHARS_SEARCH}; target = the other class." if recipe in BADCHARS_TYPES else "")
        md = [f"# TextAttack {RECIPES[recipe]} on {data.name}", "",
              f"{len(dataset)} examples of {data.n_total} ({Path(data.source).name}), seed {seed}, query budget "
              f"{query_budget or 'none'} per example. attack_success_rate = succeeded / (succeeded + failed); "
              "skipped = already misclassified (clean_accuracy = 1 - skipped / n); accuracy_under_attack = "
              "failed / n; avg_num_queries over attacked examples; avg_words_perturbed (TextAttack's words "
              "perturbed) over succeeded attacks. Models are fine-tuned GLUE classifiers." + budget, "",
              markdown_table(RECIPE_COLUMNS[2:], [[r[c] for c in RECIPE_COLUMNS[2:]] for r in rows])]
        for v in (v for v in pixels.values() if v["recipe"] == recipe):
            md += ["", f"Pixels of `{v['model']}` unchanged by the perturbation (clean vs perturbed render): "
                   + "; ".join(f"{what}: {x['identical']} of {x['n']}" for what, x in
                               (("search candidates", v["search_results"]), ("seeded samples", v["sampled"])))]
        paths = {"markdown": Path(f"{stem}.md"), "csv": Path(f"{stem}.csv"), "records": Path(f"{stem}_records.jsonl")}
        atomic_write_text(paths["markdown"], "\n".join(md) + "\n")
        atomic_write_text(paths["csv"], df.to_csv(index=False))
        atomic_write_text(paths["records"], _jsonl(records))
        files[recipe] = {k: str(v) for k, v in paths.items()}
        all_rows += rows
    return {"files": files, "rows": all_rows, "metrics": metrics, "pixel_identity": list(pixels.values())}
