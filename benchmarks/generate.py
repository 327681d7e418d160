"""Generation speed: KV cache vs full recompute, 300-position prompts, 4 and 64 new positions.

    python benchmarks/generate.py [--preset pixar-tiny] [--batch 4] [--prompt-positions 300]

Builds a randomly initialised model of the preset's size (speed does not depend on the weights),
times greedy decoding both ways in the same run, checks that the outputs are identical and prints
the speed-up ratio.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pixar.config import PixarConfig, preset_path
from pixar.model.generate import generate
from pixar.model.transformer import Pixar


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="pixar-tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt-positions", type=int, default=300)
    ap.add_argument("--new", type=int, nargs="+", default=[4, 64])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PixarConfig.from_yaml(preset_path(args.preset)).model
    model = Pixar(cfg, generator=torch.Generator().manual_seed(0)).eval()
    P, pw = args.prompt_positions, cfg.patch_size * cfg.patch_len
    rng = np.random.default_rng(0)
    pixels = (rng.random((args.batch, cfg.patch_size, (P + 1) * pw)) > 0.2).astype(np.uint8)
    eos = np.full(args.batch, P)
    print(f"model {args.preset}: {model.num_params():,} params; batch {args.batch}; prompt {P} positions; threads {torch.get_num_threads()}")
    for k in args.new:
        timings = {}
        outs = {}
        for use_cache in (False, True):
            generate(model, pixels, eos, 1, use_cache=use_cache, stop_at_eos=False)  # warm-up
            t0 = time.perf_counter()
            outs[use_cache] = generate(model, pixels, eos, k, use_cache=use_cache, stop_at_eos=False)
            timings[use_cache] = time.perf_counter() - t0
        same = bool((outs[True].pixels == outs[False].pixels).all())
        print(f"{k:3d} new positions: recompute {timings[False]:7.3f} s  kv-cache {timings[True]:7.3f} s  "
              f"speed-up {timings[False] / timings[True]:6.2f}x  identical: {same}")


if __name__ == "__main__":
    main()
