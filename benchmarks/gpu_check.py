"""One prepared GPU check (fits in ~8 minutes on one GPU): every CUDA path of the harness, measured.

    bash benchmarks/gpu_check.sh OUT_DIR            (= python benchmarks/gpu_check.py --out OUT_DIR)
    python benchmarks/gpu_check.py --out OUT --smoke    tiny config on CPU (CI: checks it runs, sane JSON)

Writes OUT/gpu_check.json and OUT/gpu_check.txt. Sections (all on seeded random binary strips, no data):
  stage1      bf16 autocast stage-1 step (fwd + bwd + fused AdamW) of pixar-113m at the largest batch that
              fits (batch doubled from 8 up to 384 until CUDA OOM): positions/s, MFU = model FLOPs/s / the
              chip's dense bf16 peak (table below; FLOPs = 6 N positions + 12 L h T positions), peak memory
  compile     the same step with every block torch.compile'd (train.compile=true) vs eager, same batch
  precision   fp32 (TF32 off) vs bf16 autocast, 20 steps from the same init on the same batches: losses
  hf_llama    our model vs the official layout on transformers' LlamaModel (benchmarks/train_step.HFPixar),
              same weights: fp32 loss difference, bf16 step time of both
  generate    greedy KV-cache generation (pixar.model.generate) vs recomputing the whole prefix per position
  stage2      20 adversarial steps (pixar.train.adversarial.AdversarialTrainer + pixar.model.discriminator) in bf16
Protocol: times are medians over the timed steps after warm-up steps (torch.cuda.synchronize around each).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import HFPixar, copy_weights  # noqa: E402  (the official/HF build, benchmarks/train_step.py)

from pixar.config import PixarConfig, preset_path  # noqa: E402
from pixar.config_io import atomic_write_text  # noqa: E402
from pixar.model.transformer import Pixar  # noqa: E402
from pixar.train.parallel import configure_cuda, make_adamw, prepare_model  # noqa: E402
from pixar.provenance import versions  # noqa: E402

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "GH200": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
                    "L40": 181.0, "A6000": 155.0, "A10G": 70.0, "A10": 125.0, "L4": 121.0, "4090": 165.0,
                    "3090": 71.0}
"""Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, SXM parts (H100 PCIe: 756)."""
SMOKE_SETS = ["model.hidden=32", "model.layers=2", "model.heads=2", "model.ffn=64", "model.max_positions=16",
              "render.max_positions=16", "adv.num_samples=4"]


def chip_peak(name: str) -> float | None:
    """bf16 dense peak in FLOP/s for a device name, None when unknown (MFU then not reported)."""
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key] * 1e12 * (756 / 989 if key == "H100" and "PCIe" in name else 1)
    return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def strips(cfg: PixarConfig, batch: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    H, W = cfg.render.patch_size, cfg.render.width
    return (torch.rand(batch, H, W, generator=g) > 0.2).float().to(device)


def model_flops(cfg: PixarConfig, n_params: int, batch: int) -> float:
    m, T = cfg.model, cfg.model.max_positions
    return 6 * n_params * batch * T + 12 * m.layers * m.hidden * T * batch * T


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def timed_steps(step, device, warmup: int, steps: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        step(i)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def train_step_fn(model, cfg, device, batch: int, bf16: bool):
    opt = make_adamw(model.parameters(), cfg.train.optim, device)
    pixels = strips(cfg, batch, 0, device)
    losses = []

    def step(i: int) -> None:
        losses.append(train_step(model, opt, pixels, device, bf16))

    return step, losses


def fresh_model(cfg, device, seed: int = 0) -> Pixar:
    return Pixar(cfg.model, generator=torch.Generator().manual_seed(seed)).to(device).train()


def check_stage1(cfg, device, bf16, max_batch, warmup, steps) -> dict:
    """Largest batch (doubling) whose step runs, then its timing, MFU and peak memory."""
    fits, batch, n_params = None, 8, fresh_model(cfg, "meta").num_params()
    while batch <= max_batch:
        try:
            model = fresh_model(cfg, device)
            step, _ = train_step_fn(model, cfg, device, batch, bf16)
            step(0)
            sync(device)
            fits = batch
        except torch.OutOfMemoryError:
            break
        finally:
            model = step = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
        batch *= 2
    if fits is None:
        raise RuntimeError("not even a batch of 8 fits")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = fresh_model(cfg, device)
    step, losses = train_step_fn(model, cfg, device, fits, bf16)
    times = timed_steps(step, device, warmup, steps)
    med = statistics.median(times)
    flops = model_flops(cfg, n_params, fits)
    peak = chip_peak(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return {"batch": fits, "positions_per_step": fits * cfg.model.max_positions, "step_s_median": med,
            "step_s_best": min(times), "positions_per_s": fits * cfg.model.max_positions / med,
            "model_tflop_per_step": flops / 1e12, "achieved_tflops": flops / med / 1e12,
            "peak_bf16_tflops": peak / 1e12 if peak else None, "mfu": flops / med / peak if peak else None,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None,
            "final_loss": losses[-1], "params": n_params}


def check_compile(cfg, device, bf16, batch, warmup, steps) -> dict:
    out = {}
    for name, on in (("eager", False), ("compiled", True)):
        model = fresh_model(cfg, device)
        cfg.train.compile = on
        prepare_model(model, cfg.train, device)
        step, losses = train_step_fn(model, cfg, device, batch, bf16)
        t0 = time.perf_counter()
        step(0)
        sync(device)
        first = time.perf_counter() - t0
        times = timed_steps(lambda i: step(i + 1), device, warmup, steps)
        out[name] = {"first_step_s": first, "step_s_median": statistics.median(times), "losses": losses[:3]}
    out["speedup_eager_over_compiled"] = out["eager"]["step_s_median"] / out["compiled"]["step_s_median"]
    out["first_loss_abs_diff"] = abs(out["eager"]["losses"][0] - out["compiled"]["losses"][0])
    cfg.train.compile = False
    return {"batch": batch, **out}


def check_precision(cfg, device, batch: int, steps: int = 20) -> dict:
    runs = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    for name, bf16 in (("fp32", False), ("bf16", True)):
        torch.backends.cuda.matmul.allow_tf32 = bf16 and tf32  # the fp32 reference without TF32
        model = fresh_model(cfg, device)
        opt = make_adamw(model.parameters(), cfg.train.optim, device)
        losses = []
        for i in range(steps):
            pixels = strips(cfg, batch, 100 + i, device)
            losses.append(train_step(model, opt, pixels, device, bf16))
        runs[name] = losses
    torch.backends.cuda.matmul.allow_tf32 = tf32
    diffs = [abs(a - b) for a, b in zip(runs["fp32"], runs["bf16"])]
    return {"batch": batch, "steps": steps, "fp32": runs["fp32"], "bf16": runs["bf16"], "max_abs_diff": max(diffs),
            "max_rel_diff": max(d / abs(a) for d, a in zip(diffs, runs["fp32"])),
            "loss_drop_fp32": runs["fp32"][0] - runs["fp32"][-1], "loss_drop_bf16": runs["bf16"][0] - runs["bf16"][-1]}


def check_hf(cfg, device, bf16, batch, warmup, steps) -> dict:
    ours = fresh_model(cfg, device)
    theirs = HFPixar(cfg.model).to(device).train()
    copy_weights(ours, theirs)
    pixels = strips(cfg, batch, 7, device)
    mask = torch.ones(batch, cfg.model.max_positions, device=device)
    with torch.no_grad():
        diff = abs(float(ours(pixels, mask, pixels)[1]) - float(theirs(pixels, mask)))
    out = {"batch": batch, "fp32_loss_abs_diff": diff}
    contenders = (("ours", ours, lambda: ours(pixels, mask, pixels)[1]), ("hf_llama", theirs, lambda: theirs(pixels, mask)))
    for name, model, loss_fn in contenders:
        opt = make_adamw(model.parameters(), cfg.train.optim, device)

        def step(i, model=model, loss_fn=loss_fn, opt=opt):
            with autocast(device, bf16):
                loss = loss_fn()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        out[f"{name}_step_s_median"] = statistics.median(timed_steps(step, device, warmup, steps))
    out["hf_over_ours"] = out["hf_llama_step_s_median"] / out["ours_step_s_median"]
    return out


def check_generate(cfg, device, batch: int, new: int) -> dict:
    from pixar.model.generate import generate

    model = fresh_model(cfg, device).eval()
    T = cfg.model.max_positions
    prompt_len = max(1, T // 4)
    pixels = strips(cfg, batch, 11, device).cpu()
    eos = torch.full((batch,), prompt_len)
    out = {"batch": batch, "prompt_positions": prompt_len, "new_positions": new}
    for name, cache in (("kv_cache", True), ("recompute", False)):
        generate(model, pixels, eos, 2, use_cache=cache, stop_at_eos=False)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        gen = generate(model, pixels, eos, new, use_cache=cache, stop_at_eos=False)
        sync(device)
        dt = time.perf_counter() - t0
        out[f"{name}_positions_per_s"] = batch * new / dt
        out[f"{name}_s"] = dt
        out[f"{name}_pixels"] = gen.pixels
    same = bool((out.pop("kv_cache_pixels") == out.pop("recompute_pixels")).all())
    out["cache_speedup"] = out["recompute_s"] / out["kv_cache_s"]
    out["same_output"] = same
    return out


def train_step(model, opt, pixels, device, bf16: bool) -> float:
    """One stage-1 optimiser step (masked BCE, clip 1.0) -> its loss."""
    with autocast(device, bf16):
        _, loss = model(pixels, None, pixels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def check_stage2(cfg, device, bf16, steps: int) -> dict:
    from pixar.train.adversarial import AdversarialTrainer
    from pixar.model.discriminator import Discriminator
    from pixar.train.loop import Schedule

    gen = fresh_model(cfg, device)
    disc = Discriminator.from_generator(gen, head_seed=0)
    a = cfg.adv
    lr = lambda base: (lambda s: Schedule.of(a, lr=base, total_steps=a.cosine_steps)(s - 1))  # noqa: E731
    trainer = AdversarialTrainer(gen, disc, cfg, lr(a.optim.lr), lr(a.lr_d), seed=0, autocast=lambda: autocast(device, bf16))
    records, times = [], []
    for s in range(1, steps + 1):
        pixels = strips(cfg, a.batch_size, 200 + s, device)
        mask = torch.ones(a.batch_size, cfg.model.max_positions, device=device)
        sync(device)
        t0 = time.perf_counter()
        records.append(trainer.step(s, pixels, mask))
        sync(device)
        times.append(time.perf_counter() - t0)
    keys = ("d_loss", "g_bce", "g_adv", "lambda_auto", "d_acc_real", "d_acc_fake")
    return {"batch": a.batch_size, "steps": steps, "step_s_median": statistics.median(times[2:] or times),
            "first": {k: records[0][k] for k in keys}, "last": {k: records[-1][k] for k in keys},
            "all_finite": all(math.isfinite(r[k]) for r in records for k in keys)}


def summary(r: dict) -> str:
    """The text summary: one line per section."""
    ms = lambda seconds: f"{seconds * 1e3:.1f} ms"  # noqa: E731
    s1, c, p, h, g, s2 = (r.get(k) for k in ("stage1", "compile", "precision", "hf_llama", "generate", "stage2"))
    mfu = f"{s1['mfu']:.1%}" if s1["mfu"] is not None else "n/a (unknown chip peak)"
    mem = f"{s1['peak_memory_gib']:.1f} GiB" if s1["peak_memory_gib"] is not None else "n/a (CPU)"
    T = s1["positions_per_step"] // s1["batch"]
    lines = [f"PIXAR GPU check on {r['device_name']} ({r['config']}, {'smoke' if r['smoke'] else 'full'})",
             f"stage 1 ({r['dtype']}): batch {s1['batch']} (largest that fits) x {T} positions: "
             f"{ms(s1['step_s_median'])}/step median, {s1['positions_per_s']:,.0f} positions/s, "
             f"{s1['achieved_tflops']:.1f} TFLOP/s, MFU {mfu}, peak memory {mem}"]
    if c is not None:
        lines.append(f"compile: eager {ms(c['eager']['step_s_median'])} vs compiled {ms(c['compiled']['step_s_median'])} "
                     f"= {c['speedup_eager_over_compiled']:.2f}x (first compiled step "
                     f"{c['compiled']['first_step_s']:.0f} s), first-loss |diff| {c['first_loss_abs_diff']:.1e}")
    lines += [f"fp32 vs bf16 over {p['steps']} steps: max |loss diff| {p['max_abs_diff']:.2e} "
              f"({p['max_rel_diff']:.2%}); loss drop fp32 {p['loss_drop_fp32']:.3f}, bf16 {p['loss_drop_bf16']:.3f}",
              f"ours vs HF LlamaModel build, same weights: fp32 |loss diff| {h['fp32_loss_abs_diff']:.1e}; step "
              f"{ms(h['ours_step_s_median'])} vs {ms(h['hf_llama_step_s_median'])} (HF/ours {h['hf_over_ours']:.2f}x)",
              f"generation ({g['batch']} prompts, {g['new_positions']} new positions): KV cache "
              f"{g['kv_cache_positions_per_s']:,.0f} positions/s, recompute {g['recompute_positions_per_s']:,.0f} "
              f"({g['cache_speedup']:.1f}x), same output: {g['same_output']}",
              f"stage 2: {s2['steps']} steps at batch {s2['batch']}, {ms(s2['step_s_median'])}/step, all finite: "
              f"{s2['all_finite']}; d_loss {s2['first']['d_loss']:.3f} -> {s2['last']['d_loss']:.3f}",
              f"total {r['wall_s']:.0f} s; protocol: medians after warm-up, seeded random binary strips (no text data)"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", default="pixar-113m")
    ap.add_argument("--smoke", action="store_true", help="tiny config on CPU, few steps (CI)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("gpu_check needs a CUDA device (use --smoke for the CPU check)")
    cfg = PixarConfig.from_yaml(preset_path(args.config), SMOKE_SETS if args.smoke else [])
    cfg.adv.batch_size = 2 if args.smoke else 64
    configure_cuda(device)
    bf16 = device.type == "cuda"  # CPU bf16 matmuls are ~100x slower: the smoke run times fp32 (the precision
    warmup, steps = (1, 2) if args.smoke else (3, 10)  # section still compares fp32 with bf16 autocast)
    r = {"config": cfg.name, "smoke": args.smoke, "device": str(device), "dtype": "bf16 autocast" if bf16 else "fp32",
         "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
         "versions": versions()}
    r["stage1"] = check_stage1(cfg, device, bf16, 16 if args.smoke else 384, warmup, steps)
    batch = min(r["stage1"]["batch"], 2 if args.smoke else 64)
    if not args.no_compile:
        r["compile"] = check_compile(cfg, device, bf16, batch, warmup, steps)
    r["precision"] = check_precision(cfg, device, 2 if args.smoke else 32, 20)
    r["hf_llama"] = check_hf(cfg, device, bf16, batch, warmup, steps)
    r["generate"] = check_generate(cfg, device, 4 if args.smoke else 16, 8 if args.smoke else 128)
    r["stage2"] = check_stage2(cfg, device, bf16, 20)  # the issue's 20 steps, also in the smoke run
    r["wall_s"] = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    text = summary(r)
    atomic_write_text(args.out / "gpu_check.json", json.dumps(r, indent=2))
    atomic_write_text(args.out / "gpu_check.txt", text)
    print(text, end="")
    return r


if __name__ == "__main__":
    main()
