"""`pixar demo` (the README's first command) and `pixar reproduce` (the CPU-scale reproduction study).

Both are a list of ordinary `pixar` commands run in order, in process, each recorded with its exact
command line and wall-clock time (`<out>/steps.json`). A step whose output already exists is skipped,
so an interrupted study resumes where it stopped (`--force` reruns everything).

demo       offline, <= 15 min on 2 cores: a micro PIXAR (stage 1 + stage 2) and a same-budget GPT-2 are
           trained on the book corpus (data dir) or, with no data dir, on generated bAbI task-1 stories;
           both are fine-tuned and benchmarked on bAbI task 1 (paper protocol), attacked with `swap`;
           the comparison table and the attack plot are printed/written under --out.
reproduce  the largest study these CPUs allow (budget cpu-1h): pixar-tiny stage 1 + 2 and gpt2-tiny on the
           book corpus; LAMBADA (paper + lm-eval protocols, all 5,153), bAbI task 1 (zero-shot and
           fine-tuned), the confusable attack on bAbI / LAMBADA prompts, swap + DeepWordBug on SST-2,
           a GLUE subset; then results/REPORT.md (harness.report).
"""
from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from pixar.config import atomic_write_text


@dataclass
class Step:
    name: str
    args: list[str]
    done: str  # a path (relative to the run folder or absolute) that exists once the step has finished
    note: str = ""
    kw: dict = field(default_factory=dict)


def _read_records(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def run_steps(steps: list[Step], out: Path, force: bool = False, only: list[str] | None = None) -> list[dict]:
    """Run `pixar <args>` for each step in process; record command, seconds and status in steps.json.
    `only`: names of the steps to consider (several processes may run disjoint subsets side by side)."""
    from harness.app import main as pixar_main

    log_path = out / "steps.json"
    for st in steps:
        if only and st.name not in only:
            continue
        done = Path(st.done)
        if done.exists() and not force:
            click.echo(f"[skip] {st.name}: {done} exists")
            continue
        cmd = "pixar " + " ".join(shlex.quote(a) for a in st.args)
        click.echo(f"\n[run] {st.name}: {cmd}")
        t0 = time.time()
        try:
            pixar_main.main(st.args, standalone_mode=False)
        except click.ClickException as e:
            raise click.ClickException(f"step {st.name!r} failed: {e.format_message()}") from None
        rec = {"name": st.name, "command": cmd, "seconds": round(time.time() - t0, 1), "note": st.note,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        known = {r["name"]: r for r in _read_records(log_path)}  # re-read: a parallel subset may have written
        known[st.name] = rec
        atomic_write_text(log_path, json.dumps(list(known.values()), indent=2))
    return _read_records(log_path)


# ---- demo ---------------------------------------------------------------------------------------
def demo_steps(out: Path, data_dir: str | None, seed: int) -> tuple[list[Step], dict]:
    """The demo's commands. Without a data dir everything comes from generated bAbI task-1 stories."""
    babi_dir = out / "babi"
    if data_dir is None:
        stories = _write_generated_data(out, seed)
        data = ["--set", f"train.data=[{stories}]"]
        babi = ["--babi-dir", str(babi_dir)]
    else:  # the data folder travels as an option, never through the environment
        data, babi = ["--data-dir", data_dir], ["--data-dir", data_dir]
    s1, s2, gpt = out / "pixar-stage1", out / "pixar-stage2", out / "gpt2"
    common = ["--set", f"train.seed={seed}"]
    steps = [
        Step("pixar stage 1", ["train", "--stage", "1", "--config", "pixar-micro", "--set", "train.steps=400",
                               *common, *data, "--out", str(s1)], str(s1 / "last")),
        Step("pixar stage 2", ["train", "--stage", "2", "--init", str(s1), "--config", "pixar-micro",
                               "--set", "adv.steps=20", *common, *data, "--out", str(s2)], str(s2 / "last")),
        Step("gpt2 same budget", ["train", "--model", "gpt2", "--config", "gpt2-micro", "--set", "train.steps=400",
                                  *common, *data, "--out", str(gpt)], str(gpt / "final")),
        Step("bench babi (fine-tuned)", ["bench", "babi", "--checkpoint", str(s2), "--baseline", str(gpt / "final"),
                                         "--tasks", "1", "--finetune", "--finetune-steps", "150", "--finetune-batch", "8",
                                         "--limit", "100",
                                         "--protocol", "paper", "--seed", str(seed), *babi, "--out", str(out / "bench-babi")],
             str(out / "bench-babi" / "summary.json")),
        Step("attack swap", ["attack", "--type", "swap", "--task", "babi", "--checkpoint", str(s2),
                             "--baseline", str(gpt / "final"), "--finetune", "--finetune-steps", "150",
                             "--finetune-batch", "8", "--rates", "0,0.2,0.5", "--limit", "100", "--seed", str(seed), *babi,
                             "--out", str(out / "attack-swap")], str(out / "attack-swap" / "summary.json")),
    ]
    return steps, {"babi_dir": str(babi_dir) if data_dir is None else None}


def _write_generated_data(out: Path, seed: int) -> Path:
    """Generated bAbI task-1 files + a pretraining text of whole stories in the paper's prompt format."""
    from harness.babi_gen import write_task1
    from harness.tasks.babi import parse_babi_file

    paths = write_task1(out / "babi", train=2000, test=200, seed=seed)
    questions = parse_babi_file(paths["train"], task=1)
    text = "\n".join(f"{q.paper_prompt()} {q.answer}" for q in questions)
    corpus = out / "stories.txt"
    atomic_write_text(corpus, text + "\n")
    return corpus


@click.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--data-dir", type=click.Path(), help="Data folder (default $PIXAR_DATA); without one the demo "
              "trains on generated bAbI stories.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rerun steps whose outputs exist.")
def demo(out, data_dir, seed, force):
    """Offline end-to-end demo: train PIXAR (stage 1 + 2) and GPT-2, bench bAbI task 1, attack with swap."""
    from pixar.paths import data_dir as resolve_data

    try:
        d = resolve_data(data_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e))
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    steps, _ = demo_steps(out_path, str(d) if d else None, seed)
    records = run_steps(steps, out_path, force)
    table = _demo_table(out_path)
    atomic_write_text(out_path / "demo_table.md", table)
    click.echo("\n" + table)
    click.echo(f"\ndemo finished in {time.time() - t0:.0f} s; table: {out_path / 'demo_table.md'}; "
               f"plot: {out_path / 'attack-swap' / 'babi-qa1.png'}; steps: {out_path / 'steps.json'} "
               f"({len(records)} recorded)")


def _demo_table(out: Path) -> str:
    parts = ["# PIXAR demo: bAbI task 1 (fine-tuned, paper protocol) and the swap attack", ""]
    for sub, title in (("bench-babi", "bAbI task 1"), ("attack-swap", "swap attack on bAbI task 1")):
        mds = sorted((out / sub).glob("*.md"))
        for md in mds:
            if md.name.endswith("_perturbed.md"):
                continue
            parts += [f"## {title} ({md.relative_to(out)})", "", md.read_text().strip(), ""]
    return "\n".join(parts)


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
    records = _read_records(runs_p / "steps.json")
    if not report_only:
        names = [n.strip() for n in only.split(",")] if only else None
        steps = reproduce_steps(runs_p, res_p, seed)
        unknown = set(names or []) - {s.name for s in steps}
        if unknown:
            raise click.ClickException(f"unknown step(s) {sorted(unknown)}; steps: {[s.name for s in steps]}")
        records = run_steps(steps, runs_p, force, names)
    path = write_report(res_p, runs_p, records, seed=seed)
    click.echo(f"wrote {path}")
