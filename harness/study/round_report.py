"""results/REPORT.md for the study as committed: the earlier seed-0 round (LAMBADA, bAbI, stage 2, bAbI attacks) and
the CPU round of harness.study.cpu_round (GLUE, SST-2 attacks, DeepWordBug, BadCharacters), from result files alone.

    python -m harness.study.round_report [--results results]

Step records (command, wall-clock) come from results/steps.json (committed: every step of both rounds, as recorded
by harness.study.steps or, for the round's two pretraining runs, by /usr/bin/time). The comparisons the findings draw
on form one family (`family_items`); each gets an exact McNemar p and Holm's correction over the family, and the
findings cite the counts as {{= comparisons}} / {{= survivors}}.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from harness.results.reference import is_at_chance, reference_rows
from harness.results.report import ReportError, prediction_rows, run_label, summaries, write_report
from harness.results.schema import read_jsonl
from harness.results.stats import proportion_interval
from harness.results.study_sections import (comparison_family, family_markdown, glue_predictions, glue_section,
                                            readability_section, recipe_rows, recipe_section)
from harness.robustness.figures import write_figures
from harness.robustness.suite import attack_comparison, read_attack_run
from harness.study.reproduce import ROBUSTNESS, comparisons

SST2 = {"label": "SST-2, fine-tuned classifiers (1,500 steps, seed 0), first 200 dev sentences", "task": "sst2",
        "pixar": "attack/sst2-pixar", "gpt2": "attack/sst2-gpt2", "file": "sst2_predictions.jsonl"}
BADCHARS = {"label": "SST-2, BadCharacters (first 100 dev sentences)", "task": "sst2",
            "pixar": "attack/sst2-badchars-pixar", "gpt2": "attack/sst2-badchars-gpt2"}
SEARCHES = [{**SST2, "label": "SST-2, DeepWordBug and Pruthi (first 200 dev sentences)"}, BADCHARS]
FIGURES = "attack/sst2-figures"


def _paired(a: dict, b: dict) -> tuple[list[bool], list[bool]]:
    keys = sorted(set(a) & set(b))
    return [bool(a[k]) for k in keys], [bool(b[k]) for k in keys]


def _clears(flags: list[bool], refs: list) -> bool:
    return not is_at_chance(proportion_interval(flags).low, refs)


def family_items(results: Path, sums: dict) -> tuple[list, list[str]]:
    """The paired comparisons the findings draw on, where both arms clear their reference rows; -> (items, labels of
    the comparisons left out because an arm is at chance)."""
    items, withheld = [], []

    def add(label, a, b, refs):
        if a and _clears(a, refs) and _clears(b, refs):
            items.append((label, a, b))
        elif a:
            withheld.append(label)

    for w, tasks in [("glue/seed0", ("sst2", "cola", "mrpc", "rte"))] + [
            (x, ("sst2",)) for x in sorted(x for x in sums if x.startswith("glue-sst2-long/seed"))]:
        if w not in sums:
            continue
        for task in tasks:
            labels = _labels(results, w, sums[w], task)
            if not labels:
                continue
            top = max(set(labels.values()), key=lambda v: (list(labels.values()).count(v), v))
            majority = {i: y == top for i, y in labels.items()}
            for kind, name in (("pixar", "PIXAR"), ("gpt2", "GPT-2")):
                a, b = _paired(glue_predictions(results, w, sums[w], kind, task), majority)
                if a:  # against the reference row itself: is the model above the majority class?
                    items.append((f"{task} accuracy, {name} - majority class ({w})", a, b))
        if task == "sst2" and w != "glue/seed0":
            fp, fg = (glue_predictions(results, w, sums[w], k, "sst2") for k in ("pixar", "gpt2"))
            a, b = _paired(fp, fg)
            refs = reference_rows("sst2", [{"label": int(v)} for v in labels.values()])
            add(f"SST-2 accuracy, PIXAR - GPT-2 ({w})", a, b, refs)
    if SST2["pixar"] in sums and SST2["gpt2"] in sums:
        pa, ga = (read_attack_run(results / SST2[k] / SST2["file"]) for k in ("pixar", "gpt2"))
        refs = reference_rows("sst2", pa["examples"])
        for attack, rate in sorted({(x, r) for x, r, _ in pa["flags"]}):
            if rate == 0 and attack != "swap":
                continue
            f = {k: {i: v for (x, r, i), v in run["flags"].items() if (x, r) == (attack, rate)}
                 for k, run in (("pixar", pa), ("gpt2", ga))}
            a, b = _paired(f["pixar"], f["gpt2"])
            add(f"SST-2 accuracy, PIXAR - GPT-2, {'clean' if rate == 0 else f'{attack} {rate:g}'} (attack run)", a, b, refs)
        for pair in SEARCHES:
            for recipe in sums.get(pair["pixar"], {}).get("recipes") or []:
                r = recipe_rows(results, pair, recipe)
                if r:
                    a, b = _paired(r["pixar_flags"], r["gpt2_flags"])
                    add(f"SST-2 accuracy under {recipe}, PIXAR - GPT-2", a, b, refs)
    flags = results / "lambada/readability-rescored/flags.jsonl"
    if (results / "lambada/readability-rescored/summary.json").exists():
        rows = read_jsonl(flags)
        for metric in ("readability_glyph", "readability_tesseract"):
            a = [r[f"PIXAR stage 2 (α=1) {metric}"] for r in rows]
            b = [r[f"PIXAR stage 1 {metric}"] for r in rows]
            items.append((f"{metric}, lambada: stage 2 (alpha 1) - stage 1 (rescored rows)", a, b))
    for p in comparisons():
        if p["a"] in sums and p["b"] in sums:
            la, lb = run_label(sums[p["a"]], p["protocol"]), run_label(sums[p["b"]], p["protocol"])
            fa = {r["idx"]: r["readable"] for r in prediction_rows(results, p["a"], sums[p["a"]], la)}
            fb = {r["idx"]: r["readable"] for r in prediction_rows(results, p["b"], sums[p["b"]], lb)}
            a, b = _paired(fa, fb)
            items.append((f"readability, {p['label']} ({la})", a, b))
    return items, withheld


def _labels(results: Path, where: str, summary: dict, task: str = "sst2") -> dict[int, int]:
    """{dev idx: gold label} of a GLUE task's dev predictions file."""
    for f in summary["files"]:
        name = f[:-3] if f.endswith(".gz") else f
        if name.endswith(f"/{task}/predictions-validation.jsonl"):
            return {r["idx"]: int(r["label"]) for r in read_jsonl(results / where / name)}
    return {}


def sections(results: Path, sums: dict, figures: bool = True) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """The round's report sections and the figures the findings cite as {{= name}}; figures=False leaves the attack
    figures folder untouched (its section is then omitted)."""
    out = [("Readability per engine (LAMBADA, committed rows)", readability_section(results, sums)),
           ("GLUE (fine-tuned dev)", glue_section(results, sums)),
           ("TextAttack searches: DeepWordBug and BadCharacters", recipe_section(results, sums, SEARCHES))]
    folders = [results / SST2[k] for k in ("pixar", "gpt2")] + [results / BADCHARS[k] for k in ("pixar", "gpt2")]
    if figures and all((f / "summary.json").exists() for f in folders):
        paths = write_figures(folders, results / FIGURES, "SST-2, fine-tuned tiny classifiers")
        out.append(("Attack figures", [f"![{k}]({p.relative_to(results).as_posix()})" for k, p in paths.items()
                                       if p.suffix == ".png"] + ["", f"Numbers: `{FIGURES}/attacks.md` / `.csv`.", ""]))
    items, withheld = family_items(results, sums)
    rows = comparison_family(items)
    lines = [f"The findings draw on these {len(rows)} paired comparisons (each on the same examples; exact McNemar "
             f"test; Holm's step-down correction over all {len(rows)} at 5%). "
             + (f"Left out because an arm does not clear its reference rows: {'; '.join(withheld)}." if withheld
                else ""), "", *family_markdown(rows)]
    out.append(("Comparisons and multiplicity", lines))
    values = {"comparisons": str(len(rows)), "survivors": str(sum(r["survives"] for r in rows)),
              "withheld": str(len(withheld))}
    babi = ROBUSTNESS[0]
    if babi["pixar"] in sums and babi["gpt2"] in sums:  # the best trivial rule on the attacked bAbI questions
        res = attack_comparison(results / babi["pixar"] / babi["file"], results / babi["gpt2"] / babi["file"], "babi")
        best = max(res["references"], key=lambda r: r["estimate"])
        values["babi_best_reference"] = (f"{100 * best['estimate']:.1f}% [{100 * best['low']:.1f}, {100 * best['high']:.1f}] "
                                         f"({best['name']}, n = {best['n']})")
    return out, values


def records(results: Path) -> list[dict]:
    path = results / "steps.json"
    if not path.exists():
        raise ReportError(f"{path}: no step records")
    return json.loads(path.read_text())


def header(recs: list[dict]) -> str:
    by_round = {}
    for r in recs:
        by_round[r.get("round", "")] = by_round.get(r.get("round", ""), 0) + r["seconds"]
    cost = "; ".join(f"{k}: {v / 60:.0f} min" for k, v in by_round.items())
    return ("Two rounds, both on a shared 2-core CPU machine (no GPU), recorded step by step below (" + cost + "). "
            "Every number below is read from the result folders named beside it; intervals are 95% (Wilson for "
            "proportions, Newcombe's paired interval for differences of 0/1 outcomes on the same examples, seeded "
            "bootstrap for F1/MCC/correlations; a model marked **at chance** does not clear the best reference row). "
            "Protocols are named (docs/protocol.md) and never share a column. Regenerate with "
            "`python -m harness.study.round_report`.")


@click.command()
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False))
def main(results):
    """Write results/REPORT.md from the committed result files."""
    res = Path(results)
    recs = records(res)
    try:
        secs, values = sections(res, summaries(res))
        path = write_report(res, recs, seed=0, pairs=comparisons(), robustness=ROBUSTNESS + [SST2],
                            sections=lambda r, s: secs, values=values, header=header(recs))
    except ReportError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
