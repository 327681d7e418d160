"""Autoregressive generation of pixel positions (the paper's generation and readability scoring).

Prompt preparation: render the prompt, then `space_text(3)` so exactly 3 white columns separate the last
ink from the EOS block. The first generated position overwrites the EOS slot; each further one is
appended. Decoding: probabilities p = sigmoid(logits / T) of each pixel being white; greedy keeps
p > 0.5 (the paper's setting), `sample` draws Bernoulli(p) with an explicit torch.Generator. A sample
stops at `max_new_positions` or when it emits an EOS block (>= `eos_ink` of its pixels ink).

Batches of prompts of different lengths are left-padded internally so every row decodes one new
position per step; RoPE position ids and a key mask keep each row identical to decoding it alone.
With `use_cache=True` the keys/values of earlier positions are kept (KVCache); `use_cache=False`
recomputes the whole sequence each step (the official code's way). Both give identical outputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pixar.model.transformer import KVCache, Pixar, patchify, unpatchify
from pixar.render.renderer import Renderer, space_text


@dataclass
class Generation:
    pixels: np.ndarray  # uint8 [B, H, W_out]: prompt, then generated positions from `start`
    start: np.ndarray  # int64 [B]: first generated position (= the prompt's EOS position)
    num_generated: np.ndarray  # int64 [B]: generated positions kept (an emitted EOS block included)
    stopped_at_eos: np.ndarray  # bool [B]
    probs: torch.Tensor  # float [B, K, D]: white-probabilities of each generated position (K steps run)
    position_width: int

    def generated_span(self, i: int) -> np.ndarray:
        """[H, n*pw] pixels of sample i's generated positions (what OCR reads)."""
        pw = self.position_width
        a = int(self.start[i]) * pw
        return self.pixels[i, :, a: a + int(self.num_generated[i]) * pw]


def prepare_prompts(renderer: Renderer, texts: list[str], gap: int = 3):
    """Render + space prompts. Returns (pixels uint8 [B, H, W], eos_position int64 [B], batch)."""
    batch = renderer.render_batch(texts)
    pixels = space_text(batch.pixels, batch.eos_position, renderer.cfg.position_width, gap)
    return pixels, batch.eos_position, batch


def is_eos_block(positions: torch.Tensor, eos_ink: float) -> torch.Tensor:
    """[..., D] binary positions -> bool [...]: at least `eos_ink` of the pixels are ink (0)."""
    return (positions < 0.5).float().mean(-1) >= eos_ink


@torch.no_grad()
def generate(model: Pixar, pixels, eos_position, max_new_positions: int, *, mode: str = "greedy",
             temperature: float = 1.0, generator: torch.Generator | None = None, use_cache: bool = True,
             stop_at_eos: bool = True, eos_ink: float = 0.9, device=None) -> Generation:
    """pixels: [B, H, W] (uint8 or float, 1 = white) of spaced prompts; eos_position: [B] EOS index."""
    if mode not in ("greedy", "sample"):
        raise ValueError(f"mode must be 'greedy' or 'sample', got {mode!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if not isinstance(max_new_positions, (int, np.integer)) or max_new_positions < 0:
        raise ValueError(f"max_new_positions must be a non-negative integer, got {max_new_positions!r}")
    device = device or next(model.parameters()).device
    pw, H = model.position_width, model.cfg.patch_size
    eos = torch.as_tensor(np.asarray(eos_position), dtype=torch.long)
    B = eos.shape[0]
    if (eos < 1).any():
        raise ValueError("every prompt needs at least one position before its EOS slot")
    positions = patchify(torch.as_tensor(np.asarray(pixels)).float(), pw)  # [B, P, D]
    D, N, K = positions.shape[-1], int(eos.max()), max_new_positions

    # left-pad: row i's n_i = eos_i prompt positions occupy [N - n_i, N)
    pad = N - eos
    seq = torch.ones(B, N + K, D)
    key_mask = torch.zeros(B, N + K, dtype=torch.bool)
    for i in range(B):
        seq[i, pad[i]:N] = positions[i, : eos[i]]
        key_mask[i, pad[i]:] = True
    pos_ids = (torch.arange(N + K)[None, :] - pad[:, None]).clamp(min=0)
    seq, key_mask, pos_ids = seq.to(device), key_mask.to(device), pos_ids.to(device)

    was_training = model.training
    model.eval()
    cache = None
    if use_cache:
        cache = KVCache(model.cfg, B, N + K, device, next(model.parameters()).dtype)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    n_gen = torch.zeros(B, dtype=torch.long, device=device)
    hit_eos = torch.zeros(B, dtype=torch.bool, device=device)
    all_probs = []
    try:
        for k in range(K):
            T = N + k
            if use_cache:
                new = slice(0, T) if k == 0 else slice(T - 1, T)
                h = model.hidden_states(seq[:, new], pos_ids[:, new], key_mask[:, :T], cache)[:, -1]
            else:
                h = model.hidden_states(seq[:, :T], pos_ids[:, :T], key_mask[:, :T])[:, -1]
            probs = torch.sigmoid(model.head(h).float() / temperature)  # [B, D]
            if mode == "greedy":
                nxt = (probs > 0.5).float()
            else:
                nxt = torch.bernoulli(probs.cpu(), generator=generator).to(device)
            all_probs.append(probs)
            nxt = torch.where(done[:, None], torch.ones_like(nxt), nxt)  # finished rows: white
            seq[:, T] = nxt
            n_gen += (~done).long()
            if stop_at_eos:
                emitted = is_eos_block(nxt, eos_ink) & ~done
                hit_eos |= emitted
                done |= emitted
            if bool(done.all()):
                break
    finally:
        model.train(was_training)

    steps = len(all_probs)
    W_out = (N + steps) * pw
    out = torch.ones(B, H, max(W_out, positions.shape[1] * pw))
    for i in range(B):
        e = int(eos[i])
        row = torch.cat([positions[i, :e], seq[i, N: N + steps].cpu()], 0)  # [e + steps, D]
        img = unpatchify(row[None], H)[0]
        out[i, :, : img.shape[1]] = img
        out[i, :, (e + int(n_gen[i])) * pw:] = 1.0  # blank what a finished row would not have made
    probs = torch.stack(all_probs, 1).cpu() if all_probs else torch.zeros(B, 0, D)
    return Generation(out.round().to(torch.uint8).numpy(), eos.numpy(), n_gen.cpu().numpy(),
                      hit_eos.cpu().numpy(), probs, pw)


def generate_from_text(model: Pixar, renderer: Renderer, prompts: list[str], max_new_positions: int, **kw) -> Generation:
    pixels, eos, _ = prepare_prompts(renderer, prompts)
    return generate(model, pixels, eos, max_new_positions, **kw)
