"""`pixar reproduce`: the CPU-scale reproduction study, a list of ordinary `pixar` commands (harness.steps), then
results/REPORT.md (harness.report) written from the result files alone.

pixar-tiny stage 1 + 2 and gpt2-tiny on the book corpus; LAMBADA and bAbI under the named protocols; bAbI
fine-tuned; attacks; a GLUE subset; the stage-2 alpha sweep. Steps already done are skipped.
"""
from __future__ import annotations

from pathlib import Path

import click

from .steps import Step, read_records, run_steps


# ---- reproduce ----------------------------------------------------------------------------------
def reproduce_steps(runs: Path, results: Path, seed: int) -> list[Step]:
    s1, s2, gpt = runs / "pixar-tiny-stage1", runs / "pixar-tiny-stage2", runs / "gpt2-tiny"
    from .glue_cli import model_tag

    clf = runs / "glue-classifiers"
    G = str(gpt / "final")
    clf_sst2 = runs / "glue-classifiers-sst2-long"  # SST-2 classifiers fine-tuned longer, for the attack suite
    px_clf, gpt_clf = clf_sst2 / model_tag("pixar", str(s1)) / "sst2", clf_sst2 / model_tag("gpt2", G) / "sst2"
    R = results
    babi_ft = ["--finetune", "--finetune-steps", "400", "--finetune-batch", "8"]
    steps = [
        Step("stage 1", ["train", "--stage", "1", "--config", "pixar-tiny", "--out", str(s1)], str(s1 / "last")),
        Step("stage 2", ["train", "--stage", "2", "--init", str(s1), "--config", "pixar-tiny", "--out", str(s2)], str(s2 / "last")),
        Step("gpt2", ["train", "--model", "gpt2", "--config", "gpt2-tiny", "--out", str(gpt)], G),
        Step("lambada stage 1", ["bench", "lambada", "--checkpoint", str(s1), "--baseline", G, "--ocr", "glyph",
                                 "--out", str(R / "lambada" / "stage1-vs-gpt2")], str(R / "lambada" / "stage1-vs-gpt2" / "summary.json")),
        Step("lambada stage 2", ["bench", "lambada", "--checkpoint", str(s2), "--ocr", "glyph",
                                 "--out", str(R / "lambada" / "stage2")], str(R / "lambada" / "stage2" / "summary.json")),
        Step("lambada union subset", ["bench", "lambada", "--checkpoint", str(s2), "--protocol", "paper", "--ocr", "union",
                                      "--limit", "1000", "--out", str(R / "lambada" / "stage2-union-1000")],
             str(R / "lambada" / "stage2-union-1000" / "summary.json")),
        Step("babi zero-shot stage 1", ["bench", "babi", "--checkpoint", str(s1), "--baseline", G, "--tasks", "1",
                                        "--protocol", "paper", "--out", str(R / "babi" / "qa1-zero-shot-stage1")],
             str(R / "babi" / "qa1-zero-shot-stage1" / "summary.json")),
        Step("babi zero-shot stage 2", ["bench", "babi", "--checkpoint", str(s2), "--tasks", "1", "--protocol", "paper",
                                        "--out", str(R / "babi" / "qa1-zero-shot-stage2")],
             str(R / "babi" / "qa1-zero-shot-stage2" / "summary.json")),
        Step("babi fine-tuned", ["bench", "babi", "--checkpoint", str(s2), "--baseline", G, "--tasks", "1", *babi_ft,
                                 "--seed", str(seed), "--out", str(R / "babi" / "qa1-finetuned")],
             str(R / "babi" / "qa1-finetuned" / "summary.json")),
        Step("babi fine-tuned PIXAR 3000", ["bench", "babi", "--checkpoint", str(s2), "--tasks", "1", "--finetune",
                                            "--finetune-steps", "3000", "--finetune-batch", "8", "--seed", str(seed),
                                            "--out", str(R / "babi" / "qa1-finetuned-pixar-3000")],
             str(R / "babi" / "qa1-finetuned-pixar-3000" / "summary.json"),
             note="PIXAR steps are ~8.6x cheaper than GPT-2's: 3,000 PIXAR steps ~ the FLOPs of GPT-2's 400"),
        Step("glue", ["bench", "glue", "--task", "sst2,rte,mrpc,cola,stsb", "--checkpoint", str(s1), "--baseline", G,
                      "--preset", "tiny-cpu", "--classifiers", str(clf), "--out", str(R / "glue")],
             str(R / "glue" / "glue_finetuned.md")),
        Step("glue zero-shot", ["bench", "glue", "--zero-shot", "--task", "sst2,rte,mrpc,cola", "--checkpoint", str(s1),
                                "--baseline", G, "--out", str(R / "glue-zeroshot")], str(R / "glue-zeroshot" / "glue_zeroshot.md")),
        Step("glue sst2 long", ["bench", "glue", "--task", "sst2", "--checkpoint", str(s1), "--baseline", G,
                                "--preset", "tiny-cpu", "--set", "lr=1e-3", "--set", "steps=1500", "--set", "eval_every=250",
                                "--classifiers", str(clf_sst2), "--out", str(R / "glue-sst2-long")],
             str(R / "glue-sst2-long" / "glue_finetuned.md"),
             note="the tiny-cpu preset leaves both tiny models at chance on SST-2; 1,500 steps at lr 1e-3 give "
                  "classifiers worth attacking"),
        Step("attack bAbI", ["attack", "--type", "swap,confusable", "--task", "babi", "--checkpoint", str(s2),
                             "--baseline", G, *babi_ft, "--limit", "300", "--seed", str(seed),
                             "--out", str(R / "attack" / "babi-qa1-finetuned")],
             str(R / "attack" / "babi-qa1-finetuned" / "summary.json")),
        Step("attack bAbI PIXAR 3000", ["attack", "--type", "swap,confusable", "--task", "babi", "--checkpoint", str(s2),
                                        "--finetune", "--finetune-steps", "3000", "--finetune-batch", "8", "--limit", "300",
                                        "--seed", str(seed), "--out", str(R / "attack" / "babi-qa1-finetuned-pixar-3000")],
             str(R / "attack" / "babi-qa1-finetuned-pixar-3000" / "summary.json"),
             note="PIXAR fine-tuned with about the FLOPs of GPT-2's 400 steps; same examples and perturbations "
                  "(same seed) as 'attack bAbI', so the two tables can be read side by side"),
        Step("pixel attack bAbI PIXAR 3000", ["attack", "--type", "salt-pepper", "--task", "babi", "--checkpoint", str(s2),
                                              "--finetune", "--finetune-steps", "3000", "--finetune-batch", "8",
                                              "--rates", "0,0.01,0.02,0.05,0.1", "--limit", "300", "--seed", str(seed),
                                              "--out", str(R / "attack" / "babi-qa1-pixel")],
             str(R / "attack" / "babi-qa1-pixel" / "summary.json"),
             note="pixel-space noise on the rendered prompt: an attack only a pixel model faces"),
        Step("attack paper preset (LAMBADA)", ["attack", "--preset", "paper", "--task", "lambada", "--checkpoint", str(s2),
                                               "--baseline", G, "--limit", "500", "--ocr", "glyph",
                                               "--out", str(R / "attack" / "lambada-confusable")],
             str(R / "attack" / "lambada-confusable" / "summary.json")),
        Step("attack SST-2", ["attack", "--type", "swap,confusable", "--task", "sst2",
                              "--checkpoint", str(px_clf), "--baseline", str(gpt_clf), "--seed", str(seed), "--out", str(R / "attack" / "sst2")], str(R / "attack" / "sst2" / "summary.json")),
        Step("deepwordbug SST-2", ["attack", "--type", "deepwordbug", "--task", "sst2", "--limit", "100",
                                   "--checkpoint", str(px_clf), "--baseline", str(gpt_clf), "--seed", str(seed), "--out", str(R / "attack" / "sst2-deepwordbug")],
             str(R / "attack" / "sst2-deepwordbug" / "summary.json")),
    ]
    for a in ("0.1", "0.3"):  # stage-2 alpha sweep (results/stage2-sweep/run.sh runs the same commands)
        sw = runs / "sweep" / f"stage2-alpha{a}"
        steps += [
            Step(f"stage 2 alpha {a}", ["train", "--stage", "2", "--init", str(s1), "--config", "pixar-tiny",
                                        "--set", f"adv.alpha={a}", "--out", str(sw)], str(sw / "last")),
            Step(f"lambada alpha {a}", ["bench", "lambada", "--checkpoint", str(sw), "--protocol", "paper", "--limit", "1000",
                                        "--out", str(R / "stage2-sweep" / f"lambada-alpha{a}")],
                 str(R / "stage2-sweep" / f"lambada-alpha{a}" / "summary.json")),
            Step(f"babi alpha {a}", ["bench", "babi", "--checkpoint", str(sw), "--tasks", "1", "--protocol", "paper",
                                     "--out", str(R / "stage2-sweep" / f"babi-alpha{a}")],
                 str(R / "stage2-sweep" / f"babi-alpha{a}" / "summary.json")),
        ]
    return steps


@click.command()
@click.option("--runs", default="runs/reproduce", show_default=True, type=click.Path(file_okay=False),
              help="Where models and checkpoints go (not committed).")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rerun steps whose outputs exist.")
@click.option("--report-only", is_flag=True, help="Only (re)write results/REPORT.md from existing outputs.")
@click.option("--only", help="Comma-separated step names to run (e.g. to run two subsets side by side).")
def reproduce(runs, results, seed, force, report_only, only):
    """The CPU-scale reproduction study (tiny presets; about 1-1.5 h on 2 idle cores): train, benchmark, attack,
    then write results/REPORT.md."""
    from pixar.paths import data_dir

    from .report import write_report

    if data_dir() is None:
        raise click.ClickException("reproduce needs the real data: set PIXAR_DATA (a folder laid out like shared/data)")
    runs_p, res_p = Path(runs), Path(results)
    runs_p.mkdir(parents=True, exist_ok=True)
    records = read_records(runs_p / "steps.json")
    if not report_only:
        names = [n.strip() for n in only.split(",")] if only else None
        steps = reproduce_steps(runs_p, res_p, seed)
        unknown = set(names or []) - {s.name for s in steps}
        if unknown:
            raise click.ClickException(f"unknown step(s) {sorted(unknown)}; steps: {[s.name for s in steps]}")
        records = run_steps(steps, runs_p, force, names)
    path = write_report(res_p, runs_p, records, seed=seed)
    click.echo(f"wrote {path}")
