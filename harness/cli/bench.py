"""`pixar bench`: a click group, one subcommand per benchmark.

    pixar bench lambada --checkpoint DIR [--baseline gpt2|DIR ...] [--limit N] [--protocol paper|lm-eval]
                        [--ocr glyph|tesseract|union] [--out results/...]
    pixar bench babi    --checkpoint DIR --tasks 1,2 [--variant en|en-10k] [--babi-dir DIR] [--finetune] ...
    pixar bench glue    (harness/cli/glue.py)

Adding a benchmark from another module (GLUE does this): define a click command in that module and list it
in LAZY_SUBCOMMANDS below ({"name": ("module", "attribute")}); it is imported only when used, so
`pixar bench lambada` never pays for its imports. A module may also call `bench.add_command(cmd)` itself
(then it must be imported before the CLI runs); the lazy table is the preferred way.

Every expected failure (bad checkpoint, missing data, unknown task or protocol, unusable baseline, missing OCR
engine: a pixar.errors.PixarError) ends as one line (harness.cli.errors); -v on `pixar` shows the traceback in the
log; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from pixar.provenance import slug

from harness.app import LazyGroup
from harness.cli import refuse_module_run
from harness.cli.errors import one_line_errors
from harness.cli.render import make_out_dir, torch_device
from harness.eval.bench import run_babi, run_lambada
from harness.models.finetune import TaskFinetuneConfig

log = logging.getLogger(__name__)

LAZY_SUBCOMMANDS = {"glue": ("harness.cli.glue", "glue")}


class LazyBench(LazyGroup):
    lazy = LAZY_SUBCOMMANDS


@click.group(cls=LazyBench)
def bench() -> None:
    """Benchmarks: LAMBADA and bAbI (paper protocol + lm-eval), GLUE; PIXAR vs GPT-2 baselines."""


POSITIVE = click.IntRange(min=1)


def common_options(fn):
    options = [
        click.option("--checkpoint", type=click.Path(), help="PIXAR checkpoint folder."),
        click.option("--baseline", "baselines", multiple=True, metavar="gpt2|DIR",
                     help="GPT-2 baseline: 'gpt2' (HF cache/hub) or a save_pretrained folder (repeatable)."),
        click.option("--limit", type=POSITIVE, help="Evaluate only the first N examples (per task)."),
        click.option("--protocol", "protocols", multiple=True, metavar="NAME",
                     help="Protocol(s) to run (repeatable; default: paper and lm-eval): paper = the official "
                          "protocol (a model that cuts prompts to fit reports it as paper+fitN), paper-* = our "
                          "variants, paper-gpt2-official = evaluate_gpt2.py's rules for GPT-2 (docs/protocol.md), "
                          "lm-eval."),
        click.option("--ocr", type=click.Choice(["glyph", "tesseract", "union"]),
                     help="Replace the protocol's read-back engines (default: the protocol's own, paper = glyph and "
                          "Tesseract, each reported with their union); the label then names the engines."),
        click.option("--context-cap", type=POSITIVE, help="Keep at most N context positions (a capped protocol is "
                                                      "labelled +capN): keeps a small model inside its trained range."),
        click.option("--out", type=click.Path(file_okay=False), help="Output folder (default results/<bench>/<run>)."),
        click.option("--batch-size", default=16, show_default=True, type=POSITIVE),
        click.option("--device", default="cpu", show_default=True),
        click.option("--data-dir", type=click.Path(), help="Data folder (default $PIXAR_DATA)."),
        click.option("--seed", default=0, show_default=True, help="Seed for sampling and fine-tuning."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _out_dir(out: str | None, bench_name: str, checkpoint: str | None, baselines, limit, tag: str = "") -> Path:
    if out:
        return Path(out)

    p = Path(checkpoint or baselines[0])
    base = f"{p.parent.name}-{p.name}" if p.parent.name else p.name  # e.g. pixar-tiny-stage1-step-0000600
    run = slug(base) + tag + (f"-limit{limit}" if limit else "")
    return Path("results") / bench_name / run


def _validate(checkpoint, baselines, limit, device="cpu"):
    if not checkpoint and not baselines:
        raise click.UsageError("pass --checkpoint DIR and/or --baseline gpt2|DIR")
    if limit is not None and limit <= 0:
        raise click.UsageError(f"--limit must be positive, got {limit}")
    torch_device(device)


@bench.command()
@common_options
@one_line_errors("bench lambada")
def lambada(checkpoint, baselines, limit, protocols, ocr, context_cap, out, batch_size, device, data_dir, seed):
    """LAMBADA (5,153 passages): the paper's protocol (original test set) and its variants, lm-eval loglikelihood
    (OpenAI's set)."""
    _validate(checkpoint, baselines, limit, device)
    out_dir = make_out_dir(_out_dir(out, "lambada", checkpoint, baselines, limit))
    run_lambada(checkpoint, list(baselines), out_dir, limit=limit, protocols=tuple(protocols or ("paper", "lm-eval")),
                ocr=ocr, batch_size=batch_size, device=device, data_dir=data_dir, seed=seed, context_cap=context_cap)
    click.echo(f"results: {out_dir}")


@bench.command()
@common_options
@click.option("--tasks", default="1", show_default=True, help="bAbI tasks: '1,2', '1-20' or 'all'.")
@click.option("--variant", type=click.Choice(["en", "en-10k"]), default="en", show_default=True,
              help="bAbI files: en (1k train) or en-10k (10k train); the test files are the same.")
@click.option("--babi-dir", type=click.Path(), help="Folder of qa*_{train,test}.txt (e.g. harness.tasks.babi_generator output).")
@click.option("--finetune", is_flag=True, help="Train each model on the task's train split first.")
@click.option("--finetune-steps", default=300, show_default=True, type=POSITIVE)
@click.option("--finetune-lr", default=1e-3, show_default=True, type=click.FloatRange(0, 10, min_open=True))
@click.option("--finetune-batch", default=16, show_default=True, type=POSITIVE)
@one_line_errors("bench babi")
def babi(checkpoint, baselines, limit, protocols, ocr, context_cap, out, batch_size, device, data_dir, seed, tasks,
         variant, babi_dir, finetune, finetune_steps, finetune_lr, finetune_batch):
    """bAbI QA tasks 1-20: paper prompt format (' |') and lm-eval's Passage/Question/Answer format."""
    _validate(checkpoint, baselines, limit, device)
    fc = TaskFinetuneConfig.of(finetune_steps, finetune_lr, finetune_batch, seed) if finetune else None
    out_dir = make_out_dir(_out_dir(out, "babi", checkpoint, baselines, limit, "-finetuned" if finetune else ""))
    run_babi(checkpoint, list(baselines), out_dir, tasks=tasks, variant=variant, babi_folder=babi_dir, limit=limit,
             protocols=tuple(protocols or ("paper", "lm-eval")), ocr=ocr, batch_size=batch_size, device=device,
             data_dir=data_dir, seed=seed, finetune=fc, context_cap=context_cap)
    click.echo(f"results: {out_dir}")


if __name__ == "__main__":
    refuse_module_run("harness.cli.bench", "bench")
