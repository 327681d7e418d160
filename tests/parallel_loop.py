"""The tests' tiny config, seeded batches and a minimal stage-2 loop over pixar.train.parallel (tests/test_parallel.py,
tests/test_adversarial_fsdp.py).

    tiny_cfg(), global_batch(step, cfg)            a tiny pixar.model.transformer.Pixar config, seeded binary strips
    adversarial_steps(parallel, steps, ...)        AdversarialTrainer steps on wrapped or unwrapped G and D

The global batch of step s is the same whatever the world size; rank r takes rows r*B/W .. (r+1)*B/W. Losses are
global-batch means (all-reduced), so a 1-process and a 2-rank run must log the same numbers.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from pixar.checkpoint.store import load_state
from pixar.config import PixarConfig
from pixar.config_io import from_dict
from pixar.model.discriminator import Discriminator
from pixar.model.transformer import Pixar
from pixar.train.parallel import load_sharded, save_sharded, world, wrap

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
