"""`pixar demo`, the README's first command: offline, a few minutes on 2 cores.

A micro PIXAR (stage 1 + stage 2) and a same-budget GPT-2 are trained on the book corpus (data dir) or, with no
data dir, on generated bAbI task-1 stories; both are fine-tuned and benchmarked on bAbI task 1 and attacked with
`swap`; the comparison table and the attack plot are printed/written under --out (harness.steps runs the steps).
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from pixar.config import atomic_write_text

from .steps import Step, run_steps


# ---- demo ---------------------------------------------------------------------------------------
def demo_steps(out: Path, data_dir: str | None, seed: int) -> tuple[list[Step], dict]:
    """The demo's commands. Without a data dir everything comes from generated bAbI task-1 stories."""
    babi_dir = out / "babi"
    if data_dir is None:
        stories = write_generated_data(out, seed)
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


def write_generated_data(out: Path, seed: int) -> Path:
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
