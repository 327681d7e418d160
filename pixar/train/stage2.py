"""Stage 2 as a run: adversarial fine-tuning of a stage-1 checkpoint (the paper's adversarial stage) on pixar.train.loop's loop.

The step itself (G and D updates, lambda_auto, alpha warm-up) is pixar.train.adversarial.AdversarialTrainer; this
module loads the stage-1 generator (or resumes a stage-2 run), builds the discriminator, feeds batches that
continue after the chunks stage 1 consumed, and logs, samples and checkpoints:

    metrics.jsonl            one record per step (LOGGED_KEYS and more)
    samples/step-XXXXXXX.png greedy continuations (step 0 = before stage 2)
    step-XXXXXXX/            the generator as a normal PIXAR checkpoint (pixar.model.transformer.load_model);
                             discriminator + both optimisers + lambda in its training state
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from pixar.train import parallel
from pixar.train.adversarial import AdversarialTrainer
from pixar.checkpoint.store import CheckpointError, load_state, load_weights, resolve_checkpoint
from pixar.model.transformer import load_model
from pixar.config import PixarConfig
from pixar.config_io import ConfigError
from pixar.data.stream import ChunkStream, build_splits, make_loader
from pixar.model.discriminator import Discriminator
from pixar.train.loop import Schedule, TrainingError, every
from pixar.model.transformer import Pixar
from pixar.paths import with_fonts
from pixar.train.runlock import RunLock
from pixar.train.run_state import (DistInfo, MetricsLogger, all_reduce_mean, autocast, capture_rng_state, check_compatible,
                   prepare_out_dir, resolve_precision, restore_rng_state, setup_distributed)
from pixar.train.run_state import set_cpu_threads
from pixar.train.run import run_preemptible, save_run_checkpoint
from pixar.train.stage1 import sample_prompts, save_samples

LOGGED_KEYS = ("d_loss", "g_bce", "g_adv", "lambda_auto", "alpha_t", "d_acc_real", "d_acc_fake", "lr")
"""Keys every per-step metrics.jsonl record of stage 2 carries (among others)."""
RANK_AVERAGED = ("d_loss", "d_loss_real", "d_loss_fake", "g_bce", "g_adv", "d_acc_real", "d_acc_fake")


def stream_start(init: Path, num_chunks: int) -> int:
    """Chunks stage 1 consumed (from its state.json), so stage 2 continues on unseen chunks; 0 if unknown."""
    try:
        skel = json.loads((init / "state.json").read_text())
        top = dict(skel["__dict__"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    consumed, n = top.get("consumed"), top.get("num_train_chunks")
    return consumed if isinstance(consumed, int) and n == num_chunks else 0


def train_stage2(cfg: PixarConfig, init: str | os.PathLike | None, out_dir: str | os.PathLike, device: str = "auto",
                 resume: str | bool = False, data_dir: str | os.PathLike | None = None,
                 after_step: Callable[[int, AdversarialTrainer], None] | None = None,
                 evaluate: Callable[[Pixar], dict[str, float]] | None = None) -> Path:
    """Adversarial fine-tuning of the stage-1 checkpoint `init` (a checkpoint or run folder) for cfg.adv.steps
    steps, or resume the run in `out_dir` (resume "auto" | "true" | "false"). Returns the final checkpoint folder.
    On SIGTERM/SIGUSR1 it finishes the step, saves and raises pixar.train.loop.Preempted (how to resume).

    `evaluate(generator) -> {name: value}` (optional): the stage-2 step curve. Called on the main process before
    the first step (step 0), every cfg.adv.eval_every steps and after the last; its values land in that step's
    metrics.jsonl record as `curve_<name>` (step 0 gets a record of its own)."""
    info = setup_distributed(device)
    try:
        with RunLock(out_dir) if info.is_main else contextlib.nullcontext():
            return _stage2(cfg, init, Path(out_dir), info, resume, data_dir, after_step, evaluate)
    finally:
        if info.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _models(cfg: PixarConfig, init, ckpt: Path | None, info: DistInfo):
    """(generator, discriminator, stage-2 state or None, init path): from the stage-1 `init` or a stage-2 `ckpt`."""
    tc = cfg.train
    if ckpt is None:
        if init is None:
            raise TrainingError("stage 2 needs --init <stage-1 checkpoint> (or --resume of a stage-2 run)")
        init = resolve_checkpoint(init)
        gen, _ = load_model(init, info.device)  # CheckpointError names a missing/corrupt checkpoint
        check_compatible(cfg, init)
        return gen, Discriminator.from_generator(gen, head_seed=tc.seed), None, init
    check_compatible(cfg, ckpt)
    with torch.random.fork_rng(devices=[]):  # weights are loaded next: the init only has to be scoped
        gen, disc = Pixar(cfg.model), Discriminator.from_config(cfg.model)
    state = load_state(ckpt)
    if parallel.is_sharded(ckpt):  # both models and optimisers come from the shards, after wrapping
        return gen, disc, state, state.get("init")
    if cfg.train.parallel == "fsdp" and info.world_size > 1:
        raise TrainingError(f"{ckpt} was saved unsharded (train.parallel=ddp); resume it with ddp")
    load_weights(gen, ckpt)
    missing, unexpected = disc.load_state_dict(state["discriminator"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{ckpt}: discriminator weights do not match the config")
    return gen, disc, state, state.get("init")


def _stage2(cfg: PixarConfig, init, out: Path, info: DistInfo, resume, data_dir, after_step, evaluate) -> Path:
    acfg, tc = cfg.adv, cfg.train
    precision = resolve_precision(tc.precision, info.device)
    if precision == "fp16":
        raise ConfigError("stage 2 runs in fp32 or bf16 (train.precision=auto|fp32|bf16), not fp16")
    if acfg.batch_size % info.world_size:
        raise ConfigError(f"adv.batch_size {acfg.batch_size} must be divisible by the world size {info.world_size}")
    set_cpu_threads(tc.threads)  # 0 = auto (pixar.train.run_state.cpu_threads)
    ckpt = prepare_out_dir(out, resume)
    gen, disc, state, init = _models(cfg, init, ckpt, info)
    gen, disc = gen.to(info.device).train(), disc.to(info.device).train()
    splits = build_splits(tc, data_dir)
    parallel.configure_cuda(info.device)
    gen, disc = parallel.prepare_model(gen, tc, info.device), parallel.prepare_model(disc, tc, info.device)
    if tc.parallel == "fsdp":  # both sharded; under ddp the trainer all-reduces the unwrapped models' gradients
        gen, disc = parallel.wrap(gen, "fsdp", info.device), parallel.wrap(disc, "fsdp", info.device)
    fsdp = parallel.is_fsdp(gen)

    sched_g = Schedule.of(acfg, lr=acfg.optim.lr, total_steps=acfg.cosine_steps)
    sched_d = Schedule.of(acfg, lr=acfg.lr_d, total_steps=acfg.cosine_steps)
    trainer = AdversarialTrainer(gen, disc, cfg, lambda s: sched_g(s - 1), lambda s: sched_d(s - 1), seed=tc.seed,
                                 autocast=lambda: autocast(precision, info.device),
                                 optimizers=(parallel.make_adamw(gen.parameters(), acfg.optim, info.device),
                                             parallel.make_adamw(disc.parameters(), acfg.optim, info.device, acfg.lr_d)))
    modules = {"generator": gen, "discriminator": disc}
    optimizers = {"generator": trainer.opt_g, "discriminator": trainer.opt_d}
    start, consumed = 0, stream_start(Path(init), len(splits.train)) if ckpt is None else 0
    if state is not None:
        if parallel.is_sharded(ckpt):
            parallel.load_sharded(ckpt, modules, optimizers)
        trainer.load_state_dict(state["trainer"])
        restore_rng_state(state["rng"])
        start, consumed = int(state["step"]), int(state["consumed"])
    stream = ChunkStream(splits.train, with_fonts(cfg.render, data_dir), tc.seed, acfg.batch_size, consumed, info.rank,
                         info.world_size, 1, first_step=0)
    loader = iter(make_loader(stream, tc.num_workers, pin_memory=info.device.type == "cuda"))
    renderer = stream.renderer()
    prompts = sample_prompts(splits.val or splits.train, renderer) if info.is_main else []
    metrics = MetricsLogger(out, info.is_main, resume_step=start if ckpt is not None else None, tag="stage2")
    if info.is_main:
        cfg.to_yaml(out / "config.yaml")

    def sample(at: int) -> None:
        if info.is_main and prompts and not fsdp:  # rank 0 alone runs the generator: not under FSDP
            save_samples(gen, renderer, prompts, out / "samples" / f"step-{at:07d}.png", cfg.render.max_positions // 4)

    def curve(step: int) -> dict:
        if evaluate is None or acfg.eval_every <= 0 or not info.is_main or fsdp:
            return {}
        if not (step == 0 or every(acfg.eval_every, step, acfg.steps)):
            return {}
        was = gen.training
        gen.eval()
        with torch.no_grad():
            values = evaluate(gen)
        gen.train(was)
        return {f"curve_{k}": float(v) for k, v in values.items()}

    def step_fn(step: int) -> dict:
        batch = next(loader)
        m = trainer.step(step + 1, batch["pixels"], batch["mask"])
        m.update(zip(RANK_AVERAGED, all_reduce_mean([m[k] for k in RANK_AVERAGED], info)))
        return m

    done = {"last": ckpt, "saved_at": start}
    positions_per_step = acfg.batch_size * cfg.render.max_positions

    def save(step: int) -> None:
        n = step - start
        state = {"step": step, "consumed": consumed + n * acfg.batch_size, "data": stream.position_after(n).to_dict(),
                 "num_train_chunks": len(splits.train), "trainer": trainer.state_dict(optimizers=not fsdp),
                 "rng": capture_rng_state(), "init": str(init) if init is not None else None}
        if not fsdp:
            state["discriminator"] = disc.state_dict()
        done["last"] = save_run_checkpoint(out, step, gen, cfg, state, tc.keep_last, info, meta={"stage": 2},
                                           sharded=(modules, optimizers) if fsdp else None)
        done["saved_at"] = step

    def on_step(step: int, m: dict) -> None:
        sec = m.pop("step_seconds")
        metrics.log({"step": step, **m, "sec_per_step": sec, "positions_per_s": positions_per_step / max(sec, 1e-9),
                     **curve(step)})
        if every(acfg.sample_every, step, acfg.steps):
            sample(step)
        if every(acfg.save_every, step, acfg.steps):
            save(step)
        if after_step is not None:  # after logging and saving (tests inject faults here)
            after_step(step, trainer)

    def kept(step: int, e: Exception) -> str:
        return f"last good checkpoint: {done['last']}" if done["last"] is not None else "no stage-2 checkpoint was saved"

    if ckpt is None:
        sample(0)  # before stage 2
        if start_curve := curve(0):
            metrics.log({"step": 0, **start_curve})
    try:
        run_preemptible(step_fn, start, acfg.steps, save, done, hooks=[on_step], desc="stage 2", progress=info.is_main,
                        on_error=kept, postfix=lambda m: {"d": f"{m['d_loss']:.3f}", "bce": f"{m['g_bce']:.4f}",
                                                          "adv": f"{m['g_adv']:.3f}", "lam": f"{m['lambda_auto']:.2g}"})
    finally:
        metrics.close()
    return done["last"] if done["last"] is not None else out
