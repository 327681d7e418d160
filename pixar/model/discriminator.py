"""Stage-2 discriminator: the generator's backbone with a 2-way head (the paper's adversarial stage).

    Discriminator = deep copy of Pixar's embed + blocks + final norm (pixel head removed)
                    + Linear(hidden, 2, bias=True); class 1 = real, class 0 = fake.

Real positions are scored by one causal pass (`real_logits`), which also keeps every layer's keys and
values in a `PrefixKV`. A fake position is the generator's continuous prediction for position t+1
(sigmoid probabilities; the embed maps them to [-1, 1] exactly like real pixels). `fake_logits` scores
S such tokens in one batched pass: fake token s sits at RoPE position t_s + 1 and attends to the cached
real keys 0..t_s and to itself only (never to other fake tokens, never to real positions > t_s), which
equals recomputing [real 0..t_s, fake_s] from scratch (tested).

Shapes: B batch, T real positions, S fake positions, D pixels per position, C hidden, nh heads, hs head size.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from pixar.config import ModelConfig
from pixar.model.transformer import Pixar


class PrefixKV:
    """Autograd-safe stand-in for `pixar.model.transformer.KVCache`: per-layer keys/values [B, nh, T, hs] kept as
    graph tensors (concatenation, no in-place writes), so losses on continuations back-propagate into the
    discriminator through the real prefix. A writable cache appends; `continuation()` gives a read-only
    view whose updates return prefix ++ new keys without storing them (one prefix, many continuations)."""

    def __init__(self, layers: int, *, _k=None, _v=None, _length: int = 0, _frozen: bool = False):
        self.k: list[torch.Tensor | None] = list(_k) if _k is not None else [None] * layers
        self.v: list[torch.Tensor | None] = list(_v) if _v is not None else [None] * layers
        self.length = _length  # positions stored (read by Pixar.hidden_states)
        self.frozen = _frozen

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        old_k, old_v = self.k[layer], self.v[layer]
        if old_k is not None:
            k, v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
        if not self.frozen:
            self.k[layer], self.v[layer] = k, v
        return k, v

    def continuation(self, detach: bool = False) -> "PrefixKV":
        """A read-only view of the stored prefix (detached from the graph when `detach`)."""
        if any(k is None for k in self.k):
            raise RuntimeError("PrefixKV is empty: encode the real sequence first (Discriminator.real_logits)")
        k = [t.detach() for t in self.k] if detach else self.k
        v = [t.detach() for t in self.v] if detach else self.v
        return PrefixKV(len(self.k), _k=k, _v=v, _length=self.length, _frozen=True)


def fake_attention_mask(pred_idx: torch.Tensor, prefix_len: int, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mask for S fake queries over [prefix_len real keys, S fake keys] -> bool [B|1, 1, S, prefix_len + S].
    Fake token s (predicted at position pred_idx[s], shown at pred_idx[s] + 1) may attend to real keys
    j <= pred_idx[s] (and key_mask[b, j] when given) and to fake key s itself."""
    S = pred_idx.shape[0]
    j = torch.arange(prefix_len, device=pred_idx.device)
    real = j[None, :] <= pred_idx[:, None]  # [S, T]
    own = torch.eye(S, dtype=torch.bool, device=pred_idx.device)  # [S, S]
    mask = torch.cat([real, own], dim=1)[None, None]  # [1, 1, S, T + S]
    if key_mask is not None:
        keys = torch.cat([key_mask[:, :prefix_len].bool(), torch.ones(key_mask.shape[0], S, dtype=torch.bool,
                                                                       device=key_mask.device)], 1)
        mask = mask & keys[:, None, None, :]
    return mask


class Discriminator(nn.Module):
    """Pixel positions -> 2 logits per position (class 1 = real). Built from a generator with
    `from_generator` (deep copy) or from a config with `from_config` (weights loaded afterwards)."""

    def __init__(self, backbone: Pixar, head_seed: int = 0):
        super().__init__()
        self.cfg: ModelConfig = backbone.cfg
        self.backbone = backbone
        if hasattr(self.backbone, "head"):
            del self.backbone.head  # the pixel head is not part of the discriminator
        self.head = nn.Linear(self.cfg.hidden, 2, bias=True)
        bound = 1.0 / math.sqrt(self.cfg.hidden)  # PyTorch's Linear default range, drawn from a seeded generator
        g = torch.Generator().manual_seed(head_seed)
        with torch.no_grad():
            w = torch.empty(self.head.weight.shape).uniform_(-bound, bound, generator=g)
            b = torch.empty(self.head.bias.shape).uniform_(-bound, bound, generator=g)
            emb = self.backbone.embed.weight
            self.head.weight.copy_(w.to(emb))
            self.head.bias.copy_(b.to(emb))

    @classmethod
    def from_generator(cls, generator_model: Pixar, head_seed: int = 0) -> "Discriminator":
        """Deep copy of the generator's backbone (same device/dtype) + a fresh seeded 2-way head."""
        disc = cls(copy.deepcopy(generator_model), head_seed)
        disc.zero_grad(set_to_none=True)
        return disc.train(generator_model.training)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "Discriminator":
        """Architecture only (for loading saved weights)."""
        return cls(Pixar(cfg))

    def real_logits(self, positions: torch.Tensor, cache: PrefixKV | None = None) -> torch.Tensor:
        """positions [B, T, D] in [0, 1] -> logits [B, T, 2] from one causal pass. A fresh `cache`
        (PrefixKV(layers)) receives every layer's keys/values for `fake_logits`."""
        if cache is not None and cache.length != 0:
            raise ValueError("real_logits needs an empty PrefixKV")
        return self.head(self.backbone.hidden_states(positions, cache=cache))

    def fake_logits(self, fake: torch.Tensor, pred_idx: torch.Tensor, cache: PrefixKV, *,
                    detach_prefix: bool = False, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """fake [B, S, D] continuous pixels; pred_idx [S] long (the generator position that predicted each
        fake, all < cache.length) -> logits [B, S, 2]. Fake s is scored as a 1-token continuation of real
        positions 0..pred_idx[s] (keys/values from `cache`), at RoPE position pred_idx[s] + 1."""
        B, S, _ = fake.shape
        T = cache.length
        if pred_idx.ndim != 1 or pred_idx.shape[0] != S:
            raise ValueError(f"pred_idx must be [S={S}], got {tuple(pred_idx.shape)}")
        if S and int(pred_idx.max()) >= T:
            raise ValueError(f"pred_idx {int(pred_idx.max())} is outside the {T}-position prefix")
        pred_idx = pred_idx.to(fake.device)
        position_ids = (pred_idx + 1)[None, :].expand(B, S)
        mask = fake_attention_mask(pred_idx, T, key_mask)
        h = self.backbone.hidden_states(fake, position_ids, cache=cache.continuation(detach_prefix), attn_mask=mask)
        return self.head(h)
