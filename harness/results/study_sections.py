"""REPORT.md sections of the CPU round (issue 19), read from result files alone: GLUE with reference rows and seeds,
the TextAttack searches (DeepWordBug, BadCharacters) with the pixel-identity measurement, the attack figures, and the
family of comparisons the findings draw on with Holm's correction.

    glue_section(results, sums)              results/glue/seed0 (5 tasks) and results/glue-sst2-long/seed* (SST-2)
    recipe_section(results, sums, pairs)     <task>-<recipe>.csv + _records.jsonl of a PIXAR and a GPT-2 folder
    comparison_family(results, sums, ...)    every paired 0/1 comparison the findings cite: difference (Newcombe),
                                             exact McNemar p, Holm-adjusted p (stats.holm) -> rows + a table
"""
from __future__ import annotations

import re
from pathlib import Path

from harness.results.reference import NA_AT_CHANCE, is_at_chance, reference_rows
from harness.results.schema import read_jsonl
from harness.results.stats import (holm, mcnemar_exact_p, paired_proportion_diff, paired_table, proportion_interval,
                                   wilson_interval)
from harness.robustness.figures import RECIPE_NAMES

MAIN = {"sst2": "accuracy", "cola": "mcc", "mrpc": "f1", "stsb": "pearson", "rte": "accuracy", "qnli": "accuracy",
        "mnli": "accuracy", "qqp": "f1", "wnli": "accuracy"}
TASK_NAMES = {"sst2": "SST-2", "cola": "CoLA", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}


def _cell(m: dict | None, note: bool = True) -> str:
    if m is None:
        return "–"
    v = f"{100 * m['value']:.1f}"
    if m.get("ci_low") is not None:
        v += f" [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"
    return v + (" **at chance**" if note and m.get("note") == "at chance" else "")


def _glue_rows(summary: dict) -> dict:
    """{(task, kind or reference name, metric): metric row} of one GLUE summary."""
    kinds = {m["name"]: m["kind"] for m in summary.get("models", [])}
    return {(m["task"], kinds.get(m["model"], m["model"]), m["metric"]): m for m in summary["metrics"]}


def _record(results: Path, where: str, summary: dict, kind: str, task: str) -> dict | None:
    import json

    for f in summary["files"]:
        if f.endswith(f"/{task}/results.json") and f.startswith(f"{kind}-"):
            return json.loads((results / where / f).read_text())
    return None


def glue_predictions(results: Path, where: str, summary: dict, kind: str, task: str) -> dict[int, bool]:
    """{dev idx: correct} of one model's best-dev predictions (classification tasks)."""
    for f in summary["files"]:
        name = f[:-3] if f.endswith(".gz") else f
        if name.startswith(f"{kind}-") and re.search(rf"/{task}/predictions-[a-z_]+\.jsonl$", name):
            return {r["idx"]: r["label"] == r["prediction"] for r in read_jsonl(results / where / name)}
    return {}


def majority_f1(results: Path, where: str, summary: dict, task: str) -> float | None:
    """F1 of predicting the dev split's majority class for every example (the F1 a constant guess reaches)."""
    from collections import Counter

    for f in summary["files"]:
        name = f[:-3] if f.endswith(".gz") else f
        if re.search(rf"/{task}/predictions-[a-z_]+\.jsonl$", name):
            labels = [int(r["label"]) for r in read_jsonl(results / where / name)]
            top = Counter(labels).most_common(1)[0][0]
            tp, fp, fn = (sum(y == 1 for y in labels), sum(y == 0 for y in labels), 0) if top == 1 else (0, 0, 0)
            return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return None


def glue_section(results: Path, sums: dict) -> list[str]:
    lines = []
    seed0 = sums.get("glue/seed0")
    if seed0:
        rows = _glue_rows(seed0)
        tasks = list(dict.fromkeys(m["task"] for m in seed0["metrics"]))
        body = []
        for t in tasks:
            main = MAIN.get(t, "accuracy")
            rec = {k: _record(results, "glue/seed0", seed0, k, t) for k in ("pixar", "gpt2")}
            steps = "/".join(str(r["config"]["steps"]) for r in rec.values() if r)
            best = "/".join(str(r["best_step"]) for r in rec.values() if r)
            majority = rows.get((t, "reference: majority class", "accuracy"))
            for metric in dict.fromkeys([main, "accuracy"]):
                if (t, "pixar", metric) not in rows and (t, "gpt2", metric) not in rows:
                    continue
                ref, cells = "0 (any constant guess)", []
                if metric == "accuracy":
                    ref = _cell(majority, False)
                elif metric == "f1":  # the majority class predicted everywhere scores this F1, not 0
                    f1 = majority_f1(results, "glue/seed0", seed0, t)
                    ref = "–" if f1 is None else f"{100 * f1:.1f} (F1 of the majority class everywhere)"
                for kind in ("pixar", "gpt2"):
                    m = rows.get((t, kind, metric))
                    if m is not None and metric == "f1" and f1 is not None and m.get("ci_low") is not None \
                            and not m["ci_low"] > f1:
                        m = {**m, "note": "at chance"}
                    cells.append(_cell(m))
                n = (rows.get((t, "pixar", metric)) or rows.get((t, "gpt2", metric)))["n"]
                body.append(f"| {TASK_NAMES.get(t, t)} | {metric} | {n} | {steps} | {best} | {cells[0]} | {cells[1]} "
                            f"| {ref} |")
        lines += ["Seed 0, `glue/seed0` (full dev split of each task; % with 95% intervals: Wilson for accuracy, "
                  "seeded percentile bootstrap over dev examples for F1, MCC and Pearson; **at chance**: the lower bound "
                  "does not clear the majority row (accuracy), the majority class's F1 (F1) or 0 (MCC, correlations)). "
                  "Best-dev weights: the best "
                  "of the periodic evaluations on the same dev split, as the paper's protocol, so every value is "
                  "optimistic by the selection.", "",
                  "| task | metric | n dev | steps (PIXAR/GPT-2) | best step | PIXAR | GPT-2 | majority class |",
                  "|---|---|---|---|---|---|---|---|", *body, ""]
    seeds = sorted(w for w in sums if w.startswith("glue-sst2-long/seed"))
    if seeds:
        body, accs = [], {"pixar": [], "gpt2": []}
        for w in seeds:
            rows = _glue_rows(sums[w])
            p, g = rows.get(("sst2", "pixar", "accuracy")), rows.get(("sst2", "gpt2", "accuracy"))
            fp, fg = (glue_predictions(results, w, sums[w], k, "sst2") for k in ("pixar", "gpt2"))
            diff = "–"
            if any(m and m.get("note") == "at chance" for m in (p, g)):
                diff = NA_AT_CHANCE
            elif fp and set(fp) == set(fg):
                keys = sorted(fp)
                d = paired_proportion_diff([fp[k] for k in keys], [fg[k] for k in keys])
                diff = f"{100 * d.estimate:+.1f} pp [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"
            for k, m in (("pixar", p), ("gpt2", g)):
                if m:
                    accs[k].append(100 * m["value"])
            body.append(f"| {w.split('/')[-1]} | {p['n'] if p else '–'} | {_cell(p)} | {_cell(g)} | {diff} |")
        spread = {k: (f"{sum(v) / len(v):.1f} (range {min(v):.1f}-{max(v):.1f}, {len(v)} seeds)" if v else "–")
                  for k, v in accs.items()}
        majority = _glue_rows(sums[seeds[0]]).get(("sst2", "reference: majority class", "accuracy"))
        lines += ["SST-2 on the longer schedule (1,500 steps at lr 1e-3), one fine-tuning run per seed (seed = head "
                  "initialisation and data order; the pretrained models are the same), `glue-sst2-long/seed*`; "
                  "difference paired on the same dev sentences (Newcombe):", "",
                  "| seed | n dev | PIXAR accuracy | GPT-2 accuracy | PIXAR - GPT-2 |", "|---|---|---|---|---|", *body,
                  f"| mean over seeds | | {spread['pixar']} | {spread['gpt2']} | |",
                  f"| majority class | | {_cell(majority, False)} | | |", ""]
    probes = sorted(w for w in sums if w.startswith("glue-sst2-lr-probe/"))
    if probes:
        cells = []
        for w in probes:
            r = _record(results, w, sums[w], "pixar", "sst2")
            m = _glue_rows(sums[w]).get(("sst2", "pixar", "accuracy"))
            cells.append(f"lr {r['config']['lr']:g}, {r['config']['steps']} steps: {_cell(m)}" if r else w)
        lines += ["PIXAR's SST-2 learning-rate probe (seed 0, 400 steps; the same dev split selects and scores, so "
                  "this is a probe, not a sweep with a held-out choice): " + "; ".join(cells) + ".", ""]
    return lines


def _records(folder: Path, task: str, recipe: str) -> list[dict]:
    path = folder / f"{task}-{recipe}_records.jsonl"
    return read_jsonl(path) if path.exists() or path.with_name(path.name + ".gz").exists() else []


def recipe_rows(results: Path, pair: dict, recipe: str) -> dict | None:
    """Both models' rows of one recipe and the paired flags (correct under attack = the search failed)."""
    import pandas as pd

    out = {}
    for kind in ("pixar", "gpt2"):
        folder = results / pair[kind]
        csv = folder / f"{pair['task']}-{recipe}.csv"
        if not csv.exists():
            return None
        out[kind] = pd.read_csv(csv).iloc[0].to_dict()
        records = _records(folder, pair["task"], recipe)
        out[f"{kind}_flags"] = {r["index"]: r["status"] == "failed" for r in records}
        clean = [r["status"] != "skipped" for r in records]  # skipped = already wrong on the clean sentence
        refs = reference_rows(pair["task"], [{"label": r["label"]} for r in records])
        out["at_chance"] = out.get("at_chance", False) or not clean or is_at_chance(proportion_interval(clean).low, refs)
    return out


def _num(v, digits: int = 2) -> str:
    return "–" if v is None or v != v else f"{v:.{digits}f}"


def _pct_iv(k: float, n: int) -> str:
    if not n:
        return "–"
    iv = wilson_interval(round(k), int(n))
    return f"{100 * k / n:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]"


def recipe_section(results: Path, sums: dict, pairs: list[dict]) -> list[str]:
    lines = []
    for pair in pairs:
        if pair["pixar"] not in sums or pair["gpt2"] not in sums:
            continue
        recipes = sums[pair["pixar"]].get("recipes") or []
        body = []
        for recipe in recipes:
            r = recipe_rows(results, pair, recipe)
            if r is None:
                continue
            keys = sorted(r["pixar_flags"])
            diff = "–"
            if r["at_chance"]:
                diff = NA_AT_CHANCE
            elif keys and set(keys) == set(r["gpt2_flags"]):
                d = paired_proportion_diff([r["pixar_flags"][k] for k in keys], [r["gpt2_flags"][k] for k in keys])
                diff = f"{100 * d.estimate:+.1f} pp [{100 * d.low:+.1f}, {100 * d.high:+.1f}]"
            for kind, name in (("pixar", "PIXAR"), ("gpt2", "GPT-2")):
                x = r[kind]
                n = int(x["n"])
                body.append(f"| {RECIPE_NAMES.get(recipe, recipe)} | {name} | {n} | {100 * x['clean_accuracy']:.1f} | "
                            f"{_pct_iv(x['num_failed'], n)} | {_pct_iv(x['num_succeeded'], int(x['num_attacked']))} | "
                            f"{_num(x['avg_words_perturbed'])} | {_num(x['avg_num_queries'], 1)} | "
                            f"{diff if kind == 'pixar' else ''} |")
        if not body:
            continue
        lines += [f"**{pair['label']}** (`{pair['pixar']}` vs `{pair['gpt2']}`; TextAttack's own metrics: accuracy "
                  "under attack = examples the search could not flip / n; success rate = flipped / attacked "
                  "(attacked = correct on the clean sentence); words perturbed: TextAttack's count over successful "
                  "attacks, by word position (an inserted invisible or control character that splits a word shifts "
                  "every later word, so for BadCharacters it exceeds the one perturbation made); % with 95% Wilson "
                  "intervals; PIXAR - GPT-2 paired on the same sentences, Newcombe, or \"n/a (at chance)\" when a "
                  "model's clean accuracy does not clear the majority row):", "",
                  "| search | model | n | clean accuracy | accuracy under attack | attack success rate | "
                  "avg words perturbed | avg queries | PIXAR - GPT-2 under attack |",
                  "|---|---|---|---|---|---|---|---|---|", *body, ""]
        ident = ((sums[pair["pixar"]].get("tasks") or {}).get(pair["task"], {}).get("recipes") or {}).get(
            "pixel_identity") or []
        if ident:
            lines += ["Do the perturbations change PIXAR's pixels? Each perturbed sentence rendered beside its clean "
                      "sentence (pixels and attended positions compared):", "",
                      "| perturbation | perturbed sentences from the search vs PIXAR | identical renders | seeded samples "
                      "of the search space | identical renders |", "|---|---|---|---|---|"]
            for v in ident:
                s, m = v["search_results"], v["sampled"]
                lines.append(f"| {RECIPE_NAMES.get(v['recipe'], v['recipe'])} | {s['n']} | "
                             f"{_pct_iv(s['identical'], s['n'])} | {m['n']} | {_pct_iv(m['identical'], m['n'])} |")
            lines.append("")
    return lines


def comparison_family(items: list[tuple[str, list[bool], list[bool]]], alpha: float = 0.05) -> list[dict]:
    """[(label, flags a, flags b)] paired on the same examples -> rows with the difference (Newcombe), the exact
    McNemar p and Holm's adjusted p over the whole family."""
    rows = []
    for label, a, b in items:
        _, a_only, b_only, _ = paired_table(a, b)
        d = paired_proportion_diff(a, b)
        rows.append({"label": label, "n": len(a), "diff": d.to_dict(), "p": mcnemar_exact_p(a_only, b_only)})
    for r, h in zip(rows, holm([r["p"] for r in rows], alpha)):
        r.update(p_holm=h["p_holm"], survives=h["survives"])
    return rows


def family_markdown(rows: list[dict]) -> list[str]:
    body = [f"| {r['label']} | {r['n']} | {100 * r['diff']['estimate']:+.1f} pp [{100 * r['diff']['low']:+.1f}, "
            f"{100 * r['diff']['high']:+.1f}] | {r['p']:.2g} | {r['p_holm']:.2g} | {'yes' if r['survives'] else 'no'} |"
            for r in rows]
    return ["| comparison | n | difference | McNemar p | Holm p | survives (5%) |", "|---|---|---|---|---|---|", *body, ""]


def readability_section(results: Path, sums: dict, where: str = "lambada/readability-rescored") -> list[str]:
    """Per-engine and strict readability of the committed LAMBADA rows (harness.study.rescore_readability)."""
    s = sums.get(where)
    if not s:
        return []
    by = {(m["model"], m["metric"]): m for m in s["metrics"]}
    diffs = {c["metric"]: c for c in s.get("comparisons") or []}
    metrics = list(dict.fromkeys(m["metric"] for m in s["metrics"]))
    body = []
    for metric in metrics:
        d = diffs.get(metric)
        body.append(f"| {metric} | {_cell(by.get(('PIXAR stage 1', metric)), False)} | "
                    f"{_cell(by.get(('PIXAR stage 2 (α=1)', metric)), False)} | "
                    + (f"{100 * d['estimate']:+.1f} pp [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]" if d else "–")
                    + f" | {_cell(by.get(('GPT-2 tiny', metric)), False)} |")
    n = next(iter(by.values()))["n"]
    return [f"LAMBADA under `lambada:paper` (n = {n}), the earlier round's committed rows rescored from their stored "
            f"readings (`{where}`; the rescoring reproduces every stored union flag). `readability` is the paper's "
            "(union of our glyph decoder and Tesseract); `_glyph` / `_tesseract` one engine alone; `_strict`: first "
            "token with punctuation stripped, >= 3 letters, in the vocabulary (harness.eval.readability). % with 95% "
            "Wilson intervals; stage 2 - stage 1 paired on the same passages (Newcombe).", "",
            "| metric | PIXAR stage 1 | PIXAR stage 2 (α=1) | stage 2 - stage 1 | GPT-2 tiny |", "|---|---|---|---|---|",
            *body, ""]
