"""Stage 1: maximum-likelihood pretraining (the paper's stage-1 pretraining), single process or torchrun/DDP.

    The loop, schedule and optimiser policy are pixar.train.loop's (AdamW, weight decay on all parameters; linear
    warm-up from 1e-5*lr, then cosine to min_lr_ratio*lr at train.steps; grad clipping; grad accumulation);
    the run itself (ranks, run lock, checkpoints, resume, preemption) is pixar.train.run's, shared with the GPT-2
    baseline: this module is the PIXAR `RunKind` (data, loss, validation, samples). fp32 on CPU, bf16 autocast on CUDA (`auto`), fp16 + GradScaler when asked.

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

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pixar.checkpoint.store import latest_checkpoint
from pixar.config import PixarConfig
from pixar.config_io import atomic_write
from pixar.data.stream import ChunkStream, build_splits, make_loader, render_texts
from pixar.model.generate import generate_from_text
from pixar.model.transformer import Pixar, unpatchify
from pixar.paths import with_fonts
from pixar.render.renderer import to_image
from pixar.train import parallel
from pixar.train.loop import NonFiniteLoss, Preempted, TrainingError
from pixar.train.run import RunKind, train_run
from pixar.train.run_state import DistInfo, all_reduce_weighted_mean, autocast, check_compatible

__all__ = ["train_stage1", "Stage1", "validation_loss", "sample_prompts", "save_samples", "TrainingError", "NonFiniteLoss",
           "Preempted", "latest_checkpoint"]


# ---- evaluation and samples ----------------------------------------------------------------
@torch.no_grad()
def validation_loss(model: Pixar, batches: list[dict], info: DistInfo, precision: str) -> float:
    """Mean masked BCE over this rank's fixed validation micro-batches (validation_batches), averaged over all ranks
    (weighted by sequence count: exactly the mean over the held-out texts)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b in batches:
        pixels, mask = b["pixels"].to(info.device), b["mask"].to(info.device)
        with autocast(precision, info.device):
            _, loss = model(pixels, mask, pixels)
        n = b.get("count", len(pixels))  # the loss is a mean over samples: x n = their sum
        total, count = total + float(loss) * n, count + n
    model.train(was_training)
    return all_reduce_weighted_mean(total, count, info)


def validation_batches(texts: list[str], renderer, micro_batch: int, info: DistInfo) -> list[dict]:
    """This rank's share of the held-out `texts` (texts[rank::world]) in micro-batches, every rank the same number
    of them (FSDP's forward needs every rank): a rank with nothing left gets a stand-in batch of `count` 0. Every
    text is scored exactly once, so the mean is the same whatever the world size and micro-batch."""
    if not texts:
        return []
    mine = texts[info.rank:: info.world_size]
    n = -(-(-(-len(texts) // info.world_size)) // micro_batch)  # ceil(ceil(len / world) / micro_batch)
    batches = []
    for i in range(n):
        part = mine[i * micro_batch: (i + 1) * micro_batch]
        batch = render_texts(renderer, part or texts[:1])
        batch["count"] = len(part)
        batches.append(batch)
    return batches


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
class Stage1(RunKind):
    """PIXAR stage 1 as a pixar.train.run.RunKind: rendered chunks (ChunkStream), masked pixel BCE, greedy samples."""

    tag = "stage1"
    throughput_key = "positions_per_s"

    def __init__(self, cfg: PixarConfig, out: Path, data_dir):
        super().__init__(cfg)
        self.out, self.data_dir = out, data_dir
        self.units_per_step = cfg.train.batch_size * cfg.render.max_positions

    def prepare(self, info: DistInfo, ckpt: Path | None) -> None:
        self.info, self.splits = info, build_splits(self.cfg.train, self.data_dir)

    def build_model(self) -> Pixar:
        return Pixar(self.cfg.model, generator=torch.Generator().manual_seed(self.cfg.train.seed))

    def check_compatible(self, ckpt: Path) -> None:
        check_compatible(self.cfg, ckpt)

    def on_resume(self, state: dict) -> None:
        if state.get("num_train_chunks") != len(self.splits.train):
            logging.getLogger(__name__).warning(
                "the corpus changed (%s -> %d training chunks); the data position is approximate",
                state.get("num_train_chunks"), len(self.splits.train))

    def open_data(self, info: DistInfo, consumed: int) -> None:
        cfg, tc, splits = self.cfg, self.cfg.train, self.splits
        self.stream = ChunkStream(splits.train, with_fonts(cfg.render, self.data_dir), tc.seed, tc.batch_size,
                                  consumed, info.rank, info.world_size, tc.grad_accum)
        self.loader = iter(make_loader(self.stream, tc.num_workers, pin_memory=info.device.type == "cuda"))
        self.renderer = self.stream.renderer()
        self.val_texts = splits.val[: tc.eval_batches * tc.batch_size]
        self.val_batches = validation_batches(self.val_texts, self.renderer, self.stream.micro_batch, info)
        self.prompts = sample_prompts(splits.val or splits.train, self.renderer) if info.is_main else []

    def micro_batches(self, step: int) -> list[tuple[dict, float]]:
        accum = self.cfg.train.grad_accum
        return [(next(self.loader), 1.0 / accum) for _ in range(accum)]

    def loss(self, model, batch: dict) -> torch.Tensor:
        pixels = batch["pixels"].to(self.info.device, non_blocking=True)
        mask = batch["mask"].to(self.info.device, non_blocking=True)
        return model(pixels, mask, pixels)[1]

    def data_state(self, steps_done: int) -> dict:
        return {"data": self.stream.position_after(steps_done).to_dict(), "num_train_chunks": len(self.splits.train)}

    def evaluate(self, model, precision: str) -> float | None:
        return validation_loss(model, self.val_batches, self.info, precision) if self.val_texts else None

    def sample(self, model, step: int) -> None:
        if self.prompts:  # rank 0 alone runs the generator: not under FSDP (its forward needs every rank)
            save_samples(model, self.renderer, self.prompts, self.out / "samples" / f"step-{step:07d}.png",
                         self.cfg.render.max_positions // 4)


def train_stage1(cfg: PixarConfig, out_dir: str | os.PathLike, device: str = "auto", resume: str | bool = False,
                 data_dir: str | os.PathLike | None = None,
                 after_step: Callable[[int, torch.nn.Module], None] | None = None) -> Path:
    """Run (or resume: "auto" | "true" | "false", True/False) stage 1 to cfg.train.steps; returns the final
    checkpoint folder. On SIGTERM/SIGUSR1 it finishes the step, saves and raises Preempted (how to resume).
    `after_step(step, model)` is called after every optimizer step (tests use it to inject faults)."""
    return train_run(Stage1(cfg, Path(out_dir), data_dir), out_dir, device=device, resume=resume,
                     after_step=after_step)
