"""`pixar demo`, the README's first command: offline, about 5 minutes on 2 cores.

What it shows: PIXAR against GPT-2 at equal compute on bAbI task 1, clean and under orthographic attack. A
small PIXAR (2 layers, 64 positions) and a GPT-2 of the same non-embedding size are pretrained with the same
training FLOPs on generated bAbI task-1 stories (harness.tasks.babi_generator, paper prompt format; the same text with or
without a data dir: in 5 CPU minutes book text teaches neither model to read the task); each is fine-tuned on
bAbI task 1 (the data dir's qa1 files, or generated ones without a data dir) with the same fine-tuning FLOPs,
then the same test examples are attacked with `confusable` and `swap` at a few rates (same seed: the same
perturbed prompts for both models). The final table (demo_table) gives reference rows (majority class, uniform
chance, last location, on the same clean questions), accuracy per model per rate with 95% Wilson intervals, **at
chance** marks, distinct answers, the paired PIXAR - GPT-2 difference and the drop difference (PIXAR drop - GPT-2
drop, drop = clean - attacked) or "n/a (at chance)", and a reading generated from those numbers. No stage 2 by default (PIXAR_STAGE2 = []: it is not what the
demo is about; a non-empty list adds one, as unmatched extra PIXAR compute).

Compute matching (`match_steps`, recorded in <out>/matching.json): executed training FLOPs per step =
6 x parameters used in matmuls x batch x sequence length. PIXAR: all parameters, every row is max_positions long.
GPT-2: non-embedding parameters + the tied 50,257 x n_embd output projection, times the mean right-padded
width of the batches actually drawn (same seeded shuffles as training). GPT-2 steps = PIXAR FLOPs / GPT-2 FLOPs
per step, rounded. At this size the output projection is ~90% of GPT-2's matmul parameters, so equal FLOPs
give GPT-2 about 1/20 of PIXAR's steps: the comparison is per unit of compute, not per example seen.

Wall-clock (2 cores): the PIXAR chain and the GPT-2 chain run as two processes side by side, one torch thread
each (<out>/pixar.log, <out>/gpt2.log). Measured with the data dir on an idle 2-core machine: 200 s in all
(PIXAR stage 1 45 s + fine-tuning and 5 attacked evaluations 100 s; GPT-2 61 s + 122 s, the longer chain).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pixar.config import atomic_write_text

from harness.cli.errors import one_line_errors
from harness.cli.render import make_out_dir
from harness.study.steps import Step, read_records, run_steps
from harness.cli import refuse_module_run

PIXAR_PRESET, GPT2_PRESET = "pixar-tiny", "gpt2-tiny"
PIXAR_MODEL = ["model.layers=2", "model.max_positions=64", "render.max_positions=64"]  # pixar-tiny, 2 of 4 layers
GPT2_MODEL = ["model.n_layer=2"]  # gpt2-tiny with 2 of 4 layers: the same non-embedding size as PIXAR_MODEL
PIXAR_PRETRAIN = PIXAR_MODEL + ["train.steps=500", "train.optim.warmup_steps=25", "train.eval_every=500", "train.sample_every=0",
                  "train.save_every=500"]
PIXAR_STAGE2: list[str] = []  # no stage 2 (not what the demo is about); e.g. ["adv.steps=20", ...] adds one:
STAGE2_EXAMPLE = ["adv.steps=20", "adv.optim.warmup_steps=10", "adv.alpha_warmup=10", "adv.batch_size=8",
                "adv.num_samples=8", "adv.save_every=20", "adv.sample_every=0"]
PIXAR_FT_STEPS, FT_BATCH, FT_LR = 2000, 8, 2e-3
THREADS = 1  # per model: the PIXAR and GPT-2 chains run side by side, one core each (tiny GEMMs gain little from 2)
ATTACKS, RATES, LIMIT = "confusable,swap", "0,0.1,0.3", 200


# ---- compute matching ---------------------------------------------------------------------------
def pixar_step_flops(overrides: list[str], batch: int) -> tuple[float, dict]:
    from pixar.config import PixarConfig, preset_path
    from pixar.model.transformer import Pixar

    cfg = PixarConfig.from_yaml(preset_path(PIXAR_PRESET), [o for o in overrides if o.startswith(("model.", "render."))])
    n = Pixar(cfg.model).num_params()
    P = cfg.model.max_positions
    return 6.0 * n * batch * P, {"params": n, "positions": P, "batch": batch}


def gpt2_step_widths(texts: list[str], tokenizer, n_positions: int, batch: int, seed: int, steps: int,
                     left_truncate: bool) -> list[int]:
    """Padded width of each of the first `steps` batches harness.models.gpt2_pretrain.train_causal_lm draws."""
    from harness.models.gpt2_pretrain import epoch_batches

    limit = n_positions - 1
    lens = [min(len(x), limit) + 1 for x in tokenizer(texts)["input_ids"]]  # + EOS, as train_causal_lm
    batches = epoch_batches(len(lens), seed, batch)
    return [max(lens[i] for i in next(batches)) for _ in range(steps)]


def gpt2_matmul_params(overrides: list[str]) -> tuple[int, int]:
    from pixar.config import preset_path

    from harness.models.gpt2_pretrain import GPT2BaselineConfig, build_gpt2

    cfg = GPT2BaselineConfig.from_yaml(preset_path(GPT2_PRESET), overrides)
    model = build_gpt2(cfg, 50257, 50256, seed=0)
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb + model.transformer.wte.weight.numel(), cfg.model.n_positions


def match_steps(pixar_flops: float, texts: list[str], tokenizer, batch: int, seed: int, left_truncate: bool,
                name: str) -> dict:
    """GPT-2 steps whose executed FLOPs equal `pixar_flops`: estimated from one epoch's mean width, then the
    executed FLOPs of exactly those steps are recomputed and recorded."""
    n, n_pos = gpt2_matmul_params(GPT2_MODEL)
    probe = gpt2_step_widths(texts, tokenizer, n_pos, batch, seed, max(1, len(texts) // batch), left_truncate)
    steps = max(1, round(pixar_flops / (6.0 * n * batch * sum(probe) / len(probe))))
    widths = gpt2_step_widths(texts, tokenizer, n_pos, batch, seed, steps, left_truncate)
    gpt_flops = 6.0 * n * batch * sum(widths)
    return {"phase": name, "gpt2_steps": steps, "gpt2_matmul_params": n, "gpt2_batch": batch,
            "gpt2_mean_padded_tokens": sum(widths) / steps, "gpt2_flops": gpt_flops, "pixar_flops": pixar_flops,
            "ratio_gpt2_to_pixar": gpt_flops / pixar_flops}


def compute_matching(stories_train: list[str], ft_texts: list[str], tokenizer, seed: int) -> dict:
    """Pretraining (stage 1) and fine-tuning matches; see the module docstring."""
    from pixar.config import PixarConfig, preset_path

    pcfg = PixarConfig.from_yaml(preset_path(PIXAR_PRESET), PIXAR_PRETRAIN)
    per, info = pixar_step_flops(PIXAR_PRETRAIN, pcfg.train.batch_size)
    pre = match_steps(per * pcfg.train.steps, stories_train, tokenizer, pcfg.train.batch_size, seed, False,
                      "pretraining")
    pre |= {"pixar_steps": pcfg.train.steps, "pixar_batch": pcfg.train.batch_size, "pixar_params": info["params"],
            "pixar_positions": info["positions"], "pixar_flops_per_step": per}
    per_ft, _ = pixar_step_flops(PIXAR_PRETRAIN, FT_BATCH)
    ft = match_steps(per_ft * PIXAR_FT_STEPS, ft_texts, tokenizer, FT_BATCH, seed, True, "fine-tuning")
    ft |= {"pixar_steps": PIXAR_FT_STEPS, "pixar_batch": FT_BATCH, "pixar_params": info["params"],
           "pixar_positions": info["positions"], "pixar_flops_per_step": per_ft}
    return {"rule": "executed FLOPs = 6 x matmul parameters x batch x sequence length (GPT-2: padded widths of "
                    "the batches drawn)", "pretraining": pre, "finetuning": ft}


# ---- the demo's commands ------------------------------------------------------------------------
def demo_steps(out: Path, data_dir: str | None, seed: int, matching: dict | None = None) -> tuple[list[Step], dict]:
    """The demo's commands. Without a data dir everything comes from generated bAbI task-1 stories.
    `matching`: compute_matching's result (the GPT-2 step counts); None = compute it here."""
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
                            f"train.eval_every={g_steps}", f"train.seed={seed}", f"train.threads={THREADS}") for a in ("--set", o)]
    attack = ["attack", "--type", ATTACKS, "--task", "babi", "--rates", RATES, "--limit", str(LIMIT),
              "--seed", str(seed), "--finetune", "--finetune-batch", str(FT_BATCH), "--finetune-lr", f"{FT_LR:g}",
              "--threads", str(THREADS), *babi]
    ap, ag = out / "attack-pixar", out / "attack-gpt2"
    steps = [
        Step("pixar stage 1", ["train", "--stage", "1", "--config", PIXAR_PRESET, *px_sets, *data, "--out", str(s1)],
             str(s1 / "last")),
        *[Step("pixar stage 2", ["train", "--stage", "2", "--init", str(s1),  # the stage-1 checkpoint's config
                               *[a for o in PIXAR_STAGE2 + [f"train.seed={seed}"] for a in ("--set", o)], *data,
                               "--out", str(s2)], str(s2 / "last"))] * bool(PIXAR_STAGE2),
        Step("gpt2 same pretraining FLOPs", ["train", "--model", "gpt2", "--config", GPT2_PRESET, *gpt_sets, *data,
                                             "--out", str(gpt)], str(gpt / "final"),
             note=f"{g_steps} GPT-2 steps = the FLOPs of PIXAR's {pre['pixar_steps']} stage-1 steps"),
        Step("pixar fine-tuned + attacked", [*attack, "--checkpoint", str(pixar_ckpt), "--finetune-steps",
                                             str(ft["pixar_steps"]), "--out", str(ap)], str(ap / "summary.json")),
        Step("gpt2 fine-tuned + attacked (same FLOPs)", [*attack, "--baseline", str(gpt / "final"), "--finetune-steps",
                                                         str(ft["gpt2_steps"]), "--out", str(ag)],
             str(ag / "summary.json"),
             note=f"{ft['gpt2_steps']} GPT-2 steps = the FLOPs of PIXAR's {ft['pixar_steps']} fine-tuning steps; "
                  "same examples, perturbations and seed as the PIXAR run"),
    ]
    return steps, {"babi_dir": str(babi_dir) if data_dir is None else None, "matching": matching}


def demo_matching(out: Path, data_dir: str | None, stories: Path, seed: int) -> dict:
    """compute_matching on the demo's data: GPT-2's pretraining chunks and bAbI fine-tuning texts."""
    from pixar.data.stream import build_splits
    from pixar.config import preset_path

    from harness.robustness.tasks import load_task_data
    from harness.models.gpt2_baselines import gpt2_tokenizer
    from harness.models.gpt2_pretrain import GPT2BaselineConfig

    sets = GPT2_MODEL + [f"train.seed={seed}", f"train.data=[{stories}]"]
    cfg = GPT2BaselineConfig.from_yaml(preset_path(GPT2_PRESET), sets)
    chunks = list(build_splits(cfg.train, data_dir).train)
    babi = load_task_data("babi", LIMIT, data_dir, babi_dir=None if data_dir else str(out / "babi"), with_train=True)
    texts = [f"{p} {a}" for p, a in babi.train_pairs]  # what GPT2Runner.finetune trains on
    matching = compute_matching(chunks, texts, gpt2_tokenizer(data_dir), seed)
    atomic_write_text(out / "matching.json", json.dumps(matching, indent=2))
    return matching


def write_generated_data(out: Path, seed: int) -> Path:
    """Generated bAbI task-1 files + a pretraining text of whole stories in the paper's prompt format."""
    from harness.tasks.babi_generator import write_task1
    from harness.tasks.babi import parse_babi_file

    paths = write_task1(out / "babi", train=2000, test=200, seed=seed)
    questions = parse_babi_file(paths["train"], task=1)
    text = "\n".join(f"{q.paper_prompt()} {q.answer}" for q in questions)
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
    failed = []
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
    from harness.robustness.suite import attack_comparison, comparison_markdown

    result = attack_comparison(out / "attack-pixar" / "babi-qa1_predictions.jsonl",
                               out / "attack-gpt2" / "babi-qa1_predictions.jsonl", "babi", seed)
    rows = result["rows"]
    m = json.loads((out / "matching.json").read_text())
    pre, ft = m["pretraining"], m["finetuning"]
    text = [
        "# PIXAR vs GPT-2 on bAbI task 1 under orthographic attack, at equal compute", "",
        f"Fine-tuned on bAbI task 1 with equal executed FLOPs: PIXAR {ft['pixar_steps']} steps x {ft['pixar_batch']} "
        f"({ft['pixar_flops'] / 1e12:.2f} TFLOP), GPT-2 {ft['gpt2_steps']} steps x {ft['gpt2_batch']} "
        f"({ft['gpt2_flops'] / 1e12:.2f} TFLOP; {ft['gpt2_mean_padded_tokens']:.1f} padded tokens per row). "
        f"Pretrained with equal FLOPs: PIXAR stage 1 {pre['pixar_steps']} steps ({pre['pixar_flops'] / 1e12:.2f} "
        f"TFLOP{'; + a short stage 2' if PIXAR_STAGE2 else ''}), GPT-2 {pre['gpt2_steps']} steps ({pre['gpt2_flops'] / 1e12:.2f} TFLOP). "
        f"FLOPs = {m['rule']} (matching.json).", "",
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
@click.option("--force", is_flag=True, help="Rerun steps whose outputs exist.")
@one_line_errors("demo")
def demo(out, data_dir, seed, force):
    """Offline demo: PIXAR (stage 1 + 2) vs GPT-2 at equal compute, fine-tuned on bAbI task 1 and attacked."""
    from pixar.paths import data_dir as resolve_data

    try:
        d = resolve_data(data_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e))
    out_path = make_out_dir(out, "demo folder")
    out_path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    steps, _ = demo_steps(out_path, str(d) if d else None, seed)
    records = run_chains(steps, out_path, force)
    table, rows = demo_table(out_path, seed)
    atomic_write_text(out_path / "demo_table.md", table)
    atomic_write_text(out_path / "demo_table.json", json.dumps(rows, indent=2))
    click.echo("\n" + table)
    click.echo(f"demo finished in {time.time() - t0:.0f} s; table: {out_path / 'demo_table.md'} (+ .json); "
               f"per-model attack reports: {out_path / 'attack-pixar'}, {out_path / 'attack-gpt2'}; "
               f"steps: {out_path / 'steps.json'} ({len(records)} recorded)")


if __name__ == "__main__":
    refuse_module_run("harness.study.demo", "demo")
