"""Training-step speed: our Pixar vs an HF `LlamaModel` build of the same config, the fraction of
this machine's measured fp32 matmul peak, and torch.compile vs eager (train.compile).

    python benchmarks/train_step.py [--config pixar-tiny] [--set model.hidden=256 ...] [--batch 16]
                                    [--threads 2] [--steps 10] [--no-compile]

Both models take the same random binary strips [B, 8, T*16] and the same masked per-pixel BCE:
  * ours: pixar.model.transformer.Pixar (Linear patch in/out, our attention/RoPE/SwiGLU);
  * baseline: Conv2d(1, C, (8, 16), stride (8, 16)) -> LlamaModel(inputs_embeds, sdpa attention)
    -> ConvTranspose2d(C, 1, (8, 16)), the official PIXAR layout (the paper's model).
A step = forward + backward + AdamW (fp32). The two models and a reference fp32 1024x1024 matmul are
timed in alternation, round after round (after 2 warm-up rounds), so that load from other processes
on a shared machine hits all three alike; best and median over the rounds are printed. Model FLOPs =
6 * params * positions + 12 * layers * hidden * T * positions (attention scores, fwd+bwd, causal mask
not discounted); "of the matmul rate" = model GFLOP/s / the matmul's GFLOP/s (best/best, median/median).
Compile: a third contender, our model with every block torch.compile'd in place exactly as
`train.compile=true` does (pixar.train.parallel.prepare_model; inductor on CPU), same weights; its compilation
happens in the warm-up steps and is reported separately; the eager/compiled step-time ratio is printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from pixar.config import ModelConfig, PixarConfig, preset_path
from pixar.model.transformer import Pixar, masked_bce, patchify
from pixar.train.parallel import prepare_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the official build: a test oracle
from official_reference import OfficialPixar, llama_config_for, pixar_to_official  # noqa: E402


class HFPixar(nn.Module):
    """The official layout (tests/official_reference.OfficialPixar: Conv2d in, transformers LlamaModel, ConvTranspose2d
    out) with the same masked BCE as ours."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.net = OfficialPixar(llama_config_for(cfg), cfg.patch_size, cfg.patch_len)

    def forward(self, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        img = self.net(pixels[:, None].float())[:, 0]  # [B, H, T*pw] logits
        pw = self.cfg.patch_size * self.cfg.patch_len
        return masked_bce(patchify(img, pw), patchify(pixels.float(), pw), mask)


def copy_weights(ours: Pixar, theirs: HFPixar) -> None:
    """Load our weights into the HF build (so both compute the same loss: a check that they match)."""
    theirs.net.load_official_state_dict(pixar_to_official(ours.state_dict(), ours.cfg))


def make_matmul(size: int):
    """A closure timing one fp32 size x size matmul (the machine's reference compute rate)."""
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)

    def step() -> float:
        t0 = time.perf_counter()
        a @ b
        return time.perf_counter() - t0

    return step


def make_step(model: nn.Module, loss_fn, pixels, mask):
    """A closure running one fwd + bwd + AdamW step; returns its wall time in seconds."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

    def step() -> float:
        t0 = time.perf_counter()
        loss = loss_fn(model, pixels, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def interleaved_times(steps: dict, rounds: int) -> dict[str, list[float]]:
    """Alternate the contenders step by step (after 2 warm-up steps each), so load from other
    processes on a shared machine hits both alike; returns each one's step times."""
    times = {name: [] for name in steps}
    for i in range(rounds + 2):
        for name, step in steps.items():
            t = step()
            if i >= 2:
                times[name].append(t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="pixar-tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    ap.add_argument("--batch", type=int, default=0, help="sequences per step (default: the config's batch_size)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile contender")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = PixarConfig.from_yaml(preset_path(args.config), args.overrides)
    m, B, T = cfg.model, args.batch or cfg.train.batch_size, cfg.model.max_positions
    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(B, m.patch_size, T * m.patch_size * m.patch_len, generator=gen) > 0.2).to(torch.uint8)
    mask = torch.ones(B, T)

    ours, theirs = Pixar(m, generator=torch.Generator().manual_seed(0)), HFPixar(m)
    n_ours = ours.num_params()
    n_theirs = sum(p.numel() for n, p in theirs.named_parameters() if "embed_tokens" not in n)
    copy_weights(ours, theirs)
    with torch.no_grad():
        same = abs(float(ours(pixels, mask, pixels)[1]) - float(theirs(pixels, mask)))
    mm = 1024
    contenders = {
        "ours (pixar.model.transformer)": make_step(ours, lambda mod, px, mk: mod(px, mk, px)[1], pixels, mask),
        "HF LlamaModel + conv": make_step(theirs, lambda mod, px, mk: mod(px, mk), pixels, mask),
        "matmul": make_matmul(mm)}
    compile_s = None
    if not args.no_compile:
        compiled = Pixar(m)
        compiled.load_state_dict(ours.state_dict())
        cfg.train.compile = True
        prepare_model(compiled, cfg.train, torch.device("cpu"))
        t0 = time.perf_counter()
        with torch.no_grad():
            same_compiled = abs(float(compiled(pixels, mask, pixels)[1]) - float(ours(pixels, mask, pixels)[1]))
        compile_s = time.perf_counter() - t0
        contenders["ours, torch.compile"] = make_step(compiled, lambda mod, px, mk: mod(px, mk, px)[1], pixels, mask)
    times = interleaved_times(contenders, args.steps)
    mm_times = times.pop("matmul")
    compiled_times = times.pop("ours, torch.compile", None)
    peak_best, peak_med = 2 * mm ** 3 / min(mm_times) / 1e9, 2 * mm ** 3 / statistics.median(mm_times) / 1e9
    flops = 6 * n_ours * B * T + 12 * m.layers * m.hidden * T * B * T
    print(f"config {cfg.name} {args.overrides or ''}: hidden {m.hidden}, layers {m.layers}, heads {m.heads}, "
          f"ffn {m.ffn}; batch {B} x {T} positions; threads {torch.get_num_threads()}")
    print(f"params: ours {n_ours:,}  HF build {n_theirs:,} (embed_tokens excluded); "
          f"|loss difference| with copied weights {same:.1e}")
    print(f"fp32 {mm}^2 matmul: {peak_best:.1f} GFLOP/s best, {peak_med:.1f} median; model FLOPs/step "
          f"{flops / 1e9:.2f} G; {args.steps} interleaved rounds (values: best / median)")
    for name, ts in times.items():
        best, med = min(ts), statistics.median(ts)
        print(f"{name:22s} step {best * 1e3:7.1f} / {med * 1e3:7.1f} ms  {B * T / best:7.0f} / {B * T / med:7.0f} "
              f"positions/s  {flops / best / 1e9:6.1f} / {flops / med / 1e9:6.1f} GFLOP/s = "
              f"{flops / best / 1e9 / peak_best:4.0%} / {flops / med / 1e9 / peak_med:4.0%} of the matmul rate")
    (_, ta), (_, tb) = times.items()
    ratios = [y / x for x, y in zip(ta, tb)]
    print(f"step time HF/ours: best {min(tb) / min(ta):.2f}x, median of per-round ratios "
          f"{statistics.median(ratios):.2f}x (>1: ours faster)")
    if compiled_times is not None:
        tc = compiled_times
        print(f"{'ours, torch.compile':22s} step {min(tc) * 1e3:7.1f} / {statistics.median(tc) * 1e3:7.1f} ms  "
              f"(first forward incl. compilation {compile_s:.1f} s; |loss difference| vs eager {same_compiled:.1e})")
        c_ratios = [x / y for x, y in zip(ta, tc)]
        print(f"step time eager/compiled: best {min(ta) / min(tc):.2f}x, median of per-round ratios "
              f"{statistics.median(c_ratios):.2f}x (>1: compile faster)")


if __name__ == "__main__":
    main()
