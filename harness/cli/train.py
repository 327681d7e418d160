"""`pixar train`: stage 1 (maximum likelihood), stage 2 (adversarial) or the GPT-2 baseline.

    pixar train --stage 1 --config pixar-tiny [--set train.steps=100 ...] [--out runs/x] [--resume]
    pixar train --stage 2 --init runs/pixar-tiny-stage1/step-0000600 --config pixar-tiny
    pixar train --model gpt2 --config gpt2-tiny [--resume auto]                         (same-budget baseline)
    torchrun --nproc-per-node 4 -m harness.app train --stage 1 --config pixar-113m      (DDP; --model gpt2 too)

Every expected failure (missing corpus, bad config or checkpoint, diverged run) is one line.
"""
from __future__ import annotations

from pathlib import Path

import click


def load_train_config(config: str | None, overrides: list[str], init: str | None = None):
    """A preset name/YAML path with `--set` overrides; without --config, the --init checkpoint's config."""
    from pixar.checkpoint.store import load_config
    from pixar.config import PixarConfig, apply_override, from_dict, preset_path

    if config is not None:
        return PixarConfig.from_yaml(preset_path(config), list(overrides))
    if init is not None:
        raw = load_config(init).to_dict()
        for item in overrides:
            apply_override(raw, item)
        return from_dict(PixarConfig, raw, where=f"{init}/config.json")
    return PixarConfig.from_yaml(preset_path("pixar-tiny"), list(overrides))


def train_pixar(stage: str, config, overrides, out, resume, init, data_dir, device) -> str:
    """PIXAR stage 1 (pixar.train.stage1) or stage 2 (pixar.train.stage2, with the step curve when adv.eval_every > 0)."""
    cfg = load_train_config(config, list(overrides), init if stage == "2" else None)
    out = out or f"runs/{cfg.name}-stage{stage}"
    if stage == "1":
        from pixar.train.stage1 import train_stage1

        if init:
            raise click.UsageError("--init is for --stage 2 (stage 1 starts from scratch or --resume)")
        return f"stage 1 finished: {train_stage1(cfg, out, device=device, resume=resume, data_dir=data_dir)}"
    if not init and resume == "false":
        raise click.UsageError("--stage 2 needs --init <stage-1 checkpoint> (or --resume)")
    from pixar.train.stage2 import train_stage2

    evaluate = None
    if cfg.adv.eval_every > 0:  # the stage-2 step curve (harness.eval.step_curve)
        from harness.eval.step_curve import curve_evaluator

        evaluate = curve_evaluator(cfg, out, data_dir, seed=cfg.train.seed)
    path = train_stage2(cfg=cfg, init=init, out_dir=out, device=device, resume=resume, data_dir=data_dir,
                        evaluate=evaluate)
    return f"stage 2 finished: {path}"


def train_gpt2_baseline(stage: str, config, overrides, out, resume, init, data_dir, device) -> str:
    """The same-budget GPT-2 (harness.models.gpt2_pretrain), through the same run machinery as stage 1."""
    from pixar.config import preset_path

    from harness.models.gpt2_pretrain import train_gpt2

    if init or stage != "1":
        raise click.UsageError("--model gpt2 pretrains from scratch or --resume (no --stage 2 or --init)")
    config = config or "gpt2-tiny"
    path = train_gpt2(str(preset_path(config)), list(overrides), out or f"runs/{Path(config).stem}", data_dir,
                      device=device, resume=resume)
    return f"gpt2 baseline: {path}"


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
@click.option("--model", "model_kind", type=click.Choice(sorted(TRAINERS)), default="pixar", show_default=True,
              help="gpt2 trains the same-budget GPT-2 baseline (harness.models.gpt2_pretrain).")
def train(stage, config, overrides, out, resume, init, data_dir, device, model_kind):
    """Train PIXAR (stage 1 or 2) or the GPT-2 baseline on the configured text.

    On SIGTERM or SIGUSR1 (SLURM's warning signals) the run finishes its step, saves a checkpoint and exits 0
    with the command that resumes it (`--resume auto`). A second run on the same --out is refused."""
    from pixar.checkpoint.store import CheckpointError
    from pixar.config import ConfigError
    from pixar.data.sources import DataError
    from pixar.train.loop import Preempted, TrainingError
    from pixar.paths import DataNotFound
    from pixar.paths import data_dir as find_data_dir
    from pixar.train.runlock import RunLockError

    expected = (ConfigError, DataError, DataNotFound, CheckpointError, TrainingError, RunLockError)
    try:
        if data_dir:
            data_dir = str(find_data_dir(data_dir))  # passed down explicitly (fonts, corpus, DataLoader workers)
        message = TRAINERS[model_kind](stage, config, overrides, out, resume, init, data_dir, device)
    except Preempted as p:
        click.echo(p.message)
        return
    except expected as e:
        raise click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    click.echo(message)
