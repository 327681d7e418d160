"""A minimal stage-1 (and stage-2 discriminator) loop over pixar.train.parallel, for the parallel tests.

    run(parallel, steps, out, save_at, resume, accum) -> per-step global-batch losses
    python tests/parallel_loop.py PARALLEL OUT STEPS SAVE_AT ACCUM    (one rank; torchrun-style env)

A tiny pixar.model.transformer.Pixar (seeded init), real AdamW, and seeded random binary strips [B, 8, T*16]: the
global batch of step s is the same whatever the world size; rank r takes rows r*B/W .. (r+1)*B/W and
splits them into `accum` micro-batches. Losses are global-batch means (all-reduced), so a 1-process,
a DDP and an FSDP run must log the same numbers.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pixar.checkpoint.store import load_state
from pixar.config import PixarConfig, from_dict
from pixar.model.discriminator import Discriminator
from pixar.model.transformer import Pixar, patchify
from pixar.train.parallel import (clip_grad_norm, grad_sync, load_sharded, make_adamw, save_sharded, unwrap, world,
                            wrap)

GLOBAL_BATCH = 8
DEVICE = torch.device("cpu")


def tiny_cfg() -> PixarConfig:
    return from_dict(PixarConfig, {
        "name": "parallel-test",
        "model": {"hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "max_positions": 12},
        "render": {"max_positions": 12},
        "train": {"optim": {"lr": 3e-3, "weight_decay": 0.1, "grad_clip": 1.0}, "compile": False},
        "adv": {"optim": {"grad_clip": 1.0}}})


def global_batch(step: int, cfg: PixarConfig) -> torch.Tensor:
    """[GLOBAL_BATCH, 8, T*16] binary strips (1 = white); each row has its own ink density."""
    g = torch.Generator().manual_seed(1000 + step)
    H, W = cfg.render.patch_size, cfg.render.width
    density = torch.rand(GLOBAL_BATCH, 1, 1, generator=g) * 0.5
    return (torch.rand(GLOBAL_BATCH, H, W, generator=g) > density).float()


def mean_over_ranks(value: torch.Tensor) -> float:
    rank, size = world()
    if size == 1:
        return float(value)
    t = value.detach().double().reshape(1)
    dist.all_reduce(t)
    return float(t / size)


def rows(step: int, cfg: PixarConfig) -> torch.Tensor:
    rank, size = world()
    per = GLOBAL_BATCH // size
    return global_batch(step, cfg)[rank * per: (rank + 1) * per]


def run(parallel: str, steps: int, out: Path | None = None, save_at: tuple[int, ...] = (), resume: Path | None = None,
        accum: int = 1) -> list[float]:
    """Train steps [start, steps) (start = the resumed checkpoint's step); returns their losses."""
    cfg = tiny_cfg()
    model = wrap(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), parallel, DEVICE)
    opt = make_adamw(model.parameters(), cfg.train, DEVICE)  # after wrap: FSDP's params are the shards
    start = 0
    if resume is not None:
        load_sharded(resume, {"model": model}, {"model": opt})
        start = int(load_state(resume)["step"])
    losses = []
    for step in range(start, steps):
        local = rows(step, cfg)
        total = torch.zeros(())
        for a, micro in enumerate(local.chunk(accum)):
            with grad_sync(model, enabled=a == accum - 1):
                _, loss = model(micro, None, micro)
                (loss / accum).backward()
            total += loss.detach() / accum
        clip_grad_norm(model, cfg.train.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(mean_over_ranks(total))
        if step + 1 in save_at and out is not None:
            save_sharded(out / f"step-{step + 1:07d}", {"model": model}, {"model": opt}, cfg,
                         state={"step": step + 1}, meta={"step": step + 1}, full_weights="model")
    return losses


def discriminator_steps(parallel: str, steps: int, out: Path | None = None) -> list[float]:
    """Stage 2's second model: a Discriminator (copied backbone + 2-way head) sharded like the generator,
    trained `steps` AdamW steps on real-vs-shifted strips; saves {generator, discriminator} sharded."""
    cfg = tiny_cfg()
    gen = wrap(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), parallel, DEVICE)
    disc = wrap(Discriminator.from_generator(Pixar(cfg.model, generator=torch.Generator().manual_seed(1))),
                parallel, DEVICE)
    opt_g, opt_d = make_adamw(gen.parameters(), cfg.train, DEVICE), make_adamw(disc.parameters(), cfg.train, DEVICE)
    losses = []
    for step in range(steps):
        real = patchify(rows(100 + step, cfg), 16)  # [b, T, 128]
        fake = real.roll(1, dims=-1)  # a "fake" that is easy to tell apart
        logits = torch.cat([disc.real_logits(real), disc.real_logits(fake)])  # [2b, T, 2]
        labels = torch.cat([torch.ones(real.shape[:2]), torch.zeros(real.shape[:2])]).long()
        loss = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1))
        loss.backward()
        clip_grad_norm(disc, cfg.train.optim.grad_clip)
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        losses.append(mean_over_ranks(loss.detach()))
    if out is not None:
        save_sharded(out / "stage2", {"generator": gen, "discriminator": disc},
                     {"generator": opt_g, "discriminator": opt_d}, cfg, state={"step": steps}, meta={"stage": 2})
    return losses


def head_path_diff(parallel: str) -> float:
    """max |forward() logits - head(hidden_states())| (stage 2 calls the two parts separately)."""
    cfg = tiny_cfg()
    model = wrap(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), parallel, DEVICE)
    x = rows(0, cfg)
    with torch.no_grad():
        logits, _ = model(x)
        base = unwrap(model)  # DDP only syncs forward(); FSDP modules are their own module
        split = base.head(base.hidden_states(patchify(x, 16)))
    return float((logits - split).abs().max())


def main(argv: list[str]) -> None:
    parallel, out, steps, save_at, accum = argv[0], Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    dist.init_process_group("gloo")
    try:
        losses = run(parallel, steps, out, (save_at,), accum=accum)
        head_diff = head_path_diff(parallel)
        d_losses = discriminator_steps(parallel, 2, out) if parallel == "fsdp" else []
        if dist.get_rank() == 0:
            (out / "result.json").write_text(json.dumps({"losses": losses, "d_losses": d_losses, "head_diff": head_diff,
                                                         "world_size": dist.get_world_size()}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1:])


# ---- stage 2: pixar.train.adversarial.AdversarialTrainer on wrapped or unwrapped G and D ----------------
def adversarial_cfg() -> PixarConfig:
    cfg = tiny_cfg()
    cfg.adv.num_samples, cfg.adv.alpha_warmup = 4, 2
    return cfg


def adversarial_batch(step: int, cfg: PixarConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of step `step`'s global batch (pixels [b, 8, T*16], mask [b, T]). The padding pattern
    repeats every GLOBAL_BATCH // 2 rows, so at world size 1 or 2 every rank has the same mask counts and the
    mean of the ranks' masked means is the global batch's masked mean."""
    rank, size = world()
    per = GLOBAL_BATCH // size
    pixels = global_batch(500 + step, cfg)
    mask = torch.ones(GLOBAL_BATCH, cfg.model.max_positions)
    for half in (0, GLOBAL_BATCH // 2):
        mask[half + 1, 7:] = 0  # shorter rows: padding after their EOS
        mask[half + 2, 10:] = 0
    return pixels[rank * per: (rank + 1) * per], mask[rank * per: (rank + 1) * per]


ADVERSARIAL_KEYS = ("d_loss", "g_bce", "g_adv", "lambda_auto", "d_grad_norm", "g_grad_norm")


def adversarial_steps(parallel: str, steps: int, out: Path | None = None, save_at: int = 0,
                      resume: Path | None = None) -> tuple[list[dict[str, float]], dict[str, torch.Tensor], bool]:
    """AdversarialTrainer steps [start + 1, steps] (start = the resumed checkpoint's step, else 0); parallel =
    "fsdp" (both models wrapped) or "none" (unwrapped: the trainer all-reduces gradients). Saves
    {generator, discriminator} + both optimisers sharded to out/adv-step-<save_at> after step `save_at`.
    -> per-step metrics (losses averaged over ranks; lambda and the norms are global already), the final
    weights {"g.<name>" | "d.<name>": tensor} (gathered; {} off rank 0), and whether both models were sharded."""
    from pixar.train.adversarial import AdversarialTrainer
    from pixar.train.parallel import full_state_dict, is_fsdp

    cfg = adversarial_cfg()
    gen = Pixar(cfg.model, generator=torch.Generator().manual_seed(0))
    disc = Discriminator.from_generator(gen, head_seed=1)
    if parallel != "none":
        gen, disc = wrap(gen, parallel, DEVICE), wrap(disc, parallel, DEVICE)
    trainer = AdversarialTrainer(gen, disc, cfg, lambda s: 2e-3, lambda s: 2e-3, seed=3)  # after wrap
    modules = {"generator": gen, "discriminator": disc}
    optimizers = {"generator": trainer.opt_g, "discriminator": trainer.opt_d}
    start = 0
    if resume is not None:
        load_sharded(resume, modules, optimizers)
        state = load_state(resume)
        trainer.load_state_dict(state["trainer"])
        start = int(state["step"])
    records = []
    for step in range(start + 1, steps + 1):
        m = trainer.step(step, *adversarial_batch(step, cfg))
        records.append({k: mean_over_ranks(torch.tensor(m[k])) if k in ("d_loss", "g_bce", "g_adv") else float(m[k])
                        for k in ADVERSARIAL_KEYS})
        if step == save_at and out is not None:
            save_sharded(out / f"adv-step-{step}", modules, optimizers, cfg,
                         state={"step": step, "trainer": trainer.state_dict(optimizers=False)}, meta={"stage": 2})
    weights = {f"g.{k}": v for k, v in full_state_dict(gen).items()}
    weights.update({f"d.{k}": v for k, v in full_state_dict(disc).items()})
    return records, weights, is_fsdp(gen) and is_fsdp(disc)
