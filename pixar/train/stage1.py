"""Stage 1: maximum-likelihood pretraining (the paper's stage-1 pretraining), single process or torchrun/DDP.

    The loop, schedule and optimiser policy are pixar.train.loop's (AdamW, weight decay on all parameters; linear
    warm-up from 1e-5*lr, then cosine to min_lr_ratio*lr at train.steps; grad clipping; grad accumulation);
    run-folder state is pixar.train.run_state'. fp32 on CPU, bf16 autocast on CUDA (`auto`), fp16 + GradScaler when asked.

Output folder (`out`):
    metrics.jsonl        one JSON record per log/eval step: step, loss (this step's global-batch mean),
                         lr, grad_norm (before clipping), positions_per_s (batch x max_positions, padding
                         included, per second of step time over the log window), val_loss at eval steps
                         (step 0 = untrained). Losses are masked pixel BCE in nats per pixel, not perplexity.
    step-XXXXXXX/        checkpoints (pixar.checkpoint.store layout) with the training `state`
    last                 JSON pointer {"step", "path"} to the newest checkpoint, replaced atomically
    samples/step-XXXXXXX.png   greedy continuations of held-out prompts
    config.yaml          the resolved config

Resume (`resume=True`) restores weights, optimizer, RNG states and the data position, so the losses of
an interrupted + resumed run equal those of an uninterrupted one. With torchrun only rank 0 logs and
saves; every rank reads the checkpoint on resume (a shared filesystem is assumed for multi-node).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from pixar.train import parallel
from pixar.checkpoint.store import (CheckpointError, latest_checkpoint, load_state, load_weights, save_step_checkpoint,
                         step_checkpoints, step_path, write_last_pointer)
from pixar.config import ConfigError, PixarConfig, atomic_write
from pixar.data.stream import ChunkStream, build_splits, make_loader, render_texts
from pixar.train.loop import NonFiniteLoss, Preempted, Schedule, StandardStep, TrainingError, every, run_loop
from pixar.model.transformer import Pixar
from pixar.paths import with_fonts
from pixar.train.preempt import Preemption
from pixar.train.runlock import RunLock
from pixar.train.run_state import (DistInfo, MetricsLogger, all_reduce_mean, autocast, capture_rng_state, check_compatible,
                   prepare_out_dir, resolve_precision, restore_rng_state, setup_distributed)
from pixar.train.run_state import set_cpu_threads

__all__ = ["train_stage1", "validation_loss", "sample_prompts", "save_samples", "TrainingError", "NonFiniteLoss",
           "Preempted", "latest_checkpoint"]


# ---- evaluation and samples ----------------------------------------------------------------
@torch.no_grad()
def validation_loss(model: Pixar, batches: list[dict], info: DistInfo, precision: str) -> float:
    """Mean masked BCE over this rank's fixed validation micro-batches, averaged over all ranks
    (weighted by sequence count)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b in batches:
        pixels, mask = b["pixels"].to(info.device), b["mask"].to(info.device)
        with autocast(precision, info.device):
            _, loss = model(pixels, mask, pixels)
        total, count = total + float(loss) * len(pixels), count + len(pixels)
    model.train(was_training)
    if info.world_size > 1:
        t = torch.tensor([total, count], dtype=torch.float64, device=info.device)
        dist.all_reduce(t)
        total, count = t.tolist()
    return total / max(count, 1)


def sample_prompts(texts: list[str], renderer, n: int = 4) -> list[str]:
    """Up to n prompts from held-out chunks, each cut at a word so it fills at most half the strip."""
    half, prompts = renderer.cfg.max_positions // 2, []
    for text in texts[:n]:
        words = text.split()[: 3 * half // 2]
        while len(words) > 1 and int(renderer.render(" ".join(words)).eos_position[0]) > half:
            words = words[: max(1, len(words) * 3 // 4)]
        prompts.append(" ".join(words))
    return prompts


def save_samples(model: Pixar, renderer, prompts: list[str], path: Path, max_new_positions: int) -> None:
    """Greedy continuations as a PNG: per prompt, one row of binary pixels (prompt + greedy positions)
    and one row with the predicted white-probabilities of the generated positions in grey levels.
    The rule under each row is darker below the generated positions than below the prompt."""
    from pixar.model.generate import generate_from_text
    from pixar.model.transformer import unpatchify
    from pixar.render.renderer import to_image

    gen = generate_from_text(parallel.unwrap(model), renderer, prompts, max_new_positions)
    pw, H = gen.position_width, gen.pixels.shape[1]
    spans = [(int(gen.start[i]) * pw, (int(gen.start[i]) + int(gen.num_generated[i])) * pw) for i in range(len(prompts))]
    width, n = max(end for _, end in spans), len(prompts)
    canvas = np.ones(((H + 2) * 2 * n, width), dtype=np.float32)
    for i, (start, end) in enumerate(spans):
        probs = unpatchify(gen.probs[i: i + 1, : (end - start) // pw], H)[0].numpy()  # [H, end - start]
        for j, generated in enumerate((gen.pixels[i, :, start:end], probs)):
            top = (2 * i + j) * (H + 2)
            canvas[top: top + H, :start] = gen.pixels[i, :, :start]
            canvas[top: top + H, start:end] = generated
            canvas[top + H: top + H + 2, :start] = 0.8
            canvas[top + H: top + H + 2, start:end] = 0.4
    atomic_write(path, lambda tmp: to_image(canvas, scale=4).save(tmp, format="PNG"))


# ---- stage 1 -----------------------------------------------------------------------------------
def train_stage1(cfg: PixarConfig, out_dir: str | os.PathLike, device: str = "auto", resume: str | bool = False,
                 data_dir: str | os.PathLike | None = None,
                 after_step: Callable[[int, torch.nn.Module], None] | None = None) -> Path:
    """Run (or resume: "auto" | "true" | "false", True/False) stage 1 to cfg.train.steps; returns the final
    checkpoint folder. On SIGTERM/SIGUSR1 it finishes the step, saves and raises Preempted (how to resume).
    `after_step(step, model)` is called after every optimizer step (tests use it to inject faults)."""
    info = setup_distributed(device)
    try:
        with RunLock(out_dir) if info.is_main else contextlib.nullcontext():
            return _stage1(cfg, Path(out_dir), info, resume, data_dir, after_step)
    finally:
        if info.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def run_preemptible(step_fn, start: int, total: int, save: Callable[[int], None], done: dict, **loop_kwargs) -> int:
    """pixar.train.loop.run_loop under SIGTERM/SIGUSR1 handling: on a stop request it saves at the step reached (unless
    `done["saved_at"]` says that step is saved already) and raises Preempted with the line that resumes the run."""
    with Preemption() as pre:
        step = run_loop(step_fn, start, total, should_stop=pre.should_stop, **loop_kwargs)
        if step < total:
            if done["saved_at"] != step:
                save(step)
            raise Preempted(pre.resume_message(step, done["last"]), step, done["last"])
    return step


def save_run_checkpoint(out: Path, step: int, model: torch.nn.Module, cfg: PixarConfig, state: dict, keep_last: int,
                        info: DistInfo, meta: dict | None = None, sharded: tuple[dict, dict] | None = None) -> Path:
    """Write step checkpoint `<out>/step-XXXXXXX`, then the `last` pointer, then prune to `keep_last`.
    One process / DDP: rank 0 writes `model`'s weights and `state` (optimizer states included by the caller).
    FSDP: `sharded` = ({name: module}, {name: optimizer}) go through torch.distributed.checkpoint on every
    rank, rank 0 adds `state` and `model`'s gathered weights (so load_model reads the folder). A failed write
    keeps the previous checkpoint and pointer (CheckpointError, one line)."""
    path = step_path(out, step)
    if sharded is not None:
        modules, optimizers = sharded
        name = next(k for k, v in modules.items() if v is model)
        parallel.save_sharded(path, modules, optimizers, cfg, state=state if info.is_main else None,
                              meta={"step": step, **(meta or {})}, full_weights=name)
        if info.is_main:
            write_last_pointer(out, step, path)
            for old in (step_checkpoints(out)[:-keep_last] if keep_last > 0 else []):
                if old != path:
                    shutil.rmtree(old, ignore_errors=True)
        parallel.barrier()
        return path
    error = None
    if info.is_main:
        try:
            save_step_checkpoint(out, step, parallel.unwrap(model), cfg, state, meta=meta, keep_last=keep_last)
        except CheckpointError as e:
            error = e
    if parallel.any_rank(error is not None):  # every rank stops together (no rank left at a barrier)
        raise error if error is not None else CheckpointError(f"writing {path} failed on rank 0")
    return path


def _stage1(cfg: PixarConfig, out: Path, info: DistInfo, resume, data_dir, after_step) -> Path:
    tc = cfg.train
    precision = resolve_precision(tc.precision, info.device)
    if tc.batch_size % (info.world_size * tc.grad_accum):
        raise ConfigError(f"train.batch_size {tc.batch_size} must be divisible by world size "
                          f"{info.world_size} x train.grad_accum {tc.grad_accum}")
    set_cpu_threads(tc.threads)  # 0 = auto (pixar.train.run_state.cpu_threads)
    ckpt = prepare_out_dir(out, resume)
    splits = build_splits(tc, data_dir)
    parallel.configure_cuda(info.device)

    model = Pixar(cfg.model, generator=torch.Generator().manual_seed(tc.seed)).to(info.device).train()
    state = None
    if ckpt is not None:
        check_compatible(cfg, ckpt)
        state = load_state(ckpt)
        if not parallel.is_sharded(ckpt):
            if tc.parallel == "fsdp" and info.world_size > 1:
                raise TrainingError(f"{ckpt} was saved unsharded (train.parallel=ddp); resume it with ddp")
            load_weights(model, ckpt)
    model = parallel.wrap(parallel.prepare_model(model, tc, info.device), tc.parallel, info.device)
    opt = parallel.make_adamw(model.parameters(), tc, info.device)  # after wrap: under FSDP the shards
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    start, consumed = 0, 0
    if ckpt is not None:
        if parallel.is_sharded(ckpt):
            parallel.load_sharded(ckpt, {"model": model}, {"model": opt})
        else:
            opt.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        start, consumed = int(state["step"]), int(state["consumed"])
        if state.get("num_train_chunks") != len(splits.train):
            import logging

            logging.getLogger(__name__).warning(
                "%s: the corpus changed (%s -> %d training chunks); the data position is approximate",
                ckpt, state.get("num_train_chunks"), len(splits.train))

    stream = ChunkStream(splits.train, with_fonts(cfg.render, data_dir), tc.seed, tc.batch_size, consumed, info.rank,
                         info.world_size, tc.grad_accum)
    loader = iter(make_loader(stream, tc.num_workers, pin_memory=info.device.type == "cuda"))
    renderer = stream.renderer()
    val_texts = splits.val[: tc.eval_batches * tc.batch_size]
    mb = stream.micro_batch
    starts = list(range(0, len(val_texts), mb))
    starts = starts[: len(starts) - len(starts) % info.world_size] if len(starts) >= info.world_size else starts
    val_batches = [render_texts(renderer, val_texts[i: i + mb])  # every rank the same number (FSDP needs all)
                   for n, i in enumerate(starts) if n % info.world_size == info.rank]
    prompts = sample_prompts(splits.val or splits.train, renderer) if info.is_main else []
    metrics = MetricsLogger(out, info.is_main, resume_step=start if ckpt is not None else -1, tag="stage1")
    if info.is_main:
        cfg.to_yaml(out / "config.yaml")

    def micro_batches(step: int) -> list[tuple[dict, float]]:
        return [(next(loader), 1.0 / tc.grad_accum) for _ in range(tc.grad_accum)]

    def loss_fn(batch: dict) -> torch.Tensor:
        pixels = batch["pixels"].to(info.device, non_blocking=True)
        mask = batch["mask"].to(info.device, non_blocking=True)
        return model(pixels, mask, pixels)[1]

    step_fn = StandardStep(list(model.parameters()), loss_fn, opt, micro_batches, tc.grad_clip,
                           grad_sync=lambda last: parallel.grad_sync(model, enabled=last),
                           clip_norm=lambda max_norm: parallel.clip_grad_norm(model, max_norm), scaler=scaler,
                           autocast=lambda: autocast(precision, info.device),
                           reduce=lambda v: all_reduce_mean(v, info))

    def evaluate() -> float | None:
        return validation_loss(model, val_batches, info, precision) if val_texts and tc.eval_batches > 0 else None

    def sample(at: int) -> None:
        if prompts:  # rank 0 alone runs the generator: not under FSDP (its forward needs every rank)
            save_samples(model, renderer, prompts, out / "samples" / f"step-{at:07d}.png", cfg.render.max_positions // 4)

    done = {"last": ckpt, "saved_at": start}
    positions_per_step = tc.batch_size * cfg.render.max_positions
    window = {"seconds": 0.0, "steps": 0}

    fsdp = parallel.is_fsdp(model)

    def save(step: int) -> None:
        n = step - start
        state = {"step": step, "consumed": consumed + n * tc.batch_size, "data": stream.position_after(n).to_dict(),
                 "num_train_chunks": len(splits.train), "rng": capture_rng_state(),
                 "scaler": scaler.state_dict() if scaler is not None else None}
        if not fsdp:
            state["optimizer"] = opt.state_dict()
        done["last"] = save_run_checkpoint(out, step, model, cfg, state, tc.keep_last, info,
                                           sharded=({"model": model}, {"model": opt}) if fsdp else None)
        done["saved_at"] = step

    def on_step(step: int, m: dict) -> None:
        window["seconds"] += m["step_seconds"]
        window["steps"] += 1
        record = {"step": step, "loss": m["loss"], "lr": m["lr"], "grad_norm": m["grad_norm"],
                  "positions_per_s": window["steps"] * positions_per_step / max(window["seconds"], 1e-9)}
        if every(tc.eval_every, step, tc.steps) and (val := evaluate()) is not None:
            record["val_loss"] = val
        if every(tc.sample_every, step, tc.steps) and not fsdp:
            sample(step)
        if step % max(tc.log_every, 1) == 0 or "val_loss" in record or step == tc.steps:
            metrics.log(record)
            window.update(seconds=0.0, steps=0)
        if every(tc.save_every, step, tc.steps):
            save(step)
        if after_step is not None:
            after_step(step, parallel.unwrap(model))

    def kept(step: int, e: Exception) -> str:
        where = f"last good checkpoint: {done['last']}" if done["last"] is not None else "no checkpoint was saved before it"
        hint = "a lower train.lr" + (" or train.precision=fp32" if precision != "fp32" else "")
        return f"stopped ({where}); try {hint}"

    if ckpt is None and tc.steps > 0:  # the untrained baseline (every rank joins the validation all-reduce)
        if (val := evaluate()) is not None:
            metrics.log({"step": 0, "val_loss": val})
        if not fsdp:
            sample(0)
    try:
        run_preemptible(step_fn, start, tc.steps, save, done, schedules=[(opt, Schedule.of(tc))], hooks=[on_step],
                        desc="stage 1", progress=info.is_main, on_error=kept,
                        postfix=lambda m: {"loss": f"{m['loss']:.4f}", "lr": f"{m['lr']:.2e}"})
    finally:
        metrics.close()
    return done["last"] if done["last"] is not None else out
