"""The short CPU round of the study (issue 19): GLUE back in the report and SST-2 robustness for both models, sized
to what a shared 2-core machine could run in about an hour; a list of ordinary `pixar` commands (harness.study.steps).

    python -m harness.study.cpu_round --only "glue pixar seed 0"      # one step (two processes may run disjoint sets)
    python -m harness.study.cpu_round --list                         # the steps and their commands

Models: pixar-tiny stage 1 trained for STAGE1_STEPS of the preset's 3,000 steps and gpt2-tiny for GPT2_STEPS of its
430 (the preset's rule: equal executed training FLOPs, 6.95x more per GPT-2 step at tiny size), because the full
presets measured ~1.2 s (PIXAR) and ~7-10 s (GPT-2) a step on the shared machine that day.

GLUE: configs/glue/study-cpu.yaml (full dev splits, lr 1e-3, best-dev weights) on SST-2, CoLA, MRPC, STS-B and RTE
at seed 0; 400 steps left both models at the majority row on SST-2, so SST-2 is also run on the earlier study's longer
schedule (SST2_LONG: 1,500 steps) at seeds 0, 1, 2. Attacks on the long SST-2 classifiers of seed 0, each model in its own process on
the same first ATTACK_N dev sentences with the same seeded perturbations: swap, confusable, Zeroé confusables, DeepWordBug, Pruthi; and the
BadCharacters family on the first BADCHARS_N (TextAttack's differential-evolution search is ~100 queries an example).
"""
from __future__ import annotations

from pathlib import Path

import click

from harness.cli.glue import model_tag
from harness.study.steps import Step, read_records, run_steps

STAGE1_STEPS, GPT2_STEPS = 800, 115
GLUE_TASKS = "sst2,cola,mrpc,stsb,rte"
SEEDS = (0, 1, 2)
ATTACK_N, BADCHARS_N = 200, 100
RATES = "0,0.1,0.2,0.4,0.6"
ATTACKS = "swap,confusable,zeroe-confusable,deepwordbug,pruthi"
BADCHARS = "badchars-invisible,badchars-reorderings,badchars-deletions"


SST2_LONG = ["--set", "steps=1500", "--set", "optim.warmup_steps=150", "--set", "eval_every=250"]


def clf_dir(runs: Path, seed: int) -> Path:
    return runs / "glue-classifiers" / f"seed{seed}"


def long_dir(runs: Path, seed: int) -> Path:
    return runs / "glue-classifiers-sst2-long" / f"seed{seed}"


def pretraining_steps(runs: Path) -> list[Step]:
    s1, gpt = runs / "pixar-tiny-stage1", runs / "gpt2-tiny"
    return [
        Step("stage 1 (800 steps)", ["train", "--stage", "1", "--config", "pixar-tiny", "--set",
                                     f"train.steps={STAGE1_STEPS}", "--set", "train.optim.warmup_steps=40", "--out", str(s1)],
             str(s1 / "last")),
        Step("gpt2 (115 steps)", ["train", "--model", "gpt2", "--config", "gpt2-tiny", "--set",
                                  f"train.steps={GPT2_STEPS}", "--set", "train.optim.warmup_steps=6", "--set",
                                  f"train.eval_every={GPT2_STEPS}", "--out", str(gpt)], str(gpt / "final")),
    ]


def round_steps(runs: Path, results: Path) -> list[Step]:
    """Every step of the round, in order (pretraining first)."""
    s1, g = str(runs / "pixar-tiny-stage1"), str(runs / "gpt2-tiny" / "final")
    models = {"pixar": ["--checkpoint", s1], "gpt2": ["--baseline", g]}
    tags = {"pixar": model_tag("pixar", s1), "gpt2": model_tag("gpt2", g)}
    steps = pretraining_steps(runs)

    def glue(seed: int) -> list[Step]:
        tasks, out = (GLUE_TASKS if seed == 0 else "sst2"), results / "glue" / f"seed{seed}"
        return [Step(f"glue {kind} seed {seed}",
                     ["bench", "glue", "--task", tasks, *args, "--preset", "study-cpu", "--seed", str(seed),
                      "--threads", "1", "--classifiers", str(clf_dir(runs, seed)), "--out", str(out)],
                     str(out / tags[kind] / tasks.split(",")[-1] / "results.json")) for kind, args in models.items()]

    def sst2_long(seed: int) -> list[Step]:
        out = results / "glue-sst2-long" / f"seed{seed}"
        return [Step(f"sst2 long {kind} seed {seed}",
                     ["bench", "glue", "--task", "sst2", *args, "--preset", "study-cpu", *SST2_LONG, "--seed",
                      str(seed), "--threads", "1", "--classifiers", str(long_dir(runs, seed)), "--out", str(out)],
                     str(out / tags[kind] / "sst2" / "results.json"),
                     note="400 steps left both models at the majority row on SST-2: the earlier study's longer "
                          "schedule (1,500 steps at lr 1e-3)") for kind, args in models.items()]

    steps += glue(0) + sst2_long(0)  # then the attacks on seed 0's long SST-2 classifiers, then the extra seeds
    for kind in models:
        clf = str(long_dir(runs, 0) / tags[kind] / "sst2")
        flag = "--checkpoint" if kind == "pixar" else "--baseline"
        out = results / "attack" / f"sst2-{kind}"
        steps.append(Step(f"attack sst2 {kind}", ["attack", "--type", ATTACKS, "--task", "sst2", flag, clf, "--rates",
                                                  RATES, "--limit", str(ATTACK_N), "--seed", "0", "--threads", "1",
                                                  "--out", str(out)], str(out / "summary.json")))
        out = results / "attack" / f"sst2-badchars-{kind}"
        steps.append(Step(f"badchars sst2 {kind}", ["attack", "--type", BADCHARS, "--task", "sst2", flag, clf,
                                                    "--rates", "0", "--limit", str(BADCHARS_N), "--seed", "0",
                                                    "--threads", "1", "--out", str(out)], str(out / "summary.json")))
    for seed in SEEDS[1:]:
        steps += sst2_long(seed)
    return steps


@click.command()
@click.option("--runs", default="runs/study", show_default=True, type=click.Path(file_okay=False))
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--only", help="Comma-separated step names.")
@click.option("--list", "list_", is_flag=True, help="Print the steps and exit.")
@click.option("--force", is_flag=True)
def main(runs, results, only, list_, force):
    """Run (a subset of) the CPU round's steps, recording each in <runs>/steps.json."""
    steps = round_steps(Path(runs), Path(results))
    if list_:
        for st in steps:
            click.echo(f"{st.name}: pixar {' '.join(st.args)}")
        return
    names = [n.strip() for n in only.split(",")] if only else None
    unknown = set(names or []) - {s.name for s in steps}
    if unknown:
        raise click.ClickException(f"unknown step(s) {sorted(unknown)}; steps: {[s.name for s in steps]}")
    run_steps(steps, Path(runs), force, names)
    click.echo(f"{len(read_records(Path(runs) / 'steps.json'))} steps recorded in {runs}/steps.json")


if __name__ == "__main__":
    main()
