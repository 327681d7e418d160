"""`pixar reproduce`: the CPU-scale reproduction study, a list of ordinary `pixar` commands (harness.study.steps), then
results/REPORT.md (harness.results.report) written from the result files alone.

pixar-tiny stage 1 + 2 and gpt2-tiny on the book corpus; LAMBADA and bAbI under the named protocols; bAbI
fine-tuned; attacks; a GLUE subset; the stage-2 alpha sweep. Steps already done are skipped.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from pixar.paths import data_dir

from harness.cli import refuse_module_run
from harness.cli.errors import one_line_errors
from harness.cli.glue import model_tag
from harness.cli.render import make_out_dir
from harness.results.report import copy_curves, write_report
from harness.study.steps import Step, read_records, run_steps


# ---- the study ----------------------------------------------------------------------------------
LAMBADA_CAP, BABI_CAP = 75, 74
"""Context caps that keep pixar-tiny's generated positions among the positions it was trained on in at least half
of its training rows (harness.eval.protocols.cap_for_training_lengths on 3,000 pixar-tiny rows): the capped
protocols are labelled +cap75 / +cap74 and reported beside the uncapped official ones."""
BABI_LIMIT = 1000  # of the 10,000 generated stories (the official protocol's sample), for CPU time
SWEEP_LAMBADA_LIMIT = 1000  # the alpha variants and capped stage 2: the first 1,000 LAMBADA passages (CPU time)
SWEEP_BABI_LIMIT = 500  # the alpha variants: the first 500 bAbI stories
CURVE = ["--set", "adv.eval_every=20", "--set", "adv.eval_task=lambada", "--set", "adv.eval_prompts=200",
         "--set", f"adv.eval_context_cap={LAMBADA_CAP}"]


def _bench(name: str, args: list[str], out: Path, note: str = "") -> Step:
    return Step(name, ["bench", *args, "--out", str(out)], str(out / "summary.json"), note=note)


def reproduce_steps(runs: Path, results: Path, seed: int) -> list[Step]:
    """The study's commands, in order; see the module docstring."""
    s1, s2, gpt = runs / "pixar-tiny-stage1", runs / "pixar-tiny-stage2", runs / "gpt2-tiny"
    G, R = str(gpt / "final"), results
    clf, clf_sst2 = runs / "glue-classifiers", runs / "glue-classifiers-sst2-long"
    px_clf, gpt_clf = clf_sst2 / model_tag("pixar", str(s1)) / "sst2", clf_sst2 / model_tag("gpt2", G) / "sst2"
    # the official protocols read with the paddle-less union (glyph + Tesseract, the paper's preprocessing); the
    # cleaner variants with the glyph decoder only (labelled [glyph]): Tesseract costs ~0.2 s a strip on 2 cores
    lam, lam_var = ["--protocol", "paper"], ["--protocol", "paper-openai-cased", "--ocr", "glyph"]
    bab = ["--protocol", "paper", "--limit", str(BABI_LIMIT)]
    bab_var = ["--protocol", "paper-all-questions", "--ocr", "glyph", "--limit", str(BABI_LIMIT)]
    ft_gpt, ft_px = (["--finetune", "--finetune-steps", n, "--finetune-batch", "8", "--seed", str(seed)]
                     for n in ("400", "3000"))
    equal = "PIXAR steps are ~8.6x cheaper than GPT-2's at tiny size: 3,000 PIXAR steps ~ the FLOPs of GPT-2's 400"
    steps = [
        Step("stage 1", ["train", "--stage", "1", "--config", "pixar-tiny", "--out", str(s1)], str(s1 / "last")),
        Step("stage 2", ["train", "--stage", "2", "--init", str(s1), "--config", "pixar-tiny", *CURVE, "--out", str(s2)],
             str(s2 / "last")),
        Step("gpt2", ["train", "--model", "gpt2", "--config", "gpt2-tiny", "--out", str(gpt)], G),
        _bench("lambada stage 1", ["lambada", "--checkpoint", str(s1), "--baseline", G, *lam, "--protocol", "lm-eval"],
               R / "lambada" / "stage1-vs-gpt2"),
        _bench("lambada stage 2", ["lambada", "--checkpoint", str(s2), "--baseline", G, *lam, "--protocol", "lm-eval"],
               R / "lambada" / "stage2-vs-gpt2"),
        _bench("lambada stage 1 openai-cased", ["lambada", "--checkpoint", str(s1), "--baseline", G, *lam_var],
               R / "lambada" / "stage1-openai-cased"),
        _bench("lambada stage 2 openai-cased", ["lambada", "--checkpoint", str(s2), *lam_var], R / "lambada" / "stage2-openai-cased"),
        _bench("lambada stage 1 capped", ["lambada", "--checkpoint", str(s1), "--protocol", "paper",
                                          "--context-cap", str(LAMBADA_CAP)], R / "lambada" / "stage1-cap"),
        _bench("lambada stage 2 capped", ["lambada", "--checkpoint", str(s2), "--protocol", "paper", "--limit",
                                          str(SWEEP_LAMBADA_LIMIT), "--context-cap", str(LAMBADA_CAP)],
               R / "lambada" / "stage2-cap"),
        _bench("babi stage 1", ["babi", "--checkpoint", str(s1), "--baseline", G, *bab], R / "babi" / "stage1-vs-gpt2"),
        _bench("babi stage 2", ["babi", "--checkpoint", str(s2), "--baseline", G, *bab], R / "babi" / "stage2-vs-gpt2"),
        _bench("babi stage 1 all questions", ["babi", "--checkpoint", str(s1), "--baseline", G, *bab_var],
               R / "babi" / "stage1-all-questions"),
        _bench("babi stage 2 all questions", ["babi", "--checkpoint", str(s2), *bab_var], R / "babi" / "stage2-all-questions"),
        _bench("babi stage 1 capped", ["babi", "--checkpoint", str(s1), *bab, "--context-cap", str(BABI_CAP)],
               R / "babi" / "stage1-cap"),
        _bench("babi stage 2 capped", ["babi", "--checkpoint", str(s2), *bab, "--context-cap", str(BABI_CAP)],
               R / "babi" / "stage2-cap"),
        _bench("babi fine-tuned GPT-2 400", ["babi", "--baseline", G, *ft_gpt, *bab], R / "babi" / "finetuned-gpt2-400"),
        _bench("babi fine-tuned PIXAR 3000", ["babi", "--checkpoint", str(s2), *ft_px, *bab],
               R / "babi" / "finetuned-pixar-3000", note=equal),
        Step("glue", ["bench", "glue", "--task", "sst2,rte,mrpc,cola,stsb", "--checkpoint", str(s1), "--baseline", G,
                      "--preset", "tiny-cpu", "--classifiers", str(clf), "--out", str(R / "glue")],
             str(R / "glue" / "summary.json")),
        Step("glue zero-shot", ["bench", "glue", "--zero-shot", "--task", "sst2,rte,mrpc,cola", "--checkpoint", str(s1),
                                "--baseline", G, "--out", str(R / "glue-zeroshot")], str(R / "glue-zeroshot" / "summary.json")),
        Step("glue sst2 long", ["bench", "glue", "--task", "sst2", "--checkpoint", str(s1), "--baseline", G,
                                "--preset", "tiny-cpu", "--set", "optim.lr=1e-3", "--set", "steps=1500", "--set", "eval_every=250",
                                "--classifiers", str(clf_sst2), "--out", str(R / "glue-sst2-long")],
             str(R / "glue-sst2-long" / "summary.json"),
             note="the tiny-cpu preset leaves both tiny models at chance on SST-2; 1,500 steps at lr 1e-3 give "
                  "classifiers worth attacking"),
        Step("attack bAbI GPT-2 400", ["attack", "--type", "swap,confusable", "--task", "babi", "--baseline", G,
                                       *ft_gpt, "--limit", "300", "--out", str(R / "attack" / "babi-gpt2-400")],
             str(R / "attack" / "babi-gpt2-400" / "summary.json")),
        Step("attack bAbI PIXAR 3000", ["attack", "--type", "swap,confusable", "--task", "babi", "--checkpoint", str(s2),
                                        *ft_px, "--limit", "300", "--out", str(R / "attack" / "babi-pixar-3000")],
             str(R / "attack" / "babi-pixar-3000" / "summary.json"), note=equal + "; same examples and perturbations"),
        Step("pixel attack bAbI PIXAR 3000", ["attack", "--type", "salt-pepper", "--task", "babi", "--checkpoint", str(s2),
                                              *ft_px, "--rates", "0,0.01,0.02,0.05,0.1", "--limit", "300",
                                              "--out", str(R / "attack" / "babi-pixel")],
             str(R / "attack" / "babi-pixel" / "summary.json"), note="pixel noise: an attack only a pixel model faces"),
        Step("attack paper preset (LAMBADA)", ["attack", "--preset", "paper", "--task", "lambada", "--checkpoint", str(s2),
                                               "--baseline", G, "--limit", "500", "--seed", str(seed),
                                               "--out", str(R / "attack" / "lambada-confusable")],
             str(R / "attack" / "lambada-confusable" / "summary.json")),
        Step("attack SST-2", ["attack", "--type", "swap,confusable", "--task", "sst2", "--checkpoint", str(px_clf),
                              "--baseline", str(gpt_clf), "--seed", str(seed), "--out", str(R / "attack" / "sst2")],
             str(R / "attack" / "sst2" / "summary.json")),
    ]
    for a in ("0.1", "0.3"):  # stage-2 alpha sensitivity, each with its step curve
        sw = runs / "sweep" / f"stage2-alpha{a}"
        steps += [
            Step(f"stage 2 alpha {a}", ["train", "--stage", "2", "--init", str(s1), "--config", "pixar-tiny",
                                        "--set", f"adv.alpha={a}", *CURVE, "--out", str(sw)], str(sw / "last")),
            _bench(f"lambada alpha {a}", ["lambada", "--checkpoint", str(sw), *lam, "--limit", str(SWEEP_LAMBADA_LIMIT)],
                   R / "stage2-sweep" / f"lambada-alpha{a}"),
            _bench(f"babi alpha {a}", ["babi", "--checkpoint", str(sw), "--protocol", "paper", "--limit", str(SWEEP_BABI_LIMIT)],
                   R / "stage2-sweep" / f"babi-alpha{a}"),
        ]
    return [dataclasses.replace(st, args=[*st.args, "--seed", str(seed)]) if st.args[0] == "bench"
            and "--seed" not in st.args and st.args[1] != "glue" else st for st in steps]


ROBUSTNESS = [{"label": "bAbI task 1, fine-tuned at about equal FLOPs (PIXAR 3,000 steps, GPT-2 400)",
               "pixar": "attack/babi-pixar-3000", "gpt2": "attack/babi-gpt2-400", "file": "babi-qa1_predictions.jsonl"}]


def comparisons() -> list[dict]:
    """The stage comparisons the report draws on the same examples (result folders under results/)."""
    out = []
    for task, protocol in (("lambada", "lambada:paper"), ("babi", "babi:paper")):
        out.append({"label": f"{task}: stage 2 (alpha 1) - stage 1", "a": f"{task}/stage2-vs-gpt2",
                    "b": f"{task}/stage1-vs-gpt2", "protocol": protocol})
        for a in ("0.1", "0.3"):  # the sweep's LAMBADA runs cover the first 1,000 passages: paired on those
            out.append({"label": f"{task}: stage 2 (alpha {a}) - stage 1", "a": f"stage2-sweep/{task}-alpha{a}",
                        "b": f"{task}/stage1-vs-gpt2", "protocol": protocol, "common": True})
    out.append({"label": "lambada (OpenAI cased): stage 2 - stage 1", "a": "lambada/stage2-openai-cased",
                "b": "lambada/stage1-openai-cased", "protocol": "lambada:paper-openai-cased[glyph]"})
    out.append({"label": "babi (all questions): stage 2 - stage 1", "a": "babi/stage2-all-questions",
                "b": "babi/stage1-all-questions", "protocol": "babi:paper-all-questions[glyph]"})
    cap = {"lambada": f"+cap{LAMBADA_CAP}", "babi": f"+cap{BABI_CAP}"}
    for task in ("lambada", "babi"):
        out.append({"label": f"{task} (capped context): stage 2 - stage 1", "a": f"{task}/stage2-cap",
                    "b": f"{task}/stage1-cap", "protocol": f"{task}:paper{cap[task]}", "common": True})
    return out


@click.command()
@click.option("--runs", default="runs/reproduce", show_default=True, type=click.Path(file_okay=False),
              help="Where models and checkpoints go (not committed).")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rerun steps whose outputs exist.")
@click.option("--report-only", is_flag=True, help="Only (re)write results/REPORT.md from existing outputs.")
@click.option("--only", help="Comma-separated step names to run (e.g. to run two subsets side by side).")
@one_line_errors("reproduce")
def reproduce(runs, results, seed, force, report_only, only):
    """The CPU-scale reproduction study (tiny presets; about 3-4 h of steps on 2 cores, Tesseract the largest
    part): train, benchmark, attack, then write results/REPORT.md."""
    if data_dir() is None:
        raise click.ClickException("reproduce needs the real data: set PIXAR_DATA (a folder laid out like shared/data)")
    runs_p, res_p = make_out_dir(runs, "runs folder"), make_out_dir(results, "results folder")
    runs_p.mkdir(parents=True, exist_ok=True)
    records = read_records(runs_p / "steps.json")
    if not report_only:
        names = [n.strip() for n in only.split(",")] if only else None
        steps = reproduce_steps(runs_p, res_p, seed)
        unknown = set(names or []) - {s.name for s in steps}
        if unknown:
            raise click.ClickException(f"unknown step(s) {sorted(unknown)}; steps: {[s.name for s in steps]}")
        records = run_steps(steps, runs_p, force, names)
    copy_curves(runs_p, res_p, {"alpha1": "pixar-tiny-stage2", "alpha0.1": "sweep/stage2-alpha0.1",
                                "alpha0.3": "sweep/stage2-alpha0.3"})
    path = write_report(res_p, records, seed=seed, pairs=comparisons(),
                        planned=[s.name for s in reproduce_steps(runs_p, res_p, seed)], robustness=ROBUSTNESS)
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    refuse_module_run("harness.study.reproduce", "reproduce")
