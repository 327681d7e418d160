"""Stage 1: maximum-likelihood pretraining (pixar-paper.md §3), single process or torchrun/DDP.

    AdamW(betas, eps, weight decay on all parameters) with lr_at(): linear warm-up from 1e-5*lr, then
    cosine to min_lr_ratio*lr at train.steps; grad clipping; grad accumulation; fp32 on CPU, bf16
    autocast on CUDA (`auto`), fp16 + GradScaler when asked (CUDA only).

Output folder (`out`):
    metrics.jsonl        one JSON record per log/eval step: step, loss (this step's global-batch mean),
                         lr, grad_norm (before clipping), positions_per_s (batch x max_positions, padding
                         included, per second of step time over the log window), val_loss at eval steps
                         (step 0 = untrained). Losses are masked pixel BCE in nats per pixel, not perplexity.
    step-XXXXXXX/        checkpoints (pixar.checkpoint layout) with the training `state`
    last                 JSON pointer {"step", "path"} to the newest checkpoint, replaced atomically
    samples/step-XXXXXXX.png   greedy continuations of held-out prompts
    config.yaml          the resolved config

Resume (`resume=True`) restores weights, optimizer, RNG states and the data position, so the losses of
an interrupted + resumed run equal those of an uninterrupted one. With torchrun only rank 0 logs and
saves; every rank reads the checkpoint on resume (a shared filesystem is assumed for multi-node).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import (LAST_POINTER, latest_checkpoint, load_config, load_state, load_weights,
                         save_checkpoint)
from .config import ConfigError, PixarConfig, atomic_write_text
from .data import ChunkStream, build_splits, make_loader, render_texts
from .model import Pixar

log = logging.getLogger(__name__)

WARMUP_START_RATIO = 1e-5
"""The warm-up starts at this fraction of the peak lr (the official LinearLR start_factor)."""
_STEP_DIR = re.compile(r"^step-(\d{7,})$")


class TrainingError(RuntimeError):
    """A run that cannot start or continue (diverged, nothing to resume, occupied output folder)."""


# ---- schedule, precision, distributed -----------------------------------------------------
def lr_at(step: int, cfg, base_lr: float | None = None, total_steps: int | None = None) -> float:
    """lr of optimizer step `step` (0-based). `cfg` needs warmup_steps and, unless given explicitly,
    lr and steps; min_lr_ratio defaults to 0.1 (stage 2 passes base_lr=lr_g, total_steps=cosine_steps)."""
    lr = cfg.lr if base_lr is None else base_lr
    total = cfg.steps if total_steps is None else total_steps
    warm = cfg.warmup_steps
    if step < warm:
        return lr * (WARMUP_START_RATIO + (1 - WARMUP_START_RATIO) * step / warm)
    floor = getattr(cfg, "min_lr_ratio", 0.1) * lr
    span = max(1, total - warm)
    progress = min(step - warm, span) / span
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA, fp32 elsewhere; bf16/fp16 on CPU are refused (~100x slower there)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision in ("bf16", "fp16") and device.type != "cuda":
        raise ConfigError(f"train.precision={precision} needs a CUDA device; use auto or fp32 on {device.type}")
    return precision


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(device=dev)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev)


def all_reduce_mean(values: list[float], info: DistInfo) -> list[float]:
    if info.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return (t / info.world_size).tolist()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


# ---- RNG and checkpoints -------------------------------------------------------------------
def capture_rng_state() -> dict:
    """torch (CPU + CUDA), numpy legacy and python `random` states, as checkpoint-storable values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(out_dir: str | os.PathLike) -> list[Path]:
    """The `step-XXXXXXX` checkpoints in `out_dir`, oldest first."""
    out = Path(out_dir)
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()] \
        if out.is_dir() else []
    return [p for _, p in sorted(found)]


def save_training_checkpoint(out_dir: str | os.PathLike, step: int, model: torch.nn.Module, cfg: PixarConfig,
                             state: dict, keep_last: int = 0, meta: dict | None = None) -> Path:
    """Write `<out>/step-XXXXXXX` atomically, repoint `<out>/last`, then keep only the newest
    `keep_last` step folders (0 = keep all)."""
    out = Path(out_dir)
    path = save_checkpoint(out / f"step-{step:07d}", unwrap(model), cfg, state, {"step": step, **(meta or {})})
    atomic_write_text(out / LAST_POINTER, json.dumps({"step": step, "path": path.name}))
    if keep_last > 0:
        for old in checkpoint_dirs(out)[:-keep_last]:
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
    return path


class MetricsLogger:
    """Appends JSON lines to `<out>/metrics.jsonl` (main process only); TensorBoard too when installed."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None):
        self.path, self.enabled, self.tb = out_dir / "metrics.jsonl", enabled, None
        if not enabled:
            return
        # resume_step: drop what a killed run logged after its checkpoint (-1: a fresh run, drop all)
        if resume_step is not None and self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line)
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"stage1/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


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
    from .generate import generate_from_text
    from .model import unpatchify
    from .render import to_image

    gen = generate_from_text(unwrap(model), renderer, prompts, max_new_positions)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    to_image(canvas, scale=4).save(tmp)
    os.replace(tmp, path)


# ---- the loop --------------------------------------------------------------------------------
def _prepare_out_dir(out: Path, resume: bool) -> Path | None:
    ckpt = latest_checkpoint(out)
    if resume and ckpt is None:
        raise TrainingError(f"{out}: nothing to resume (no '{LAST_POINTER}' checkpoint pointer)")
    if not resume and (ckpt is not None or checkpoint_dirs(out)):
        raise TrainingError(f"{out} already holds checkpoints; pass --resume to continue or choose another --out")
    return ckpt


def _check_compatible(cfg: PixarConfig, ckpt: Path) -> None:
    saved = load_config(ckpt)
    for section in ("model", "render"):
        a, b = getattr(saved, section).__dict__, getattr(cfg, section).__dict__
        diff = sorted(k for k in a if a[k] != b.get(k))
        if diff:
            raise TrainingError(f"{ckpt}: {section} config differs from the checkpoint's in {diff}")


def train_stage1(cfg: PixarConfig, out_dir: str | os.PathLike, device: str = "auto", resume: bool = False,
                 data_dir: str | os.PathLike | None = None,
                 after_step: Callable[[int, torch.nn.Module], None] | None = None) -> Path:
    """Run (or resume) stage 1 to cfg.train.steps; returns the final checkpoint folder.
    `after_step(step, model)` is called after every optimizer step (tests use it to inject faults)."""
    info = setup_distributed(device)
    try:
        return _train(cfg, Path(out_dir), info, resume, data_dir, after_step)
    finally:
        if info.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: PixarConfig, out: Path, info: DistInfo, resume: bool, data_dir, after_step) -> Path:
    tc = cfg.train
    precision = resolve_precision(tc.precision, info.device)
    if tc.batch_size % (info.world_size * tc.grad_accum):
        raise ConfigError(f"train.batch_size {tc.batch_size} must be divisible by world size "
                          f"{info.world_size} x train.grad_accum {tc.grad_accum}")
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    ckpt = _prepare_out_dir(out, resume)
    splits = build_splits(tc, data_dir)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        model = Pixar(cfg.model)
    model.to(info.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps,
                            weight_decay=tc.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    step, consumed = 0, 0
    if ckpt is not None:
        _check_compatible(cfg, ckpt)
        load_weights(model, ckpt)
        state = load_state(ckpt)
        opt.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        step, consumed = int(state["step"]), int(state["consumed"])
        if state.get("num_train_chunks") != len(splits.train):
            log.warning("%s: the corpus changed (%s -> %d training chunks); the data position is approximate",
                        ckpt, state.get("num_train_chunks"), len(splits.train))
    ddp = model
    if info.world_size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None)

    stream = ChunkStream(splits.train, cfg.render, tc.seed, tc.batch_size, consumed, info.rank,
                         info.world_size, tc.grad_accum)
    loader = iter(make_loader(stream, tc.num_workers, pin_memory=info.device.type == "cuda"))
    renderer = stream.renderer()
    val_texts = splits.val[: tc.eval_batches * tc.batch_size]
    mb = stream.micro_batch
    val_batches = [render_texts(renderer, val_texts[i: i + mb])
                   for n, i in enumerate(range(0, len(val_texts), mb)) if n % info.world_size == info.rank]
    prompts = sample_prompts(splits.val or splits.train, renderer) if info.is_main else []
    metrics = MetricsLogger(out, info.is_main, resume_step=step if ckpt is not None else -1)
    if info.is_main:
        cfg.to_yaml(out / "config.yaml")

    def state_dict() -> dict:
        return {"step": step, "consumed": consumed + step_since_start * tc.batch_size,
                "data": stream.position_after(step_since_start).to_dict(), "num_train_chunks": len(splits.train),
                "optimizer": opt.state_dict(), "rng": capture_rng_state(),
                "scaler": scaler.state_dict() if scaler is not None else None}

    def evaluate() -> float | None:
        return validation_loss(model, val_batches, info, precision) if val_texts and tc.eval_batches > 0 else None

    def sample(at: int) -> None:
        if info.is_main and prompts:
            save_samples(model, renderer, prompts, out / "samples" / f"step-{at:07d}.png", cfg.render.max_positions // 4)

    from tqdm import tqdm

    bar = tqdm(total=tc.steps, initial=step, disable=not info.is_main, dynamic_ncols=True, mininterval=1.0)
    if ckpt is None and tc.steps > 0:  # the untrained baseline (every rank joins the validation all-reduce)
        if (val := evaluate()) is not None:
            metrics.log({"step": 0, "val_loss": val})
        sample(0)
    positions_per_step = tc.batch_size * cfg.render.max_positions
    step_since_start, window_time, window_steps, last = 0, 0.0, 0, ckpt
    try:
        while step < tc.steps:
            t0 = time.perf_counter()
            lr = lr_at(step, tc)
            for group in opt.param_groups:
                group["lr"] = lr
            loss_acc = torch.zeros((), device=info.device)
            for a in range(tc.grad_accum):
                batch = next(loader)
                pixels = batch["pixels"].to(info.device, non_blocking=True)
                mask = batch["mask"].to(info.device, non_blocking=True)
                sync = ddp.no_sync() if ddp is not model and a < tc.grad_accum - 1 else contextlib.nullcontext()
                with sync:
                    with autocast(precision, info.device):
                        _, loss = ddp(pixels, mask, pixels)
                    scaled = loss / tc.grad_accum
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                loss_acc += loss.detach().float() / tc.grad_accum
            (loss_val,) = all_reduce_mean([float(loss_acc)], info)
            if scaler is not None:
                scaler.unscale_(opt)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip if tc.grad_clip > 0 else math.inf))
            if not math.isfinite(loss_val) or (scaler is None and not math.isfinite(grad_norm)):
                kept = f"last good checkpoint: {last}" if last is not None else "no checkpoint was saved before it"
                hint = "a lower train.lr" + (" or train.precision=fp32" if precision != "fp32" else "")
                raise TrainingError(f"non-finite loss ({loss_val}) or gradient norm ({grad_norm}) at step {step + 1}; "
                                    f"stopped ({kept}); try {hint}")
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            step, step_since_start = step + 1, step_since_start + 1
            if after_step is not None:
                after_step(step, model)
            window_time, window_steps = window_time + time.perf_counter() - t0, window_steps + 1
            pos_per_s = window_steps * positions_per_step / max(window_time, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.4f}", lr=f"{lr:.2e}", pos_s=f"{pos_per_s:.0f}", refresh=False)

            is_eval = tc.eval_every > 0 and step % tc.eval_every == 0 or step == tc.steps
            is_sample = tc.sample_every > 0 and step % tc.sample_every == 0 or step == tc.steps
            record = {"step": step, "loss": loss_val, "lr": lr, "grad_norm": grad_norm, "positions_per_s": pos_per_s}
            if is_eval and (val := evaluate()) is not None:
                record["val_loss"] = val
            if is_sample:
                sample(step)
            if step % max(tc.log_every, 1) == 0 or "val_loss" in record or step == tc.steps:
                metrics.log(record)
                window_time, window_steps = 0.0, 0
            if tc.save_every > 0 and step % tc.save_every == 0 or step == tc.steps:
                if info.is_main:
                    last = save_training_checkpoint(out, step, model, cfg, state_dict(), tc.keep_last)
                if info.world_size > 1:
                    dist.barrier()
                last = out / f"step-{step:07d}"
    finally:
        bar.close()
        metrics.close()
    return last if last is not None else out
