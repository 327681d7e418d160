"""The run machinery every pretraining kind shares: PIXAR stage 1 (pixar.train.stage1) and the same-budget GPT-2
(harness.models.gpt2_pretrain) are each a `RunKind` handed to `train_run`, which owns everything else:

    ranks              setup_distributed (torchrun: NCCL on CUDA, gloo on CPU), DDP or FSDP2 wrapping
                       (pixar.train.parallel), rank 0 alone logs and writes
    one run per folder pixar.train.runlock.RunLock on <out>/.lock (a second run is refused with one line)
    checkpoints        <out>/step-XXXXXXX (safetensors + JSON; sharded under FSDP) and the `last` pointer,
                       every train.save_every steps and at the end, pruned to train.keep_last
    resume             --resume auto|true|false (pixar.train.run_state.prepare_out_dir): weights, optimizer,
                       RNG states and the data position, so an interrupted + resumed run logs the same losses
    preemption         SIGTERM/SIGUSR1: finish the step, save, raise Preempted with the command that resumes
    the loop           pixar.train.loop's StandardStep + run_loop + Schedule + AdamW policy
    metrics.jsonl      step, loss, lr, grad_norm, <kind.throughput_key>, val_loss at eval steps (step 0 = untrained)

A kind supplies its model, data, loss, evaluation and what it publishes at the end (RunKind below).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from pixar.checkpoint.store import (CheckpointError, load_state, load_weights, save_step_checkpoint, step_checkpoints,
                                    step_path, write_last_pointer)
from pixar.config_io import ConfigError
from pixar.train import parallel
from pixar.train.loop import Preempted, Schedule, StandardStep, TrainingError, every, run_loop
from pixar.train.preempt import Preemption
from pixar.train.run_state import (DistInfo, MetricsLogger, all_reduce_mean, autocast, capture_rng_state,
                                   prepare_out_dir, resolve_precision, restore_rng_state, set_cpu_threads,
                                   setup_distributed)
from pixar.train.runlock import RunLock

log = logging.getLogger(__name__)

__all__ = ["RunKind", "train_run", "run_preemptible", "save_run_checkpoint"]


class RunKind:
    """What one model kind gives the run machinery. `cfg` has a `train` section (pixar.config.TrainConfig) and
    `to_dict()` / `to_yaml(path)`; the methods are called in this order:

        prepare(info, ckpt)             fail fast (data, tokenizer, refusals) before the model is built
        build_model()                   the seeded, unwrapped model on CPU
        check_compatible(ckpt)          the checkpoint's config fits (model shape, rendering, ...)
        on_resume(state)                the checkpoint's training state (warnings about changed data)
        open_data(info, consumed)       position the data after `consumed` sequences of the global batch
        micro_batches(step)             [(batch, weight)] of this rank for 0-based step `step`
        loss(model, batch)              the scalar loss of one micro-batch (model: the wrapped module)
        data_state(steps_done)          extra checkpoint state after `steps_done` steps of this process
        evaluate(model, precision)      validation loss (every rank calls it) or None
        sample(model, step)             rank 0's samples (not under FSDP); optional
        finish(model, last, info)       what the run returns (and publishes) once every step is done
    """

    tag = "train"
    throughput_key = "positions_per_s"
    units_per_step = 0
    meta: dict = {}

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def prepare(self, info: DistInfo, ckpt: Path | None) -> None:
        pass

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def blocks(self, model: nn.Module) -> list[nn.Module] | None:
        """The FSDP units / compiled blocks (None: pixar.model.transformer.Block modules)."""
        return None

    def check_compatible(self, ckpt: Path) -> None:
        pass

    def load_weights(self, model: nn.Module, ckpt: Path) -> None:
        load_weights(model, ckpt)

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The weights a step checkpoint stores (None: model.state_dict())."""
        return None

    def on_resume(self, state: dict) -> None:
        pass

    def open_data(self, info: DistInfo, consumed: int) -> None:
        raise NotImplementedError

    def micro_batches(self, step: int) -> list[tuple[Any, float]]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def data_state(self, steps_done: int) -> dict:
        return {}

    def evaluate(self, model: nn.Module, precision: str) -> float | None:
        return None

    def sample(self, model: nn.Module, step: int) -> None:
        pass

    def finish(self, model: nn.Module, last: Path | None, out: Path, info: DistInfo) -> Path:
        return last if last is not None else out


def train_run(kind: RunKind, out_dir: str | os.PathLike, device: str = "auto", resume: str | bool = False,
              after_step: Callable[[int, nn.Module], None] | None = None) -> Path:
    """Run (or resume: "auto" | "true" | "false", True/False) `kind` to kind.cfg.train.steps; returns
    kind.finish(...). On SIGTERM/SIGUSR1 it finishes the step, saves and raises Preempted (how to resume).
    `after_step(step, model)` is called after every optimizer step (tests use it to inject faults)."""
    info = setup_distributed(device)
    try:
        with RunLock(out_dir) if info.is_main else contextlib.nullcontext():
            return _run(kind, Path(out_dir), info, resume, after_step)
    except Preempted as stop:
        # drop the run's frames (and the DDP/FSDP model they hold) here, while the process group is alive: a wrapped
        # model freed only after destroy_process_group (when the caller lets go of the traceback) can block in
        # gloo's teardown
        raise stop.with_traceback(None) from None
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


def save_run_checkpoint(out: Path, step: int, model: nn.Module, cfg, state: dict, keep_last: int,
                        info: DistInfo, meta: dict | None = None, sharded: tuple[dict, dict] | None = None,
                        weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write step checkpoint `<out>/step-XXXXXXX`, then the `last` pointer, then prune to `keep_last`.
    One process / DDP: rank 0 writes `model`'s weights (or `weights`) and `state` (optimizer states included by
    the caller). FSDP: `sharded` = ({name: module}, {name: optimizer}) go through torch.distributed.checkpoint on
    every rank, rank 0 adds `state` and `model`'s gathered weights (so load_model reads the folder). A failed
    write keeps the previous checkpoint and pointer (CheckpointError, one line)."""
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
            save_step_checkpoint(out, step, parallel.unwrap(model), cfg, state, meta=meta, keep_last=keep_last,
                                 weights=weights)
        except CheckpointError as e:
            error = e
    if parallel.any_rank(error is not None):  # every rank stops together (no rank left at a barrier)
        raise error if error is not None else CheckpointError(f"writing {path} failed on rank 0")
    return path


def _run(kind: RunKind, out: Path, info: DistInfo, resume, after_step) -> Path:
    cfg, tc = kind.cfg, kind.cfg.train
    precision = resolve_precision(tc.precision, info.device)
    if tc.batch_size % (info.world_size * tc.grad_accum):
        raise ConfigError(f"train.batch_size {tc.batch_size} must be divisible by world size "
                          f"{info.world_size} x train.grad_accum {tc.grad_accum}")
    set_cpu_threads(tc.threads)  # 0 = auto (pixar.train.run_state.cpu_threads)
    ckpt = prepare_out_dir(out, resume)
    kind.prepare(info, ckpt)
    parallel.configure_cuda(info.device)

    model = kind.build_model().to(info.device).train()
    state = None
    if ckpt is not None:
        kind.check_compatible(ckpt)
        state = load_state(ckpt)
        if not parallel.is_sharded(ckpt):
            if tc.parallel == "fsdp" and info.world_size > 1:
                raise TrainingError(f"{ckpt} was saved unsharded (train.parallel=ddp); resume it with ddp")
            kind.load_weights(model, ckpt)
    blocks = kind.blocks(model)
    model = parallel.wrap(parallel.prepare_model(model, tc, info.device, blocks), tc.parallel, info.device, blocks)
    opt = parallel.make_adamw(model.parameters(), tc.optim, info.device)  # after wrap: under FSDP the shards
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
        kind.on_resume(state)
    kind.open_data(info, consumed)
    metrics = MetricsLogger(out, info.is_main, resume_step=start if ckpt is not None else -1, tag=kind.tag)
    if info.is_main:
        cfg.to_yaml(out / "config.yaml")

    step_fn = StandardStep(list(model.parameters()), lambda batch: kind.loss(model, batch), opt, kind.micro_batches,
                           tc.optim.grad_clip, grad_sync=lambda last: parallel.grad_sync(model, enabled=last),
                           clip_norm=lambda max_norm: parallel.clip_grad_norm(model, max_norm), scaler=scaler,
                           autocast=lambda: autocast(precision, info.device),
                           reduce=lambda v: all_reduce_mean(v, info))
    done = {"last": ckpt, "saved_at": start}
    window = {"seconds": 0.0, "steps": 0}
    fsdp = parallel.is_fsdp(model)

    def save(step: int) -> None:
        n = step - start
        state = {"step": step, "consumed": consumed + n * tc.batch_size, **kind.data_state(n),
                 "rng": capture_rng_state(), "scaler": scaler.state_dict() if scaler is not None else None}
        if not fsdp:
            state["optimizer"] = opt.state_dict()
        weights = None if fsdp or not info.is_main else kind.weights(parallel.unwrap(model))
        done["last"] = save_run_checkpoint(out, step, model, cfg, state, tc.keep_last, info, meta=kind.meta,
                                           sharded=({"model": model}, {"model": opt}) if fsdp else None,
                                           weights=weights)
        done["saved_at"] = step

    def evaluate() -> float | None:
        return kind.evaluate(model, precision) if tc.eval_batches > 0 else None

    def on_step(step: int, m: dict) -> None:
        window["seconds"] += m["step_seconds"]
        window["steps"] += 1
        record = {"step": step, "loss": m["loss"], "lr": m["lr"], "grad_norm": m["grad_norm"],
                  kind.throughput_key: window["steps"] * kind.units_per_step / max(window["seconds"], 1e-9)}
        if every(tc.eval_every, step, tc.steps) and (val := evaluate()) is not None:
            record["val_loss"] = val
        if every(tc.sample_every, step, tc.steps) and not fsdp and info.is_main:
            kind.sample(model, step)
        if step % max(tc.log_every, 1) == 0 or "val_loss" in record or step == tc.steps:
            metrics.log(record)
            window.update(seconds=0.0, steps=0)
        if every(tc.save_every, step, tc.steps):
            save(step)
        if after_step is not None:
            after_step(step, parallel.unwrap(model))

    def kept(step: int, e: Exception) -> str:
        where = f"last good checkpoint: {done['last']}" if done["last"] is not None else "no checkpoint was saved before it"
        hint = "a lower train.optim.lr" + (" or train.precision=fp32" if precision != "fp32" else "")
        return f"stopped ({where}); try {hint}"

    if ckpt is None and tc.steps > 0:  # the untrained baseline (every rank joins the validation all-reduce)
        if (val := evaluate()) is not None:
            metrics.log({"step": 0, "val_loss": val})
        if not fsdp and info.is_main:
            kind.sample(model, 0)
    try:
        run_preemptible(step_fn, start, tc.steps, save, done, schedules=[(opt, Schedule.of(tc))], hooks=[on_step],
                        desc=kind.tag, progress=info.is_main, on_error=kept,
                        postfix=lambda m: {"loss": f"{m['loss']:.4f}", "lr": f"{m['lr']:.2e}"})
    finally:
        metrics.close()
    return kind.finish(model, done["last"], out, info)
