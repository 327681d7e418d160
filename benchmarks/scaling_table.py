"""Scaling table for docs/scaling.md: parameters, FLOPs per step, memory per GPU under DDP and FSDP, and
the launch commands, for pixar-113m / 403m / 944m / 1.97b.

    python benchmarks/scaling_table.py [--gpu-gib 80] [--gpus 4 8 16]        (prints Markdown)

FLOPs per optimizer step (the paper's batch: 384 sequences x 360 positions):
    6 * N_matmul * positions  +  12 * layers * hidden * T * positions
N_matmul = parameters used in matmuls (all but the RMSNorm weights); the second term is the attention
scores and values (QK^T and AV: 2 x 2 T h FLOPs per position per layer forward, x3 for forward+backward;
the causal mask is not discounted). GPT-2 partners: the same with N_matmul = non-embedding matmul
parameters + the 50,257 x hidden output projection, over 384 x 318 tokens (3.71 characters per GPT-2
token measured on $PIXAR_DATA/corpus, chunks of <= 1180 characters).

Memory per GPU (bytes; G GPUs, fp32 master parameters, bf16 autocast, AdamW):
    parameters 4N, gradients 4N, AdamW exp_avg + exp_avg_sq 8N                  (DDP: whole; FSDP: / G)
    DDP gradient buckets 4N (gradient_as_bucket_view=False, PyTorch's default)
    FSDP working set: 2 blocks' all-gathered fp32 parameters (current + prefetched) + 1 block's unsharded
      fp32 gradients before its reduce-scatter = 3 x 4 x block parameters, + the root (pixel projections, norm)
    activations: MEASURED, not estimated: the tensors autograd saves for backward (torch saved-tensor hooks,
      bf16 CPU autocast, deduplicated by storage) of the real block width, per position per layer and for
      the rest of the model, at two lengths so that only the per-position part is kept; the T x T attention
      matrix that only the CPU math kernel keeps is excluded (flash/efficient SDPA keep q, k, v, out, lse).
      Micro-batch = 384 / G sequences (grad_accum 1); with activation checkpointing each block keeps what
      torch.utils.checkpoint saves (its input; measured the same way), plus one block's full activations
      during its recompute.
Not counted: CUDA context (~0.5-1 GiB), allocator fragmentation, NCCL buffers, the autocast weight-cast
cache (bf16 copies of the weights in use: 2N under DDP, 2 x block under FSDP) and temporary buffers.
"""
from __future__ import annotations

import argparse

import torch

from pixar.config import PixarConfig, preset_path
from pixar.model.transformer import Pixar

PRESETS = ("pixar-113m", "pixar-403m", "pixar-944m", "pixar-1.97b")
BATCH, GPT2_TOKENS, GPT2_VOCAB = 384, 318, 50257
GIB = 2 ** 30


def saved_bytes(cfg, layers: int, T: int, recompute: bool = False) -> int:
    """Bytes autograd saves for backward in one forward of a `layers`-block model at width cfg over
    [1, T] positions under bf16 autocast (deduplicated by storage; T x T tensors excluded)."""
    from dataclasses import replace

    mcfg = replace(cfg, layers=layers, max_positions=T)
    model = Pixar(mcfg, generator=torch.Generator().manual_seed(0)).train()
    model.activation_checkpointing = recompute
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and not (t.dim() >= 2 and t.shape[-1] == t.shape[-2] == T):
            seen[ptr] = storage.nbytes()
        return t

    g = torch.Generator().manual_seed(1)
    pixels = (torch.rand(1, mcfg.patch_size, T * mcfg.patch_size * mcfg.patch_len, generator=g) > 0.5).float()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(pixels, None, pixels)
    return sum(seen.values())


def activation_profile(cfg, recompute: bool = False) -> tuple[float, float]:
    """(bytes per position per block, bytes per position outside the blocks), from saved_bytes at
    1/2 blocks and T = 16/32 (differences cancel the per-sequence and weight-cast parts)."""
    s = {(L, T): saved_bytes(cfg, L, T, recompute) for L in (1, 2) for T in (16, 32)}
    per_block = ((s[2, 32] - s[1, 32]) - (s[2, 16] - s[1, 16])) / 16
    rest = ((s[1, 32] - s[1, 16]) / 16) - per_block
    return per_block, rest


def counts(m) -> dict[str, int]:
    block = 4 * m.hidden ** 2 + 3 * m.hidden * m.ffn + 2 * m.hidden
    root = 2 * m.pixels_per_position * m.hidden + m.hidden
    norms = m.layers * 2 * m.hidden + m.hidden
    return {"N": m.layers * block + root, "block": block, "root": root, "matmul": m.layers * block + root - norms}


def gpt2_flops(m) -> float:
    h, L = m.hidden, m.layers
    inner = 6 * h
    matmul = L * (4 * h * h + 2 * h * inner) + GPT2_VOCAB * h
    tokens = BATCH * GPT2_TOKENS
    return 6 * matmul * tokens + 12 * L * h * GPT2_TOKENS * tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory for the 'grad_accum to fit' column")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for name in PRESETS:
        cfg = PixarConfig.from_yaml(preset_path(name))
        m, T = cfg.model, cfg.render.max_positions
        c = counts(m)
        per_block, rest = activation_profile(m)
        kept_ac, _ = activation_profile(m, recompute=True)
        rows.append((name, m, T, c, per_block, rest, kept_ac))

    print("## Parameters and compute per optimizer step (batch 384 x 360 positions)\n")
    print("| preset | hidden x layers (heads) | SwiGLU | parameters | FLOPs/step (6N x pos + attention) | "
          "GPT-2 partner FLOPs/step | saved for backward per position: per block, rest, per block with AC |")
    print("|---|---|---|---|---|---|---|")
    for name, m, T, c, per_block, rest, kept_ac in rows:
        positions = BATCH * T
        flops = 6 * c["matmul"] * positions + 12 * m.layers * m.hidden * T * positions
        print(f"| {name} | {m.hidden} x {m.layers} ({m.heads}) | {m.ffn} | {c['N']:,} | {flops / 1e12:,.1f} TFLOP | "
              f"{gpt2_flops(m) / 1e12:,.1f} TFLOP | {per_block / 1024:.1f} KiB, {rest / 1024:.1f} KiB, "
              f"{kept_ac / 1024:.1f} KiB |")

    print("\n## Memory per GPU (GiB) at the paper's batch: micro-batch 384 / G sequences, grad_accum 1\n")
    print("States = parameters + gradients + AdamW (+ DDP buckets / FSDP working set). Act = activations; "
          f"AC = with activation checkpointing. 'accum' = the smallest train.grad_accum that fits in "
          f"{args.gpu_gib:g} GiB with AC off / on (- = does not fit at any accumulation).\n")
    print("| preset | G | DDP states | FSDP states | Act | Act AC | DDP total (AC) | FSDP total (AC) | "
          "DDP accum | FSDP accum |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m, T, c, per_block, rest, kept_ac in rows:
        N = c["N"]
        for G in args.gpus:
            micro = BATCH // G
            ddp = (16 * N + 4 * N) / GIB
            fsdp = (16 * N / G + 3 * 4 * c["block"] + 4 * c["root"]) / GIB
            act = micro * T * (m.layers * per_block + rest) / GIB
            act_ac = micro * T * (m.layers * kept_ac + per_block + rest) / GIB

            def accum(states: float, a: float) -> str:
                for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96):
                    if micro % k == 0 and states + a / k <= args.gpu_gib:
                        return str(k)
                return "-"

            print(f"| {name} | {G} | {ddp:.1f} | {fsdp:.1f} | {act:.1f} | {act_ac:.1f} | {ddp + act:.1f} "
                  f"({ddp + act_ac:.1f}) | {fsdp + act:.1f} ({fsdp + act_ac:.1f}) | {accum(ddp, act)} / "
                  f"{accum(ddp, act_ac)} | {accum(fsdp, act)} / {accum(fsdp, act_ac)} |")


if __name__ == "__main__":
    main()
