"""The one training loop: stage 1, stage 2 (generator + discriminator), GPT-2 pretraining, bAbI fine-tuning
and GLUE fine-tuning all run through `run_loop`, with the one learning-rate schedule and the one optimiser
policy below.

    Schedule(lr, warmup_steps, total_steps)(step)   linear warm-up from WARMUP_START_RATIO*lr (the official
                                                    LinearLR start_factor), then cosine to min_lr_ratio*lr
    adamw(params, ...)                              AdamW with weight decay on EVERY parameter: the paper's
                                                    policy (the paper's: "no exclusion groups"), used for
                                                    PIXAR and GPT-2 alike so same-budget comparisons are
    StandardStep(...)                               forward/backward over a step's micro-batches (gradient
                                                    accumulation, DDP no_sync, fp16 GradScaler), clip, update
    run_loop(step_fn, start, total, schedules, hooks)
        for step in start..total-1:                 (0-based optimiser steps)
            set every optimiser's lr from its Schedule
            metrics = step_fn(step)                 (raises NonFiniteLoss before any update on NaN/Inf)
            hook(step + 1, metrics) for each hook   (logging, evaluation, samples, checkpoints, fault injection)
            stop early if should_stop()             (preemption: the caller saves and exits cleanly)
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch

from pixar.errors import PixarError

WARMUP_START_RATIO = 1e-5
"""The warm-up starts at this fraction of the peak lr (the official LinearLR start_factor)."""

Hook = Callable[[int, dict], None]


class TrainingError(PixarError, RuntimeError):
    """A run that cannot start or continue (diverged, nothing to resume, occupied output folder)."""


class Preempted(Exception):
    """The run stopped early on request (SIGTERM/SIGUSR1) after saving `checkpoint` at `step`; `message` is the
    one line saying how to resume. Not an error: `pixar train` prints the message and exits 0."""

    def __init__(self, message: str, step: int, checkpoint):
        super().__init__(message)
        self.message, self.step, self.checkpoint = message, step, checkpoint


class NonFiniteLoss(TrainingError):
    """A NaN/Inf loss or gradient norm, detected before the optimiser stepped."""


# ---- schedule and optimiser policy -------------------------------------------------------------
def lr_at(step: int, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """lr of 0-based optimiser step `step`: linear warm-up over `warmup_steps` from WARMUP_START_RATIO*lr,
    then cosine from lr to min_lr_ratio*lr at `total_steps` (constant after)."""
    if step < warmup_steps:
        return lr * (WARMUP_START_RATIO + (1 - WARMUP_START_RATIO) * step / warmup_steps)
    floor = min_lr_ratio * lr
    span = max(1, total_steps - warmup_steps)
    progress = min(step - warmup_steps, span) / span
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Schedule:
    """Warm-up + cosine (lr_at) as a callable of the 0-based step."""

    lr: float
    warmup_steps: int
    total_steps: int
    min_lr_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        return lr_at(step, self.lr, self.warmup_steps, self.total_steps, self.min_lr_ratio)

    @classmethod
    def of(cls, cfg, lr: float | None = None, total_steps: int | None = None) -> "Schedule":
        """From a training config with `steps` and an `optim` section (pixar.config.OptimConfig)."""
        o = cfg.optim
        return cls(o.lr if lr is None else lr, o.warmup_steps, cfg.steps if total_steps is None else total_steps,
                   o.min_lr_ratio)


def adamw(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.95),
          eps: float = 1e-8, weight_decay: float = 0.1, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on every trainable parameter (the paper's policy, for every model we train).
    `fused` defaults to True when the parameters live on CUDA."""
    params = [p for p in params if p.requires_grad]
    if fused is None:
        fused = bool(params) and params[0].is_cuda
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=bool(fused))


def adamw_from(params: Iterable[torch.nn.Parameter], optim, lr: float | None = None,
               fused: bool | None = None) -> torch.optim.AdamW:
    """adamw() with an OptimConfig's betas, eps and weight decay (and lr unless given)."""
    return adamw(params, optim.lr if lr is None else lr, (optim.beta1, optim.beta2), optim.eps, optim.weight_decay,
                 fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---- the standard step ---------------------------------------------------------------------------
class StandardStep:
    """One optimiser step of a plain objective.

    micro_batches(step) -> [(batch, weight), ...]: the step's micro-batches and their loss weights (summing
    to 1); loss_fn(batch) -> scalar loss tensor. Gradients accumulate over the micro-batches (data-parallel
    gradient sync only on the last: pass `grad_sync(enabled)`, e.g. pixar.train.parallel.grad_sync for DDP/FSDP), are
    clipped to `grad_clip` (0 = no clipping, norm still reported; `clip_norm(max_norm) -> pre-clip norm`
    replaces the plain clip, e.g. FSDP's global norm over shards), and a NaN/Inf loss or norm raises
    NonFiniteLoss before the update. `reduce(values)` averages the logged loss over ranks (identity in one
    process)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], loss_fn: Callable[[object], torch.Tensor],
                 optimizer: torch.optim.Optimizer, micro_batches: Callable[[int], list[tuple[object, float]]],
                 grad_clip: float = 1.0,
                 grad_sync: Callable[[bool], contextlib.AbstractContextManager] | None = None,
                 clip_norm: Callable[[float], float] | None = None, scaler: torch.amp.GradScaler | None = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 reduce: Callable[[list[float]], list[float]] = lambda v: v):
        self.params = [p for p in params if p.requires_grad]
        self.loss_fn, self.optimizer, self.micro_batches = loss_fn, optimizer, micro_batches
        self.grad_clip, self.grad_sync, self.scaler, self.autocast, self.reduce = grad_clip, grad_sync, scaler, autocast, reduce
        self.clip_norm = clip_norm or (lambda max_norm: float(torch.nn.utils.clip_grad_norm_(self.params, max_norm)))

    def __call__(self, step: int) -> dict:
        parts = self.micro_batches(step)
        loss_acc = None
        for i, (batch, weight) in enumerate(parts):
            last = i == len(parts) - 1
            sync = self.grad_sync(last) if self.grad_sync is not None else contextlib.nullcontext()
            with sync:
                with self.autocast():
                    loss = self.loss_fn(batch)
                scaled = loss * weight
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            part = loss.detach().float() * weight
            loss_acc = part if loss_acc is None else loss_acc + part
        (loss_val,) = self.reduce([float(loss_acc)])
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = self.clip_norm(self.grad_clip if self.grad_clip > 0 else math.inf)
        if not math.isfinite(loss_val) or (self.scaler is None and not math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(f"non-finite loss ({loss_val}) or gradient norm ({grad_norm}) at step {step + 1}")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss_val, "grad_norm": grad_norm}


# ---- the loop --------------------------------------------------------------------------------------
def run_loop(step_fn: Callable[[int], dict], start: int, total: int,
             schedules: Sequence[tuple[torch.optim.Optimizer, Schedule]] = (), hooks: Sequence[Hook] = (),
             desc: str = "train", progress: bool = True, postfix: Callable[[dict], dict] | None = None,
             should_stop: Callable[[], bool] | None = None, on_error: Callable[[int, Exception], str] | None = None
             ) -> int:
    """Run optimiser steps start..total-1; returns the number of steps done when it ended (== total unless
    `should_stop()` turned true after a step). Each step's metrics get `lr` (the first schedule's),
    `step_seconds` and `steps_per_s`, then go to every hook as hook(step_count, metrics). A NonFiniteLoss is
    re-raised with `on_error(step, e)` appended (e.g. which checkpoint is the last good one)."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, desc=desc, disable=not progress, dynamic_ncols=True, mininterval=1.0)
    step = start
    try:
        while step < total:
            lrs = [sched(step) for _, sched in schedules]
            for (opt, _), lr in zip(schedules, lrs):
                set_lr(opt, lr)
            t0 = time.perf_counter()
            try:
                metrics = step_fn(step)
            except NonFiniteLoss as e:
                detail = f"; {on_error(step, e)}" if on_error is not None else ""
                raise type(e)(f"{e}{detail}") from None
            sec = time.perf_counter() - t0
            metrics = {**({"lr": lrs[0]} if lrs else {}), **metrics, "step_seconds": sec}
            step += 1
            for hook in hooks:
                hook(step, metrics)
            bar.update(1)
            if postfix is not None:
                bar.set_postfix(postfix(metrics), refresh=False)
            if should_stop is not None and step < total and should_stop():
                break
    finally:
        bar.close()
    return step


def every(n: int, step: int, total: int) -> bool:
    """True at multiples of n (n > 0) and at the final step: the cadence of logs, evals, samples and saves."""
    return (n > 0 and step % n == 0) or step == total
