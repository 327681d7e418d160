"""PIXAR: a decoder-only transformer over pixel positions (the paper's model), nanoGPT style.

No vocabulary and no embeddings: each position is an 8x16 block of binary pixels (128 values),
scaled to +-1 and projected linearly to `hidden` (= the official Conv2d(1, hidden, (8, 16), stride 16)).
A LLaMA body (RMSNorm, RoPE, SwiGLU, causal attention) follows; a linear head (= the official
ConvTranspose2d) gives one logit per pixel of the *next* position.

    pixels [B, H, W] --patchify--> [B, T, H*pw] --*2-1, Linear--> [B, T, C]
      --> n x Block(RMSNorm, attention + RoPE, RMSNorm, SwiGLU) --> RMSNorm --> Linear --> logits [B, T, H*pw]
    logits[:, t] predicts the pixels of position t+1 (the standard shift).

Shapes: B batch, T positions, C hidden, nh heads, hs head size, H patch height, pw = patch_size*patch_len.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from pixar.checkpoint.hub import load_for_hub, model_card, pixar_config_for, save_for_hub
from pixar.checkpoint.store import build_model, resolve_checkpoint
from pixar.config import ModelConfig, PixarConfig


# ---- pixels <-> positions -------------------------------------------------------------------
def patchify(pixels: torch.Tensor, position_width: int) -> torch.Tensor:
    """[B, H, W] -> [B, T, H*pw], each position's pixels flattened row-major (h, w)."""
    B, H, W = pixels.shape
    T = W // position_width
    return pixels[:, :, : T * position_width].reshape(B, H, T, position_width).permute(0, 2, 1, 3).reshape(B, T, H * position_width)


def unpatchify(positions: torch.Tensor, height: int) -> torch.Tensor:
    """[B, T, H*pw] -> [B, H, T*pw] (inverse of patchify)."""
    B, T, D = positions.shape
    pw = D // height
    return positions.reshape(B, T, height, pw).permute(0, 2, 1, 3).reshape(B, height, T * pw)


# ---- building blocks -------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cache(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin for integer positions [B, T] -> each [B, 1, T, hs] (HF LLaMA's rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    freqs = positions.float()[..., None] * inv_freq  # [B, T, hs/2]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos()[:, None], emb.sin()[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos.to(x.dtype)) + (rotated * sin.to(x.dtype))


class KVCache:
    """Pre-allocated keys/values for incremental decoding: per layer [B, nh, T_max, hs]."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device, dtype):
        shape = (batch, cfg.heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.length = 0  # positions already stored

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = k.shape[2]
        start = self.length
        self.k[layer][:, :, start: start + T] = k
        self.v[layer][:, :, start: start + T] = v
        return self.k[layer][:, :, : start + T], self.v[layer][:, :, : start + T]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.k_proj = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.v_proj = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
        self.o_proj = nn.Linear(cfg.hidden, cfg.hidden, bias=False)

    def forward(self, x, cos, sin, attn_mask, cache: KVCache | None = None, layer: int = 0):
        B, T, C = x.shape
        # [B, T, C] -> [B, nh, T, hs]
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, nh, T_past + T, hs]
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin, attn_mask, cache=None, layer=0):
        x = x + self.attn(self.attn_norm(x), cos, sin, attn_mask, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


# ---- the model -------------------------------------------------------------------------------
class Pixar(nn.Module, PyTorchModelHubMixin, library_name="pixar-harness", paper_url="https://arxiv.org/abs/2401.03321",
            license="mit", tags=["pixar", "pixel-language-model"]):
    """The model. Hub/folder sharing (huggingface_hub's mixin, our checkpoint layout: model.safetensors +
    config.json = the whole PixarConfig incl. render settings + meta.json + a model card README.md):
        Pixar.from_pretrained(name_or_dir) -> model (eval mode) with `.pixar_config` (render settings)
        model.save_pretrained(dir, config=PixarConfig, model_card_kwargs={"training": {...}, "benchmarks": [...]})
        model.push_to_hub(repo_id, config=..., model_card_kwargs=...)
    `activation_checkpointing = True` recomputes each block in backward (training only)."""

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.activation_checkpointing = False
        self.pixar_config = None  # the full PixarConfig (render settings) when loaded from a checkpoint
        D = cfg.pixels_per_position
        self.embed = nn.Linear(D, cfg.hidden, bias=False)  # = Conv2d(1, C, (8, 16), stride 16)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.head = nn.Linear(cfg.hidden, D, bias=False)  # = ConvTranspose2d(C, 1, (8, 16), stride 16)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """HF LLaMA init (normal, init_std) for the body; PyTorch's conv default for the patch
        in/out projections, as in the official code (uniform +-1/sqrt(128) for both).
        `generator` (a seeded torch.Generator) makes the init independent of the global RNG."""
        for name, p in self.named_parameters():
            if p.is_meta:
                continue
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name in ("embed.weight", "head.weight"):
                bound = 1.0 / math.sqrt(self.cfg.pixels_per_position)
                nn.init.uniform_(p, -bound, bound, generator=generator)
            else:
                nn.init.normal_(p, mean=0.0, std=self.cfg.init_std, generator=generator)

    @property
    def position_width(self) -> int:
        return self.cfg.patch_size * self.cfg.patch_len

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def hidden_states(self, positions: torch.Tensor, position_ids: torch.Tensor | None = None,
                      key_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                      attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """positions: [B, T, D] pixel values in [0, 1] (1 = white; continuous values allowed).
        position_ids: [B, T] RoPE positions (default: cache.length + arange(T)).
        key_mask: [B, T_total] 1 for keys that may be attended (left padding = 0); None = all.
        attn_mask: optional explicit bool mask [B or 1, 1, T, T_total] (True = may attend) that replaces
        the causal/key_mask one (e.g. stage 2's fake tokens, each seeing its own real prefix only).
        Returns final-norm hidden states [B, T, C]."""
        B, T, _ = positions.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=positions.device).expand(B, T)
        x = self.embed(positions.to(self.embed.weight.dtype) * 2 - 1)  # pixels {0,1} -> {-1,+1}
        cos, sin = rope_cache(position_ids, self.cfg.head_dim, self.cfg.rope_theta)
        if attn_mask is None and (key_mask is not None or past > 0):
            # [B, 1, T, past+T]: causal & key allowed; a query always sees itself (no empty rows)
            q_idx = torch.arange(past, past + T, device=x.device)[:, None]
            k_idx = torch.arange(past + T, device=x.device)[None, :]
            allowed = (k_idx <= q_idx)[None, None]
            if key_mask is not None:
                allowed = allowed & key_mask[:, None, None, : past + T].bool()
            attn_mask = allowed | (k_idx == q_idx)[None, None]
        recompute = self.activation_checkpointing and self.training and cache is None and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute:  # keep only each block's input; recompute its activations in backward
                x = activation_checkpoint(block, x, cos, sin, attn_mask, None, i, use_reentrant=False)
            else:
                x = block(x, cos, sin, attn_mask, cache, i)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    def forward(self, pixels: torch.Tensor, mask: torch.Tensor | None = None, targets: torch.Tensor | None = None):
        """pixels [B, H, W] in [0, 1]; mask [B, T] (1 = text or EOS position); targets [B, H, W] or None.
        Returns (logits [B, T, D], loss or None). logits[:, t] predicts position t+1."""
        positions = patchify(pixels.float(), self.position_width)
        logits = self.head(self.hidden_states(positions))
        loss = None
        if targets is not None:
            if mask is None:
                mask = torch.ones(positions.shape[:2], device=pixels.device)
            loss = masked_bce(logits, patchify(targets.float(), self.position_width), mask)
        return logits, loss

    # ---- sharing (huggingface_hub mixin; our checkpoint layout) ------------------------------
    def save_pretrained(self, save_directory, *, config=None, repo_id=None, push_to_hub=False,
                        model_card_kwargs=None, **push_to_hub_kwargs):
        """Write our checkpoint layout + a model card to `save_directory` (atomically). `config`: the
        PixarConfig (or its dict) to store; default `self.pixar_config`, else one built from `self.cfg`.
        model_card_kwargs: {"training": {"steps": ..., ...}, "benchmarks": [{"task", "metric", "value",
        "protocol", ...}]} for the generated card."""
        self._hub_pending = (pixar_config_for(self, config), dict(model_card_kwargs or {}))
        try:
            return super().save_pretrained(save_directory, config=None, repo_id=repo_id, push_to_hub=push_to_hub,
                                           model_card_kwargs=model_card_kwargs, **push_to_hub_kwargs)
        finally:
            del self._hub_pending

    def _save_pretrained(self, save_directory: Path) -> None:
        cfg, card = getattr(self, "_hub_pending", (None, {}))
        save_for_hub(self, Path(save_directory), cfg, card)

    def generate_model_card(self, *args, **kwargs):
        cfg = getattr(self, "_hub_pending", (None, {}))[0]
        return model_card(self, cfg, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """The mixin's from_pretrained; a local run folder (its `last` pointer) is read at its newest checkpoint,
        where config.json is (so the mixin does not warn that the folder has none)."""
        path = Path(pretrained_model_name_or_path)
        if path.is_dir() and not (path / "config.json").is_file():
            pretrained_model_name_or_path = resolve_checkpoint(path)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False, proxies=None,
                         resume_download=None, local_files_only=False, token=None, map_location: str = "cpu",
                         **model_kwargs):
        return load_for_hub(cls, model_id, revision=revision, cache_dir=cache_dir, force_download=force_download,
                            local_files_only=local_files_only, token=token, device=map_location)


def masked_bce(logits: torch.Tensor, target_positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's stage-1 loss: per-pixel BCE of position t+1 given <= t, averaged over each sample's
    valid pixels (targets with mask 1: text and EOS, not padding), then over the batch.
    logits, target_positions: [B, T, D]; mask: [B, T]."""
    pred = logits[:, :-1].float()  # the last prediction has no target
    tgt = target_positions[:, 1:].float()  # the first position is never a target
    m = mask[:, 1:].float()
    per_pos = F.binary_cross_entropy_with_logits(pred, tgt, reduction="none").mean(-1)  # [B, T-1]
    per_sample = (per_pos * m).sum(1) / m.sum(1).clamp(min=1)
    return per_sample.mean()


def load_model(path, device: str | torch.device = "cpu") -> tuple[Pixar, PixarConfig]:
    """A checkpoint folder (or a training run folder: its `last` checkpoint) -> (Pixar in eval mode, its
    PixarConfig). CheckpointError names a missing or corrupt file."""
    return build_model(Pixar, path, device)
