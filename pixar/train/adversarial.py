"""Stage 2: adversarial pretraining (the paper's adversarial stage).

Per step, on one batch of real rendered sequences (positions x [B, T, D], mask m [B, T]):

    G:  logits = G(x)                                   [B, T, D]  (logits[:, t] predicts x[:, t+1])
        L_bce  = masked_bce(logits, x, m)
        pick S prediction positions t_s (same for the whole batch; target t_s+1 attended in some row)
        fake_s = sigmoid(logits[:, t_s])                [B, S, D]  continuous, never binarised
    D:  real logits: one causal pass over x             [B, T, 2]  (keys/values kept)
        fake logits: fake_s as a 1-token continuation of real 0..t_s   [B, S, 2]
        L_D    = 1/2 (CE(real, 1) over m + CE(fake, 0) over m[:, t_s+1])
        L_adv  = CE(fake, 1) over m[:, t_s+1]           (non-saturating generator loss)
    G update: grad(L_bce) + (lambda_prev * alpha_t + 1e-8) * grad(L_adv)
        lambda = mean|dL_bce/dW_out| / mean|dL_adv/dW_out| over W_out = G.head.weight, measured at this
        step and applied at the next (one-step lag); the first step only measures (G is not updated).
        alpha_t = alpha * min(1, (step - 1) / alpha_warmup).
    D update: grad(L_D) w.r.t. D only (real and fake are treated as constants), same batch, after G.

Gradient bookkeeping: D scores a detached copy of the fakes (a leaf tensor `fake_in`), so D's graph never
reaches G. dL/dlogits is taken separately for L_bce and for L_adv (autograd.grad w.r.t. activations: L_adv
to `fake_in` through D's S-token pass, then through the sigmoid to the logits); W_out's gradients are
dL/dlogits^T h (h = G's final hidden states), averaged across ranks before the lambda means. The parameter
gradients come from `.backward()`: L_D.backward() fills D's .grad, and one
`logits.backward(dL_bce/dlogits + w * dL_adv/dlogits)` fills G's. Three modes, one code path:
    one process              plain modules
    torchrun, unwrapped      .grad all-reduced (averaged) by hand across ranks (average_across_ranks)
    torchrun, FSDP2          G and D from pixar.train.parallel.wrap(m, "fsdp", device): FSDP reduce-scatters the
                             .grad of the shards itself; norms/clipping on shards via pixar.train.parallel.clip_grad_norm
(DistributedDataParallel wrappers are refused: stage 2 calls hidden_states/head/real_logits directly, which
DDP does not synchronise; pass the unwrapped modules instead.) Separate AdamW optimisers (stage-1 betas,
eps, weight decay, clip), built from the modules' parameters in __init__ (so construct the trainer after
wrapping) or passed in; schedules are functions of the step; the run around it is pixar.train.stage2.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pixar.config import PixarConfig
from pixar.model.discriminator import Discriminator, PrefixKV
from pixar.train.loop import NonFiniteLoss, adamw_from, set_lr
from pixar.model.transformer import Pixar, masked_bce, patchify
from pixar.train.parallel import clip_grad_norm, is_fsdp

LAMBDA_EPS = 1e-8
"""Added to the denominator of lambda_auto (no fake gradient -> a large finite ratio, not inf)."""
ADV_WEIGHT_EPS = 1e-8
"""Added to lambda * alpha_t, as in the official code."""


class AdversarialError(NonFiniteLoss):
    """Stage 2 cannot continue (NaN/Inf loss or gradient); the message says what happened."""


# ---- pure pieces ----------------------------------------------------------------------------
def alpha_at(step: int, alpha: float, warmup: int) -> float:
    """alpha_t for 1-based `step`: 0 at step 1, rising linearly to alpha at step warmup + 1."""
    if warmup <= 0:
        return alpha
    return alpha * min(1.0, max(0, step - 1) / warmup)


def lambda_auto(grad_bce_out: torch.Tensor, grad_adv_out: torch.Tensor, eps: float = LAMBDA_EPS) -> float:
    """mean|dL_bce/dW_out| / (mean|dL_adv/dW_out| + eps): L1 means, no clamp (the paper's adversarial stage)."""
    return float(grad_bce_out.float().abs().mean() / (grad_adv_out.float().abs().mean() + eps))


def sample_positions(mask: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
    """mask [B, T] -> sorted long [S <= num] prediction positions t (CPU) whose target t+1 is attended in
    at least one row (in any rank's batch under torch.distributed, so all ranks draw the same positions)."""
    valid = mask[:, 1:].bool().any(0).float().cpu()  # [T-1]
    if _distributed():
        valid = valid.to(_comm_device())
        dist.all_reduce(valid, op=dist.ReduceOp.MAX)
        valid = valid.cpu()
    candidates = valid.nonzero().squeeze(1)
    if candidates.numel() == 0:
        raise AdversarialError("batch has no attended position after the first one (empty sequences?)")
    pick = torch.randperm(candidates.numel(), generator=generator)[:num]
    return candidates[pick].sort().values


def masked_ce(logits: torch.Tensor, label: int, mask: torch.Tensor) -> torch.Tensor:
    """Mean 2-way cross-entropy of logits [..., 2] against a constant label over mask [...] == 1."""
    target = torch.full(logits.shape[:-1], label, dtype=torch.long, device=logits.device)
    ce = F.cross_entropy(logits.float().reshape(-1, 2), target.reshape(-1), reduction="none").view(mask.shape)
    m = mask.float()
    return (ce * m).sum() / m.sum().clamp(min=1)


def masked_accuracy(logits: torch.Tensor, label: int, mask: torch.Tensor) -> float:
    m = mask.float()
    return float(((logits.detach().argmax(-1) == label).float() * m).sum() / m.sum().clamp(min=1))


@dataclass
class AdversarialForward:
    """Everything one step needs from the two forward passes (graphs kept for the gradients)."""

    hidden: torch.Tensor  # [B, T, C] G's final hidden states
    logits: torch.Tensor  # [B, T, D] G's pixel logits
    bce: torch.Tensor  # scalar L_bce
    adv: torch.Tensor  # scalar L_adv = CE(D(fake), real)
    d_loss: torch.Tensor  # scalar 1/2 (CE_real + CE_fake)
    ce_real: torch.Tensor
    ce_fake: torch.Tensor
    real_logits: torch.Tensor  # [B, T, 2]
    fake_logits: torch.Tensor  # [B, S, 2]
    fake_mask: torch.Tensor  # [B, S]: target of each sampled position attended in that row
    fake: torch.Tensor  # [B, S, D] sigmoid(logits[:, pred_idx]), attached to G
    fake_in: torch.Tensor  # [B, S, D] what D scored: `fake` itself, or a detached leaf copy (detach_fake)


def adversarial_forward(gen: Pixar, disc: Discriminator, positions: torch.Tensor, mask: torch.Tensor,
                        pred_idx: torch.Tensor, detach_fake: bool = False) -> AdversarialForward:
    """positions [B, T, D] real pixels in [0, 1]; mask [B, T]; pred_idx [S] long (see sample_positions).
    detach_fake: D scores a leaf copy of the fakes (requires_grad), so no loss on D's logits reaches G;
    the gradient of L_adv then reaches G only through dL_adv/dfake_in chained by hand (the trainer)."""
    pred_idx = pred_idx.to(positions.device)
    hidden = gen.hidden_states(positions)
    logits = gen.head(hidden)
    bce = masked_bce(logits, positions, mask)
    cache = PrefixKV(disc.cfg.layers)
    real_logits = disc.real_logits(positions, cache)
    fake = torch.sigmoid(logits[:, pred_idx].float())  # [B, S, D]: G's continuous next-position prediction
    fake_in = fake.detach().requires_grad_() if detach_fake else fake
    fake_logits = disc.fake_logits(fake_in, pred_idx, cache)
    fake_mask = mask[:, pred_idx + 1].float()
    ce_real, ce_fake = masked_ce(real_logits, 1, mask), masked_ce(fake_logits, 0, fake_mask)
    adv = masked_ce(fake_logits, 1, fake_mask)
    return AdversarialForward(hidden, logits, bce, adv, 0.5 * (ce_real + ce_fake), ce_real, ce_fake,
                              real_logits, fake_logits, fake_mask, fake, fake_in)


def head_weight_grad(grad_logits: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """dL/dW_out [D, C] of logits = hidden @ W_out^T from dL/dlogits [B, T, D] and hidden [B, T, C]."""
    return torch.einsum("btd,btc->dc", grad_logits.detach().float(), hidden.detach().float())


# ---- distributed helpers ------------------------------------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def average_across_ranks(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """All-reduce-mean a list of tensors as one flat buffer (no-op in a single process)."""
    if not _distributed() or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dev = flat.device
    flat = flat.to(_comm_device())
    dist.all_reduce(flat)
    flat = (flat / dist.get_world_size()).to(dev)
    out, i = [], 0
    for t in tensors:
        out.append(flat[i: i + t.numel()].view_as(t).to(t.dtype))
        i += t.numel()
    return out


# ---- the step -------------------------------------------------------------------------------
class AdversarialTrainer:
    """Owns G, D, their AdamW optimisers, lambda_prev and the position sampler's generator.

    gen / disc: plain modules (one process, or torchrun with gradients all-reduced here), or both wrapped
    by pixar.train.parallel.wrap(m, "fsdp", device) BEFORE the trainer is built (its optimisers hold the
    parameters it sees: FSDP's shards). optimizers=(opt_g, opt_d) replaces the built-in AdamW pair.
    lr_g_at / lr_d_at: 1-based step -> learning rate (warm-up + cosine, supplied by the caller)."""

    def __init__(self, gen: Pixar, disc: Discriminator, cfg: PixarConfig, lr_g_at: Callable[[int], float],
                 lr_d_at: Callable[[int], float], seed: int = 0, autocast: Callable[[], object] | None = None,
                 optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None):
        for name, m in (("generator", gen), ("discriminator", disc)):
            if isinstance(m, torch.nn.parallel.DistributedDataParallel):
                raise ValueError(f"stage 2 takes the {name} unwrapped or FSDP-wrapped, not under DistributedDataParallel "
                                 "(it calls hidden_states/head/real_logits, which DDP does not synchronise; "
                                 "unwrapped modules get their gradients all-reduced by the trainer)")
        if is_fsdp(gen) != is_fsdp(disc):
            raise ValueError("stage 2 needs the generator and the discriminator wrapped alike (both FSDP or neither)")
        self.gen, self.disc, self.cfg = gen, disc, cfg
        self.fsdp = is_fsdp(gen)  # FSDP reduce-scatters gradients itself; otherwise they are averaged by hand
        if optimizers is None:
            o = cfg.adv.optim
            optimizers = adamw_from(gen.parameters(), o, lr_g_at(1)), adamw_from(disc.parameters(), o, lr_d_at(1))
        self.opt_g, self.opt_d = optimizers
        self.lr_g_at, self.lr_d_at = lr_g_at, lr_d_at
        self.lambda_prev: float | None = None  # None until the first step has measured it
        self.sampler = torch.Generator().manual_seed(seed)
        self.autocast = autocast or nullcontext

    # state for checkpoints (tensors + JSON-able values only)
    def state_dict(self, optimizers: bool = True) -> dict:
        """optimizers=False: lambda and the sampler only (FSDP runs save the sharded optimiser states with
        pixar.train.parallel.save_sharded(..., {"generator": opt_g, "discriminator": opt_d}))."""
        state = {"lambda_prev": self.lambda_prev, "sampler": self.sampler.get_state()}
        if optimizers:
            state.update(opt_g=self.opt_g.state_dict(), opt_d=self.opt_d.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Optimiser states are restored when present (see state_dict(optimizers=False))."""
        if "opt_g" in state:
            self.opt_g.load_state_dict(state["opt_g"])
        if "opt_d" in state:
            self.opt_d.load_state_dict(state["opt_d"])
        self.lambda_prev = state["lambda_prev"]
        self.sampler.set_state(state["sampler"])

    def step(self, step: int, pixels: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """One adversarial step (1-based `step`) on pixels [B, H, W] (1 = white) and mask [B, T].
        Returns the step's metrics; raises AdversarialError on a NaN/Inf loss before any update."""
        acfg = self.cfg.adv
        device = next(self.gen.parameters()).device
        positions = patchify(pixels.to(device).float(), self.gen.position_width)
        mask = mask.to(device)[:, : positions.shape[1]]
        pred_idx = sample_positions(mask, acfg.num_samples, self.sampler)
        self.gen.train()
        self.disc.train()
        with self.autocast():
            fw = adversarial_forward(self.gen, self.disc, positions, mask, pred_idx, detach_fake=True)
        names = ("g_bce", "g_adv", "d_loss")  # averaged over ranks first, so every rank stops together
        values = average_across_ranks([torch.stack([fw.bce, fw.adv, fw.d_loss]).detach().float()])[0].tolist()
        if not all(math.isfinite(v) for v in values):
            raise AdversarialError(f"stage 2 step {step}: non-finite loss ("
                                   f"{', '.join(f'{k}={v}' for k, v in zip(names, values))}); stopping")

        # logit gradients (activations, local): L_bce directly, L_adv through D's fake pass and the sigmoid
        dlogits_bce, = torch.autograd.grad(fw.bce, fw.logits, retain_graph=True)
        dfake_adv, = torch.autograd.grad(fw.adv, fw.fake_in, retain_graph=True)  # D's graph is kept for L_D
        dlogits_adv, = torch.autograd.grad(fw.fake, fw.logits, grad_outputs=dfake_adv, retain_graph=True)
        w_bce, w_adv = average_across_ranks([head_weight_grad(dlogits_bce, fw.hidden),
                                             head_weight_grad(dlogits_adv, fw.hidden)])
        measured = lambda_auto(w_bce, w_adv)
        alpha_t = alpha_at(step, acfg.alpha, acfg.alpha_warmup)
        update_g = self.lambda_prev is not None  # step 1 only measures the ratio
        adv_weight = self.lambda_prev * alpha_t + ADV_WEIGHT_EPS if update_g else 0.0

        # parameter gradients by backward (FSDP reduce-scatters them into the shards' .grad)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        fw.d_loss.backward()  # D only: the fakes D saw are a detached leaf
        if update_g:  # one backward through G with the combined logit gradient
            fw.logits.backward(gradient=dlogits_bce + adv_weight * dlogits_adv)
        elif self.fsdp:
            self.gen.reshard()  # no backward ran through G: free its all-gathered root parameters
        lr_g, lr_d = self.lr_g_at(step), self.lr_d_at(step)
        d_norm = self._finish_grads(self.disc)
        g_norm = self._finish_grads(self.gen) if update_g else 0.0
        if update_g:  # generator first ...
            self._step(self.opt_g, lr_g)
        self._step(self.opt_d, lr_d)  # ... then the discriminator
        self.lambda_prev = measured
        scalars = {k: float(v.detach()) for k, v in (("d_loss", fw.d_loss), ("d_loss_real", fw.ce_real),
                                                        ("d_loss_fake", fw.ce_fake), ("g_bce", fw.bce), ("g_adv", fw.adv))}
        return {**scalars, "lambda_auto": measured, "adv_weight": adv_weight,
                "alpha_t": alpha_t, "d_acc_real": masked_accuracy(fw.real_logits, 1, mask),
                "d_acc_fake": masked_accuracy(fw.fake_logits, 0, fw.fake_mask), "lr": lr_g, "lr_d": lr_d,
                "g_updated": update_g, "g_grad_norm": g_norm, "d_grad_norm": d_norm, "num_fake": int(pred_idx.numel())}

    def _finish_grads(self, module: torch.nn.Module) -> float:
        """After backward: unused parameters get zero gradients, unwrapped gradients are averaged across
        ranks (FSDP's shards already hold the average), then clip to cfg.adv.optim.grad_clip -> pre-clip global
        norm. A non-finite norm clears the grads and raises before any optimiser has stepped."""
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not self.fsdp:
            for p, g in zip(params, average_across_ranks([p.grad for p in params])):
                p.grad = g.to(p.dtype)
        norm = clip_grad_norm(module, self.cfg.adv.optim.grad_clip)
        if not math.isfinite(norm):
            self.opt_g.zero_grad(set_to_none=True)
            self.opt_d.zero_grad(set_to_none=True)
            raise AdversarialError(f"non-finite gradient norm ({norm}); stopping")
        return norm

    @staticmethod
    def _step(opt: torch.optim.Optimizer, lr: float) -> None:
        set_lr(opt, lr)
        opt.step()
        opt.zero_grad(set_to_none=True)
