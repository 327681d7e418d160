"""`pixar demo`, the README's first command: offline, about 5 minutes on 2 idle cores.

What it shows: PIXAR against GPT-2 at equal compute on bAbI task 1, clean and under orthographic attack. A
small PIXAR (2 layers, 64 positions) and a GPT-2 of the same non-embedding size (2 layers; its output layer
restricted to the BPE tokens of the task's text, harness.models.gpt2_vocab: tokenization unchanged, any other token
one UNSEEN id, recorded in matching.json's gpt2_vocab) are pretrained with the same compute on generated bAbI task-1
stories (harness.tasks.babi_generator, paper prompt format; the same text with or without a data dir), then each is
fine-tuned on bAbI task 1 (the data dir's qa1 files, or generated ones without a data dir) within the same compute
cap, trained to a plateau: 10% of the training stories held out as dev, early stopping on the answer's dev loss
with the best weights kept, the lr picked from FT_LRS on dev (harness.models.finetune). The same test examples are
then attacked with `confusable` and `swap` at a few rates (same seed: the same perturbed prompts for both models).
The final table (demo_table) gives reference rows (majority class, uniform chance, last location, on the same clean
questions), accuracy per model per rate with 95% Wilson intervals, **at chance** marks, distinct answers, the
paired PIXAR - GPT-2 difference and the drop difference (PIXAR drop - GPT-2 drop, drop = clean - attacked) or
"n/a (at chance)", and a reading generated from those numbers; <out>/training.json has, per model and fine-tuning seed, the lr picked, the best
step, the budget used against the cap, and the accuracy over seeds (mean, per seed, sd, a seed x example
bootstrap interval). One fine-tuning seed by default (`--seeds 3` runs three, ~3x the fine-tuning time). Stage 1
only (PIXAR_STAGE2 = []: a non-empty list adds a stage 2, as unmatched extra PIXAR compute).

Compute matching (`compute_matching`, <out>/matching.json): the unit is non-embedding FLOPs (UNIT; the scaling-law
convention, harness.models.compute) = 6 x non-embedding parameters x positions executed. PIXAR: every row is
max_positions long. GPT-2: the right-padded width of the batches actually drawn (same seeded shuffles as
training). GPT-2 steps = PIXAR's budget / GPT-2's per step, rounded; matching.json records both models' budgets in
all three units (total FLOPs, non-embedding FLOPs, examples seen) and the unit used. Pretraining runs its matched
budget in full (validation loss logged); fine-tuning's matched budget is a cap, and what each run used is reported.
With equal block sizes, equal non-embedding FLOPs is equal positions: GPT-2's ~92-token rows against PIXAR's 64
give it ~0.7x PIXAR's steps (total FLOPs with the full 50,257-way layer gave it 1/20).

Wall-clock (2 cores): the PIXAR chain and the GPT-2 chain run as two processes side by side, one torch thread
each (<out>/pixar.log, <out>/gpt2.log); run_chains prints a progress line every PROGRESS_S seconds. Measured (no data
dir, seed 0, /usr/bin/time on a shared machine): PIXAR chain ~4.4 CPU-minutes (stage 1 ~0.5, fine-tuning sweep +
attack 3.9), GPT-2 chain ~5.0 (pretraining ~0.9, sweep + attack 4.0): about 5 minutes of wall-clock on 2 idle cores.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pixar.config_io import atomic_write_text
from pixar.paths import data_dir as resolve_data

from harness.cli import refuse_module_run
from harness.cli.errors import one_line_errors
from harness.cli.render import make_out_dir
from harness.models.plateau import story_split
from harness.robustness.suite import attack_comparison, comparison_markdown
from harness.study.demo_setup import (ATTACKS, DEV_FRACTION, EVALS, FT_BATCH, FT_LRS, GPT2_MODEL, GPT2_PRESET, LIMIT,
                                      MIN_FRACTION, PATIENCE, PIXAR_PRESET, PIXAR_PRETRAIN,
                                      PIXAR_STAGE2, RATES, SEEDS, THREADS, UNIT,
                                      demo_matching, seed_dir, training_lines, training_record)
from harness.study.steps import Step, read_records, run_steps
from harness.tasks.babi import parse_babi_file
from harness.tasks.babi_generator import write_task1

PROGRESS_S = 30  # seconds between the progress lines run_chains prints


# ---- the demo's commands ------------------------------------------------------------------------
def demo_steps(out: Path, data_dir: str | None, seed: int, matching: dict | None = None,
               seeds: int = SEEDS) -> tuple[list[Step], dict]:
    """The demo's commands. Without a data dir everything comes from generated bAbI task-1 stories.
    `matching`: compute_matching's result (the GPT-2 step counts); None = compute it here. `seeds`: fine-tuning
    seeds seed, seed+1, ... (pretraining once per model; perturbations always seeded with `seed`)."""
    babi_dir = out / "babi"
    stories = write_generated_data(out, seed)  # the pretraining text in both cases
    data = ["--set", f"train.data=[{stories}]"]
    if data_dir is None:
        babi = ["--babi-dir", str(babi_dir)]
    else:  # the data folder travels as an option, never through the environment
        data, babi = data + ["--data-dir", data_dir], ["--data-dir", data_dir]
    if matching is None:
        matching = demo_matching(out, data_dir, stories, seed)
    pre, ft = matching["pretraining"], matching["finetuning"]
    s1, s2, gpt = out / "pixar-stage1", out / "pixar-stage2", out / "gpt2"
    pixar_ckpt = s2 if PIXAR_STAGE2 else s1
    px_sets = [a for o in PIXAR_PRETRAIN + [f"train.seed={seed}", f"train.threads={THREADS}"] for a in ("--set", o)]
    g_steps = pre["gpt2_steps"]
    gpt_sets = [a for o in (*GPT2_MODEL, f"train.steps={g_steps}", f"train.optim.warmup_steps={max(1, g_steps // 20)}",
                            f"train.eval_every={max(1, g_steps // 5)}", f"train.seed={seed}", f"train.threads={THREADS}")
                for a in ("--set", o)]
    attack = ["attack", "--type", ATTACKS, "--task", "babi", "--rates", RATES, "--limit", str(LIMIT),
              "--seed", str(seed), "--finetune", "--finetune-batch", str(FT_BATCH),
              "--finetune-lrs", ",".join(f"{x:g}" for x in FT_LRS), "--finetune-dev", f"{DEV_FRACTION:g}",
              "--finetune-patience", str(PATIENCE), "--threads", str(THREADS), *babi]
    unit = matching.get("unit", UNIT)

    def tuned(model: str, ckpt: list[str], cap: int, k: int, note: str) -> Step:
        where = out / seed_dir(model, seed + k, seed)
        name = ("pixar fine-tuned + attacked" if model == "pixar" else "gpt2 fine-tuned + attacked (same FLOPs)")
        return Step(name + (f" seed {seed + k}" if k else ""),
                    [*attack, *ckpt, "--finetune-steps", str(cap), "--finetune-eval-every", str(max(1, cap // EVALS)),
                     "--finetune-min-steps", str(int(cap * MIN_FRACTION)),
                     "--finetune-seed", str(seed + k), "--out", str(where)], str(where / "summary.json"), note=note)

    steps = [
        Step("pixar stage 1", ["train", "--stage", "1", "--config", PIXAR_PRESET, *px_sets, *data, "--out", str(s1)],
             str(s1 / "last")),
        *[Step("pixar stage 2", ["train", "--stage", "2", "--init", str(s1),  # the stage-1 checkpoint's config
                               *[a for o in PIXAR_STAGE2 + [f"train.seed={seed}"] for a in ("--set", o)], *data,
                               "--out", str(s2)], str(s2 / "last"))] * bool(PIXAR_STAGE2),
        Step("gpt2 same pretraining FLOPs", ["train", "--model", "gpt2", "--config", GPT2_PRESET, *gpt_sets, *data,
                                             "--out", str(gpt)], str(gpt / "final"),
             note=f"{g_steps} GPT-2 steps = the {unit} of PIXAR's {pre['pixar_steps']} stage-1 steps"),
    ]
    for k in range(seeds):
        steps.append(tuned("pixar", ["--checkpoint", str(pixar_ckpt)], ft["pixar_steps"], k,
                           f"cap {ft['pixar_steps']} steps, trained to a plateau on dev"))
    for k in range(seeds):
        steps.append(tuned("gpt2", ["--baseline", str(gpt / "final")], ft["gpt2_steps"], k,
                           f"cap {ft['gpt2_steps']} GPT-2 steps = the {unit} of PIXAR's {ft['pixar_steps']}-step "
                           "cap; same examples, perturbations and seed as the PIXAR run"))
    return steps, {"babi_dir": str(babi_dir) if data_dir is None else None, "matching": matching}


def write_generated_data(out: Path, seed: int) -> Path:
    """Generated bAbI task-1 files + a pretraining text of whole stories in the paper's prompt format."""
    paths = write_task1(out / "babi", train=2000, test=200, seed=seed)
    questions = parse_babi_file(paths["train"], task=1)
    # the stories fine-tuning holds out as dev (the last ones) are left out of the pretraining text too
    train, _ = story_split([(q.paper_prompt(), q.answer) for q in questions], DEV_FRACTION)
    text = "\n".join(f"{p} {a}" for p, a in train)
    corpus = out / "stories.txt"
    atomic_write_text(corpus, text + "\n")
    return corpus


def chain_worker(steps: list[Step], records: Path, force: bool, names: list[str], log: Path) -> None:
    """One model's steps in a child process, recorded in <records>/steps.json (its own file: two processes never
    write one); its console output (progress bars, logs) goes to `log`."""
    import contextlib

    records.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        run_steps(steps, records, force, only=names)


def chain_progress(out: Path, chain: str, names: list[str]) -> str:
    """'<chain> step i/n <name>: <the log's last progress-bar or log line>' (read from <out>/<chain>.log)."""
    done = len(read_records(out / f"steps-{chain}" / "steps.json"))
    name = names[min(done, len(names) - 1)]
    try:
        with open(out / f"{chain}.log", "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4000))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        tail = ""
    last = next((p.strip() for p in reversed(tail.replace("\r", "\n").split("\n")) if p.strip()), "")
    return f"{chain} step {min(done + 1, len(names))}/{len(names)} {name}: {last[:90]}"


def run_chains(steps: list[Step], out: Path, force: bool) -> list[dict]:
    """The PIXAR steps and the GPT-2 steps as two processes side by side (THREADS torch threads each; each
    chain's output in <out>/<chain>.log); their records are merged into <out>/steps.json; a failed chain is
    reported with its log's last lines."""
    import multiprocessing as mp

    chains = {"pixar": [s.name for s in steps if s.name.startswith("pixar")],
              "gpt2": [s.name for s in steps if s.name.startswith("gpt2")]}
    ctx = mp.get_context("spawn")  # no forked torch state
    procs = {}
    for chain, names in chains.items():
        click.echo(f"[run] {chain}: {', '.join(names)} (output: {out / (chain + '.log')})")
        procs[chain] = ctx.Process(target=chain_worker, args=(steps, out / f"steps-{chain}", force, names,
                                                              out / f"{chain}.log"))
        procs[chain].start()
    t0, failed = time.time(), []
    while any(p.is_alive() for p in procs.values()):  # a progress line every PROGRESS_S seconds
        next(iter(p for p in procs.values() if p.is_alive())).join(PROGRESS_S)
        if any(p.is_alive() for p in procs.values()):
            click.echo(f"[{time.time() - t0:4.0f} s] " + "; ".join(
                chain_progress(out, c, chains[c]) for c, p in procs.items() if p.is_alive()))
    for chain, proc in procs.items():
        proc.join()
        click.echo(f"[done] {chain}" if proc.exitcode == 0 else f"[failed] {chain} (exit {proc.exitcode})")
        if proc.exitcode != 0:
            failed.append(chain)
    known = {r["name"]: r for r in read_records(out / "steps.json")}
    for chain in chains:
        known |= {r["name"]: r for r in read_records(out / f"steps-{chain}" / "steps.json")}
    atomic_write_text(out / "steps.json", json.dumps(list(known.values()), indent=2))
    if failed:
        tails = {c: (out / f"{c}.log").read_text(encoding="utf-8", errors="replace")[-600:] for c in failed}
        raise click.ClickException("; ".join(f"{c} chain failed, end of {out / (c + '.log')}: {t}" for c, t in tails.items()))
    return read_records(out / "steps.json")


# ---- the final table ----------------------------------------------------------------------------
def demo_table(out: Path, seed: int = 0) -> tuple[str, list[dict]]:
    """The demo's final Markdown table from <out>/attack-{pixar,gpt2}/babi-qa1_predictions.jsonl (+ the runs'
    perturbed-input files, for the reference rows) and <out>/matching.json -> (markdown, rows)."""
    result = attack_comparison(out / "attack-pixar" / "babi-qa1_predictions.jsonl",
                               out / "attack-gpt2" / "babi-qa1_predictions.jsonl", "babi", seed)
    rows = result["rows"]
    m = json.loads((out / "matching.json").read_text())
    pre, ft = m["pretraining"], m["finetuning"]
    text = [
        "# PIXAR vs GPT-2 on bAbI task 1 under orthographic attack, at equal compute", "",
        f"Compute matched in {m['rule']} (matching.json). Pretraining, the matched budget run in full: PIXAR stage 1 "
        f"{pre['pixar_steps']} steps ({pre['pixar_flops'] / 1e12:.2f} TFLOP"
        f"{'; + a short stage 2' if PIXAR_STAGE2 else ''}), GPT-2 {pre['gpt2_steps']} steps "
        f"({pre['gpt2_flops'] / 1e12:.2f} TFLOP). Fine-tuning on bAbI task 1, equal CAPS (not equal use): PIXAR "
        f"{ft['pixar_steps']} steps x {ft['pixar_batch']} ({ft['pixar_flops'] / 1e12:.2f} TFLOP), GPT-2 "
        f"{ft['gpt2_steps']} steps x {ft['gpt2_batch']} ({ft['gpt2_flops'] / 1e12:.2f} TFLOP; "
        f"{ft['gpt2_mean_padded_tokens']:.1f} padded tokens per row); each model is trained to a plateau on a dev "
        "split within its cap, with its lr picked on dev: the lr and the budget each run actually used are in "
        "training.json (printed above the table).", "",
        "Protocol: the paper's first-word accuracy (PIXAR: greedy positions read back by the glyph OCR; GPT-2: "
        "greedy tokens), the same test prompts and the same seeded perturbations for both models. Accuracy in % "
        "with 95% Wilson intervals. Reference rows: trivial rules on the same clean questions "
        "(harness.results.reference); a model whose lower bound does not clear the best of them is **at chance**, "
        "and comparisons involving it read \"n/a (at chance)\". PIXAR - GPT-2 in points with Newcombe's paired "
        "interval; drop = clean - attacked for each model, and the drop difference = PIXAR drop - GPT-2 drop "
        "(> 0: PIXAR lost more), its interval combined from the two paired drop intervals (MOVER). An interval "
        "excluding 0 is a difference at the 5% level.", "",
        comparison_markdown(result), reading(result),
    ]
    return "\n".join(text) + "\n", rows


def reading(result: dict) -> str:
    """One paragraph that states what the numbers say (generated from them, never typed)."""
    rows, refs = result["rows"], result["references"]
    if not rows:
        return ""
    clean = rows[0] if rows[0]["rate"] == 0 else None
    best = max(refs, key=lambda r: r["estimate"]) if refs else None
    parts = []
    if clean is not None and best is not None:
        for key, name in (("pixar", "PIXAR"), ("gpt2", "GPT-2")):
            iv = clean[key]
            div = (clean.get("diversity") or {}).get(key) or {}
            verdict = ("is at chance: its lower bound does not clear" if clean[f"{key}_at_chance"]
                       else "clears")
            parts.append(f"Clean, {name} answers {100 * iv['estimate']:.1f}% [{100 * iv['low']:.1f}, "
                         f"{100 * iv['high']:.1f}] and {verdict} the best reference row ({best['name']}, "
                         f"{100 * best['estimate']:.1f}%); it uses {div.get('distinct', 0)} distinct answers, "
                         f"the commonest ({div.get('top_answer') or '(empty)'}) {100 * div.get('top_share', 0):.0f}% "
                         "of the time.")
    drops = [r for r in rows if r["rate"] > 0 and "drop_diff" in r]
    if drops and all(r["drop_diff"].get("withheld") for r in drops):
        parts.append("The drop comparison is withheld: a model at chance on clean questions has no drop to compare.")
    elif drops:
        more = [r for r in drops if not r["drop_diff"].get("withheld") and r["drop_diff"]["low"] > 0]
        less = [r for r in drops if not r["drop_diff"].get("withheld") and r["drop_diff"]["high"] < 0]
        cell = lambda rs: ", ".join(f"{r['attack']} {r['rate']:g}" for r in rs)  # noqa: E731
        parts.append("Under attack PIXAR lost detectably more than GPT-2 at " + (cell(more) or "no rate")
                     + "; GPT-2 lost detectably more at " + (cell(less) or "no rate")
                     + "; elsewhere the drop difference's interval includes 0.")
    return "\n" + " ".join(parts) + "\n" if parts else ""


@click.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--data-dir", type=click.Path(), help="Data folder (default $PIXAR_DATA); without one the demo "
              "trains on generated bAbI stories.")
@click.option("--seed", default=0, show_default=True)
@click.option("--seeds", default=SEEDS, show_default=True, type=click.IntRange(min=1),
              help="Fine-tuning seeds per model (seed, seed+1, ...); each adds a fine-tuning + attack run per model.")
@click.option("--force", is_flag=True, help="Rerun steps whose outputs exist.")
@one_line_errors("demo")
def demo(out, data_dir, seed, seeds, force):
    """Offline demo: PIXAR (stage 1 only) vs GPT-2 at equal non-embedding compute, each fine-tuned to a plateau
    on bAbI task 1 (lr swept on dev) and attacked."""
    try:
        d = resolve_data(data_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e))
    out_path = make_out_dir(out, "demo folder")
    out_path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    steps, _ = demo_steps(out_path, str(d) if d else None, seed, seeds=seeds)
    records = run_chains(steps, out_path, force)
    click.echo("\n".join(training_lines(training_record(out_path, seed, seeds))))
    table, rows = demo_table(out_path, seed)
    atomic_write_text(out_path / "demo_table.md", table)
    atomic_write_text(out_path / "demo_table.json", json.dumps(rows, indent=2))
    click.echo("\n" + table)
    click.echo(f"demo finished in {time.time() - t0:.0f} s; table: {out_path / 'demo_table.md'} (+ .json); "
               f"per-model attack reports: {out_path / 'attack-pixar'}, {out_path / 'attack-gpt2'}; "
               f"steps: {out_path / 'steps.json'} ({len(records)} recorded)")


if __name__ == "__main__":
    refuse_module_run("harness.study.demo", "demo")
