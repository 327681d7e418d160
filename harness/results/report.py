"""results/REPORT.md, written from the result files alone (nothing here types a number).

Every table comes from a `summary.json` of the one results schema (harness.results.schema.read_summary: an older
summary is refused with one line) or from committed per-example prediction files; every interval is the one in
the summary (Wilson / lm-eval stderr) or a paired interval (Newcombe's, for 0/1 flags) computed here from the two prediction files of the
same examples (harness.eval.protocols.paired_difference, seeded). The prose is results/findings.md, a template
whose figures are references resolved from the summaries:

    {{lambada/stage2 | pixar | lambada:paper | acc_union}}   -> "0.0% [0.0, 0.1]"  (value and its 95% interval)
    {{diff lambada/stage2 - lambada/stage1-vs-gpt2 | lambada:paper | correct_union}}   -> "+1.2 pp [-0.3, 2.8]"
    {{diff a - b | protocol | readable | pixar | common}}   -> paired on the examples both runs scored, "(n = ...)" added
    {{cmp folder | metric}}   -> a paired comparison the folder's summary stores under "comparisons"
    {{= name}}                -> a figure the report computed from the result files (write_report's `values`)

(folder relative to results/, a model-name prefix, the protocol label, the metric), so a finding cannot drift
from its number; an unresolvable reference stops the report with one line. The paper's published numbers come
from results/paper-numbers.json (with their source).

"exact" / "exactly" are reserved for runs that cut no prompt: a findings paragraph (or bullet) using either word
may cite only runs whose summary records zero prompts cut under the cited protocol (bench's "fits"); a run that
cut prompts (label `+fit<N>`) or records nothing about cuts (older summaries, attack runs) stops the report with
one line naming the reference (`check_exact_words`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from pixar.config_io import atomic_write_text
from pixar.errors import PixarError
from pixar.provenance import slug

from harness.eval.protocols import paired_difference
from harness.eval.step_curve import plot_curve, read_curve
from harness.results.schema import ResultsError, read_jsonl, read_summary, write_jsonl
from harness.results.tables import metrics_table, to_markdown
from harness.robustness.suite import attack_comparison, comparison_markdown

REF = re.compile(r"\{\{(.+?)\}\}")
EXACT = re.compile(r"\bexact(ly)?\b", re.IGNORECASE)


class ReportError(PixarError, ValueError):
    """A results folder or findings reference the report cannot resolve; the message names it."""


# ---- reading -----------------------------------------------------------------------------------
def summaries(results: Path) -> dict[str, dict]:
    """{folder relative to results/: summary} for every summary.json below `results` (schema checked)."""
    out = {}
    for path in sorted(results.rglob("summary.json")):
        out[path.parent.relative_to(results).as_posix()] = read_summary(path)
    return out


def jsonl_rows(path: Path) -> list[dict]:
    """Rows of a JSONL file or of its committed gzipped copy (`<path>.gz`)."""
    try:
        return read_jsonl(path)
    except FileNotFoundError as e:
        raise ReportError(f"{e} (prediction file)") from None


def metric(summary: dict, where: str, model: str, protocol: str, name: str) -> dict:
    """The one metric row of `summary` (folder `where`) for a model-name prefix, protocol label and metric;
    `task@model` picks the task too (a GLUE summary has one accuracy per task)."""
    task, _, model = model.rpartition("@")
    rows = [m for m in summary["metrics"] if m["model"].startswith(model) and m["protocol"] == protocol
            and m["metric"] == name and (not task or m["task"] == task)]
    if len(rows) != 1:
        raise ReportError(f"{where}: {len(rows)} metric rows for model {model!r}, protocol {protocol!r}, "
                          f"metric {name!r} (need exactly one)")
    return rows[0]


def prediction_rows(results: Path, where: str, summary: dict, protocol: str, model: str = "pixar") -> list[dict]:
    """The per-example rows a bench run wrote for (model prefix, protocol label) (files named in the summary)."""
    pattern = re.compile(rf"^predictions-{re.escape(slug(model))}.*-{re.escape(slug(protocol))}(-qa\d+)?\.jsonl$")
    for name in summary["files"]:
        stem = name[:-3] if name.endswith(".gz") else name
        if pattern.match(stem):
            return jsonl_rows(results / where / stem)
    raise ReportError(f"{where}: no prediction file for model {model!r} under protocol {protocol!r}")


# ---- formatting --------------------------------------------------------------------------------
def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def with_interval(m: dict) -> str:
    if m["metric"] in ("mcc", "pearson", "spearman") and m.get("ci_low") is not None:  # not proportions: x100, no %
        return f"{100 * m['value']:.1f} [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}] (x100)"
    if m.get("ci_low") is None:
        return pct(m["value"]) if m["metric"].startswith(("acc", "readab", "paper_acc")) else f"{m['value']:.4g}"
    if m["metric"].endswith(("_nll", "_ppl")):
        return f"{m['value']:.4g} [{m['ci_low']:.4g}, {m['ci_high']:.4g}]"
    return f"{pct(m['value'])} [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"


def diff_text(d: dict) -> str:
    return f"{100 * d['estimate']:+.1f} pp [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def paired(results: Path, sums: dict, a: str, b: str, protocol: str, flag: str, model: str = "pixar",
           seed: int = 0, common: bool = False, protocol_b: str | None = None) -> dict:
    """Paired interval (Newcombe for 0/1 flags) of mean(flag in run a) - mean(flag in run b) over the same examples
    (common: over the examples both runs scored); run b read under `protocol_b` when given."""
    for where in (a, b):
        if where not in sums:
            raise ReportError(f"results/{where}: no summary.json")
    rows_a = prediction_rows(results, a, sums[a], protocol, model)
    rows_b = prediction_rows(results, b, sums[b], protocol_b or protocol, model)
    try:
        return paired_difference(rows_a, rows_b, flag, seed=seed, common=common).to_dict()
    except ValueError as e:
        raise ReportError(f"{a} vs {b}: {e}") from None


def resolve(ref: str, results: Path, sums: dict) -> str:
    """One findings reference (see the module docstring) -> its formatted figure."""
    parts = [p.strip() for p in ref.split("|")]
    if parts[0].startswith("cmp ") and len(parts) == 2:  # a paired comparison a summary stores ("comparisons")
        where = parts[0][4:].strip()
        found = [c for c in (sums.get(where) or {}).get("comparisons") or [] if c["metric"] == parts[1]]
        if len(found) != 1:
            raise ReportError(f"findings: {{{{{ref}}}}}: {len(found)} comparisons for metric {parts[1]!r} in "
                              f"results/{where} (need exactly one)")
        return diff_text(found[0])
    try:
        if parts[0].startswith("diff "):
            a, b = (x.strip() for x in parts[0][5:].split(" - "))
            protocol, flag = parts[1], parts[2]
        else:
            where, model, protocol, name = parts
    except (ValueError, IndexError):
        raise ReportError(f"findings: malformed reference {{{{{ref}}}}}") from None
    if parts[0].startswith("diff "):
        model = parts[3] if len(parts) > 3 and parts[3] else "pixar"
        common = len(parts) > 4 and parts[4] == "common"  # paired on the examples both runs scored
        try:
            d = paired(results, sums, a, b, protocol, flag, model, common=common)
        except ReportError as e:
            raise ReportError(f"findings: {{{{{ref}}}}}: {e}") from None
        return diff_text(d) + (f" (n = {d['n']})" if common else "")
    if where not in sums:
        raise ReportError(f"findings: {{{{{ref}}}}}: results/{where} has no summary.json")
    return with_interval(metric(sums[where], where, model, protocol, name))


def cut_status(summary: dict, protocol: str, model: str) -> str:
    """Whether a run cut prompts under `protocol` for models named `model`*: "none" (its summary records zero cuts),
    "cut N of M" (label `+fit` or a record of cuts) or "not recorded"."""
    if "+fit" in protocol:
        return "cut (its label says +fit)"
    fits = [f for f in summary.get("fits") or [] if f["model"].startswith(model) and f["label"] == protocol]
    if not fits:
        return "not recorded"
    cut = sum(f["cut"] for f in fits)
    return "none" if cut == 0 else f"cut {cut} of {sum(f['n'] for f in fits)}"


def _ref_runs(ref: str) -> list[tuple[str, str, str]]:
    """(folder, protocol, model prefix) of every run a findings reference cites."""
    parts = [p.strip() for p in ref.split("|")]
    if parts[0].startswith("diff ") and len(parts) >= 3:
        model = parts[3] if len(parts) > 3 and parts[3] else "pixar"
        return [(x.strip(), parts[1], model) for x in parts[0][5:].split(" - ")]
    if len(parts) == 4:
        return [(parts[0], parts[2], parts[1])]
    return []


def check_exact_words(text: str, sums: dict) -> None:
    """ReportError when a paragraph of `text` says "exact"/"exactly" and cites a run that cut prompts (or does not
    record whether it did): those words are reserved for runs that cut nothing."""
    for block in re.split(r"\n\s*\n|\n(?=- )", text):
        word = EXACT.search(REF.sub("", block))
        if not word:
            continue
        for ref in REF.findall(block):
            for where, protocol, model in _ref_runs(ref):
                status = cut_status(sums.get(where, {}), protocol, model) if where in sums else "not recorded"
                if status != "none":
                    raise ReportError(f"findings: {word.group(0)!r} in a paragraph citing {{{{{ref.strip()}}}}}, "
                                      f"whose run results/{where} under {protocol} has prompts {status}: "
                                      "'exact'/'exactly' are reserved for runs that cut no prompt")


def render_findings(text: str, results: Path, sums: dict, values: dict[str, str] | None = None) -> str:
    """Resolve every reference; `{{= name}}` takes a figure the report computed from the result files (`values`)."""
    check_exact_words(text, sums)

    def one(ref: str) -> str:
        if ref.strip().startswith("="):
            name = ref.strip()[1:].strip()
            if name not in (values or {}):
                raise ReportError(f"findings: {{{{{ref}}}}}: no computed value {name!r} (have: {sorted(values or {})})")
            return values[name]
        return resolve(ref, results, sums)

    return REF.sub(lambda m: one(m.group(1)), text)


# ---- sections ----------------------------------------------------------------------------------
def run_section(where: str, summary: dict) -> list[str]:
    """One result folder: what ran (command, seed, data), its metrics with intervals, its comparisons."""
    cfg = summary.get("config", {})
    lines = [f"### `{where}`", "",
             f"`pixar {summary['command']}`, seed {summary.get('seed')}; models: "
             + ", ".join(f"`{m['name']}`" for m in summary.get("models", [])) + ".", ""]
    if cfg.get("limit"):
        lines[-2] = lines[-2][:-1] + f"; first {cfg['limit']} examples."
    df = metrics_table(summary["metrics"])
    if len(df):
        lines += [to_markdown(df).strip(), ""]
    lines += fit_lines(summary)
    comps = summary.get("comparisons") or []
    if comps:
        lines += ["Paired differences on the same examples (PIXAR - GPT-2, 95%: Newcombe's paired interval for 0/1 flags):", ""]
        lines += [f"- {c['protocol']}, {c['metric']}: {diff_text(c)} ({c['a']} vs {c['b']}, n = {c['n']})"
                  for c in comps]
        lines.append("")
    return lines


def fit_lines(summary: dict) -> list[str]:
    """What the run's protocol labels hide or show about prompt cutting."""
    if not summary.get("command", "").startswith("bench "):
        return []
    fits = summary.get("fits")
    if fits is None:
        return ["Prompt cuts not recorded (a summary written before `+fit` labels): these protocol labels do not say "
                "whether prompts were cut to fit the model.", ""]
    cut = [f for f in fits if f["cut"]]
    if not cut:
        return ["No prompt was cut to fit any model.", ""] if fits else []
    return ["Prompts cut to fit the model (each keeps its end):", ""] + [
        f"- `{f['label']}` ({f['model']}): {f['cut']:,} of {f['n']:,} prompts ({100 * f['share']:.1f}%) cut to "
        f"{f['budget']} {f['unit']}" for f in cut] + [""]


def stage_comparison(results: Path, sums: dict, pairs: list[dict]) -> list[str]:
    """Stage 2 (or an alpha variant) vs stage 1 on the same examples: both flags, Newcombe's paired interval."""
    if not pairs:
        return []
    lines = ["| comparison | protocol | n | accuracy difference | readability difference |", "|---|---|---|---|---|"]
    for p in pairs:
        if p["a"] not in sums or p["b"] not in sums:
            continue  # a study step not run (yet): nothing to compare
        la, lb = run_label(sums[p["a"]], p["protocol"]), run_label(sums[p["b"]], p["protocol"])
        shown = la if la == lb else f"{la} vs {lb}"
        try:
            acc = paired(results, sums, p["a"], p["b"], la, "correct_union", common=p.get("common", False), protocol_b=lb)
            read = paired(results, sums, p["a"], p["b"], la, "readable", common=p.get("common", False), protocol_b=lb)
        except ReportError as e:
            lines.append(f"| {p['label']} | {shown} | | not available: {e} | |")
            continue
        lines.append(f"| {p['label']} | {shown} | {acc['n']} | {diff_text(acc)} | {diff_text(read)} |")
    return lines + [""]


def run_label(summary: dict, protocol: str, model: str = "pixar") -> str:
    """The label a run reports `protocol` under for `model`*: `<protocol>+fit<N>` when its summary records cuts."""
    labels = {f["label"] for f in summary.get("fits") or [] if f["protocol"] == protocol and f["model"].startswith(model)}
    return labels.pop() if len(labels) == 1 else protocol


def curve_section(results: Path) -> list[str]:
    """The stage-2 step curves committed under results/stage2-curve/ (copied from the runs' metrics.jsonl)."""
    folder = results / "stage2-curve"
    runs = {p.stem: p for p in sorted(folder.glob("*.jsonl"))} if folder.exists() else {}
    if not runs:
        return []

    points = {k: jsonl_rows(v) for k, v in runs.items()}
    png = plot_curve(points, folder / "curve.png", "stage-2 step curve")
    by_step: dict[int, dict[str, dict]] = {}
    for name, rows in points.items():
        for r in rows:
            by_step.setdefault(r["step"], {})[name] = r
    names = list(points)
    lines = ["Readability / accuracy (glyph read-back) of each run on the fixed prompt set "
             f"(n = {', '.join(sorted({str(r['n']) for rows in points.values() for r in rows}))}):", "",
             "| step | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for step in sorted(by_step):
        cells = [f"{pct(c['readability'])} / {pct(c['acc'])}" if (c := by_step[step].get(n)) else "" for n in names]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines + ["", f"![stage-2 step curve]({png.relative_to(results).as_posix()})", ""]


def robustness_section(results: Path, sums: dict, pairs: list[dict]) -> list[str]:
    """PIXAR vs GPT-2 attacked on the same examples with the same perturbations ({label, pixar, gpt2, file}: two
    attack folders and their predictions file): reference rows, accuracy with Wilson intervals and at-chance
    marks, answer diversity, the paired difference and the drop difference (PIXAR drop - GPT-2 drop, drop = clean
    - attacked) from harness.robustness.suite.attack_comparison."""
    lines = []
    for p in pairs:
        if p["pixar"] not in sums or p["gpt2"] not in sums:
            continue
        task = p.get("task") or p["file"].split("_predictions")[0]
        try:
            result = attack_comparison(results / p["pixar"] / p["file"], results / p["gpt2"] / p["file"], task)
        except (OSError, ValueError) as e:
            lines += [f"{p['label']}: not available ({e})", ""]
            continue
        lines += [f"**{p['label']}** (`{p['pixar']}` vs `{p['gpt2']}`; % with 95% intervals: Wilson for each model "
                  "and reference row, Newcombe's paired interval for the difference, MOVER for the drop difference; "
                  "**at chance** = the lower bound does not clear the best reference row, and then comparisons "
                  "read \"n/a (at chance)\"):", "", comparison_markdown(result).strip(), ""]
    return lines


def paper_section(results: Path) -> list[str]:
    path = results / "paper-numbers.json"
    if not path.exists():
        return []
    paper = json.loads(path.read_text())
    lines = [f"Source: {paper['source']}. Their union is PaddleOCR or Tesseract; ours is our glyph decoder or "
             "Tesseract (PaddleOCR is not available offline), so compare Tesseract with Tesseract.", "",
             "| task | stage | PaddleOCR | Tesseract | union | readability |", "|---|---|---|---|---|---|"]
    for task, stages in paper["numbers"].items():
        for stage, v in stages.items():
            lines.append(f"| {task} | {stage} | {pct(v['acc_paddle'])} | {pct(v['acc_tesseract'])} | "
                         f"{pct(v['acc_union'])} | {pct(v['readability'])} |")
    return lines + [""]


def copy_curves(runs: Path, results: Path, names: dict[str, str]) -> None:
    """Copy the step-curve records of stage-2 runs ({label: run folder under runs/}) into results/stage2-curve/."""
    for label, run in names.items():
        if (runs / run / "metrics.jsonl").exists():
            points = read_curve(runs / run)
            if points:
                write_jsonl(results / "stage2-curve" / f"{label}.jsonl", points)


def write_report(results: Path, records: list[dict], seed: int, pairs: list[dict] | None = None,
                 planned: list[str] | None = None, robustness: list[dict] | None = None,
                 sections=None, values: dict[str, str] | None = None, header: str | None = None) -> Path:
    """results/REPORT.md from results/ alone: steps, findings (references resolved), the paper's numbers, stage
    comparisons, the step curve, then every result folder's metrics with intervals, and the benchmarks.
    `sections(results, sums) -> [(title, lines)]` adds sections after the robustness tables; `values` are the
    figures findings cite as `{{= name}}`; `header` replaces the opening paragraph."""
    results = Path(results)
    try:
        sums = summaries(results)
    except ResultsError as e:
        raise ReportError(str(e)) from None
    total = sum(r["seconds"] for r in records)
    L = ["# PIXAR at CPU scale: reproduction report", "",
         f"Seed {seed}. `PIXAR_DATA=../shared/data pixar reproduce` re-creates everything here (steps already done "
         f"are skipped); the recorded steps add up to {total / 60:.0f} min on a shared 2-core CPU machine (no GPU). "
         "Every number below is read from the result folders named beside it; intervals are 95% (Wilson for "
         "proportions, Newcombe's paired interval for differences of 0/1 outcomes on the same examples; a model marked "
         "**at chance** does not clear the best reference row). Protocols are named "
         "(docs/protocol.md) and never share a column.", ""]
    if header:
        L[2] = header
    extra = sections(results, sums) if sections else []
    findings = results / "findings.md"
    if findings.exists():
        L += ["## Findings", "", render_findings(findings.read_text().strip(), results, sums, values), ""]
    if any(r.get("round") for r in records):  # several rounds: say which each step belongs to, and its note
        L += ["## Steps", "", "| round | step | command | wall-clock | note |", "|---|---|---|---|---|"]
        L += [f"| {r.get('round', '')} | {r['name']} | `{r['command']}` | {r['seconds'] / 60:.1f} min | "
              f"{r.get('note', '')} |" for r in records] + [""]
    else:
        L += ["## Steps", "", "| step | command | wall-clock |", "|---|---|---|"]
        L += [f"| {r['name']} | `{r['command']}` | {r['seconds'] / 60:.1f} min |" for r in records] + [""]
    done = {r["name"] for r in records}
    if missing := [name for name in planned or [] if name not in done]:
        L += ["Steps of the study not run for this report (their result folders are absent): "
              + ", ".join(missing) + ".", ""]
    if paper := paper_section(results):
        L += ["## The paper's numbers (113M model)", ""] + paper
    if stage := stage_comparison(results, sums, pairs or []):
        L += ["## Stage 2 vs stage 1 on the same examples", ""] + stage
    if robust := robustness_section(results, sums, robustness or []):
        L += ["## Robustness: PIXAR vs GPT-2 on the same perturbed examples", ""] + robust
    L += [x for title, lines in extra if lines for x in [f"## {title}", "", *lines]]
    if curve := curve_section(results):
        L += ["## Stage-2 step curve", ""] + curve
    L += ["## Results by folder", ""]
    for where, summary in sums.items():
        L += run_section(where, summary)
    bench = results / "benchmarks.txt"
    if bench.exists():
        L += ["## Performance (`make bench`)", "", "Every ratio is measured against its baseline in the same run.", "",
              "```", bench.read_text().strip(), "```", ""]
    path = results / "REPORT.md"
    atomic_write_text(path, "\n".join(L) + "\n")
    return path
