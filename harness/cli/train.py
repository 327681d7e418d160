"""`pixar train`: stage 1 (maximum likelihood), stage 2 (adversarial) or the GPT-2 baseline.

    pixar train --stage 1 --config pixar-tiny [--set train.steps=100 ...] [--out runs/x] [--resume]
    pixar train --stage 2 --init runs/pixar-tiny-stage1/step-0000600 --config pixar-tiny
    pixar train --model gpt2 --config gpt2-tiny [--resume auto]                         (same-budget baseline)
    torchrun --nproc-per-node 4 -m harness.app train --stage 1 --config pixar-113m      (DDP; --model gpt2 too)

Every expected failure (missing corpus, bad config or checkpoint, diverged run) is one line.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from pixar.checkpoint.store import load_config, load_meta
from pixar.config import PixarConfig, preset_path
from pixar.config_io import apply_override, from_dict
from pixar.errors import PixarError
from pixar.paths import data_dir as find_data_dir
from pixar.train.loop import Preempted
from pixar.train.preempt import resume_checkpoint
from pixar.train.run_state import config_changes
from pixar.train.stage1 import train_stage1
from pixar.train.stage2 import train_stage2

from harness.cli import refuse_module_run
from harness.cli.errors import one_line
from harness.cli.render import make_out_dir, torch_device
from harness.eval.step_curve import curve_evaluator
from harness.models.gpt2_pretrain import GPT2BaselineConfig, train_gpt2


def load_train_config(config: str | None, overrides: list[str], init: str | None = None):
    """A preset name/YAML path with `--set` overrides; without --config, the --init checkpoint's config."""
    if config is not None:
        return PixarConfig.from_yaml(preset_path(config), list(overrides))
    if init is not None:
        raw = load_config(init).to_dict()
        for item in overrides:
            apply_override(raw, item)
        return from_dict(PixarConfig, raw, where=f"{init}/config.json")
    return PixarConfig.from_yaml(preset_path("pixar-tiny"), list(overrides))


@contextlib.contextmanager
def no_empty_run_folder(out: str | os.PathLike):
    """A run refused before it wrote anything (bad data, config, checkpoint) leaves no empty --out behind;
    a folder that existed before, or holds anything, is left as it is."""
    out = Path(out).absolute()
    created = [p for p in [out, *out.parents] if not p.exists()]  # what this run may create, innermost first
    try:
        yield
    except BaseException:
        for p in created:
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
        raise


def is_rank0() -> bool:
    """Rank 0 of a torchrun/SLURM launch (or a single process): the one that prints the summary line."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) or 0) == 0


def check_resume_config(cfg, out: str, resume: str, allow_change: bool) -> None:
    """--resume continues the SAME run: a checkpoint saved under other train/adv settings (lr, data, batch, ...)
    is refused (one line listing them) unless --allow-config-change, which records the change in metrics.jsonl."""
    import json
    import time

    ckpt = resume_checkpoint(out, resume) if resume != "false" else None
    if ckpt is None:
        return
    changed = config_changes(load_config(ckpt), cfg)
    if not changed:
        return
    listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
    if not allow_change:
        raise click.ClickException(f"{ckpt}: the train config differs from the checkpoint's ({listed}); --resume "
                                   "would not continue the same run: pass --allow-config-change to resume anyway "
                                   "(recorded in metrics.jsonl) or choose another --out")

    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun every rank gets here; rank 0 records
        return
    step = int(load_meta(ckpt).get("step", 0))
    with open(Path(out) / "metrics.jsonl", "a") as fh:  # kept by the resumed run (its records start after `step`)
        fh.write(json.dumps({"step": step, "event": "config_change", "changed": changed, "checkpoint": ckpt.name,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    click.echo(f"resuming {ckpt} with a changed config ({listed}); recorded in {Path(out) / 'metrics.jsonl'}", err=True)


def train_pixar(stage: str, config, overrides, out, resume, init, data_dir, device, allow_change=False) -> str:
    """PIXAR stage 1 (pixar.train.stage1) or stage 2 (pixar.train.stage2, with the step curve when adv.eval_every > 0)."""
    cfg = load_train_config(config, list(overrides), init if stage == "2" else None)
    out = out or f"runs/{cfg.name}-stage{stage}"
    make_out_dir(out, "run folder")
    check_resume_config(cfg, out, resume, allow_change)
    if stage == "1":
        if init:
            raise click.UsageError("--init is for --stage 2 (stage 1 starts from scratch or --resume)")
        with no_empty_run_folder(out):
            return f"stage 1 finished: {train_stage1(cfg, out, device=device, resume=resume, data_dir=data_dir)}"
    if not init and resume == "false":
        raise click.UsageError("--stage 2 needs --init <stage-1 checkpoint> (or --resume)")

    evaluate = None
    if cfg.adv.eval_every > 0:  # the stage-2 step curve (harness.eval.step_curve)
        evaluate = curve_evaluator(cfg, out, data_dir, seed=cfg.train.seed)
    with no_empty_run_folder(out):
        path = train_stage2(cfg=cfg, init=init, out_dir=out, device=device, resume=resume, data_dir=data_dir,
                            evaluate=evaluate)
    return f"stage 2 finished: {path}"


def train_gpt2_baseline(stage: str, config, overrides, out, resume, init, data_dir, device, allow_change=False) -> str:
    """The same-budget GPT-2 (harness.models.gpt2_pretrain), through the same run machinery as stage 1."""
    if init or stage != "1":
        raise click.UsageError("--model gpt2 pretrains from scratch or --resume (no --stage 2 or --init)")
    config = config or "gpt2-tiny"
    out = out or f"runs/{Path(config).stem}"
    with no_empty_run_folder(out):
        path = train_gpt2(str(preset_path(config)), list(overrides), out, data_dir, device=device, resume=resume)
        return f"gpt2 baseline: {path}"


def print_config(model_kind: str, stage: str, config, overrides, init) -> str:
    """--print-config: the resolved config (preset + --set overrides, or the --init checkpoint's) as YAML."""
    if model_kind == "gpt2":
        import dataclasses

        import yaml

        cfg = GPT2BaselineConfig.from_yaml(preset_path(config or "gpt2-tiny"), list(overrides))
        return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False).rstrip()
    return load_train_config(config, list(overrides), init if stage == "2" else None).to_yaml().rstrip()


TRAINERS = {"pixar": train_pixar, "gpt2": train_gpt2_baseline}
"""--model -> the function that trains it (a registry: no model switch in the command)."""


@click.command()
@click.option("--stage", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="1 = maximum likelihood, 2 = adversarial fine-tuning of a stage-1 checkpoint.")
@click.option("--config", help="Preset name (configs/<name>.yaml) or YAML path. Default: pixar-tiny "
                               "(gpt2-tiny with --model gpt2), or for --stage 2 the --init checkpoint's config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override, e.g. train.steps=100.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder. Default: runs/<name>-stage<k>.")
@click.option("--resume", type=click.Choice(["auto", "true", "false"]), default="false", show_default=True,
              is_flag=False, flag_value="true",
              help="Continue the run in --out from its last checkpoint: true (must exist; bare --resume), auto "
                   "(if there is one: a requeued cluster job reruns the same command), false (a fresh run).")
@click.option("--init", type=click.Path(), help="Stage-1 checkpoint folder to start stage 2 from.")
@click.option("--data-dir", type=click.Path(), help="Data folder (default: $PIXAR_DATA).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--allow-config-change", is_flag=True,
              help="With --resume: continue although train/adv settings (lr, data, batch, ...) differ from the "
                   "checkpoint's (the change is recorded in metrics.jsonl).")
@click.option("--model", "model_kind", type=click.Choice(sorted(TRAINERS)), default="pixar", show_default=True,
              help="gpt2 trains the same-budget GPT-2 baseline (harness.models.gpt2_pretrain).")
@click.option("--print-config", "show_config", is_flag=True,
              help="Print the resolved config (preset + --set overrides) as YAML and exit without training.")
def train(stage, config, overrides, out, resume, init, data_dir, device, allow_config_change, model_kind, show_config):
    """Train PIXAR (stage 1 or 2) or the GPT-2 baseline on the configured text.

    On SIGTERM or SIGUSR1 (SLURM's warning signals) the run finishes its step, saves a checkpoint and exits 0
    with the command that resumes it (`--resume auto`). A second run on the same --out is refused."""
    try:
        if show_config:
            click.echo(print_config(model_kind, stage, config, overrides, init))
            return
        if data_dir:
            data_dir = str(find_data_dir(data_dir))  # passed down explicitly (fonts, corpus, DataLoader workers)
        if device != "auto":
            torch_device(device)
        message = TRAINERS[model_kind](stage, config, overrides, out, resume, init, data_dir, device,
                                       allow_change=allow_config_change)
    except Preempted as p:
        if is_rank0():
            click.echo(p.message)
        return
    except PixarError as e:
        raise click.ClickException(one_line(e)) from None
    except OSError as e:  # the environment, not a bug: a read-only or full disk, a file where a folder belongs
        where = e.filename or out or "the run folder"
        raise click.ClickException(f"{where}: cannot create or write ({e.strerror or e})") from None
    if is_rank0():  # one summary line per run, not one per DDP rank
        click.echo(message)


if __name__ == "__main__":
    refuse_module_run("harness.cli.train", "train")
