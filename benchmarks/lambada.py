"""LAMBADA evaluation throughput: PIXAR vs the same-size GPT-2, both protocols, same examples, same run.

    python benchmarks/lambada.py [--n 200] [--checkpoint DIR] [--baseline DIR] [--batch-size 32]

Without --checkpoint / --baseline, randomly initialised pixar-tiny and gpt2-tiny models are built
(throughput does not depend on the weights). Needs $PIXAR_DATA (LAMBADA + GPT-2 BPE files).
Prints examples/s for the paper protocol (generate 4 positions + glyph read-back for PIXAR, greedy 5 tokens
for GPT-2) and for lm-eval's loglikelihood protocol, with PIXAR/GPT-2 ratios.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def build_random_models(tmp: Path) -> tuple[str, str]:
    from harness.models.gpt2_baselines import gpt2_tokenizer
    from harness.models.gpt2_pretrain import GPT2BaselineConfig, build_gpt2, save_gpt2
    from pixar.checkpoint.store import save_checkpoint
    from pixar.config import PixarConfig, preset_path
    from pixar.model.transformer import Pixar

    cfg = PixarConfig.from_yaml(preset_path("pixar-tiny"))
    px = save_checkpoint(tmp / "pixar", Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), cfg)
    gcfg = GPT2BaselineConfig.from_yaml(preset_path("gpt2-tiny"))
    tok = gpt2_tokenizer()
    gpt = save_gpt2(build_gpt2(gcfg, len(tok), tok.eos_token_id, 0), tok, tmp / "gpt2", {"name": "gpt2-tiny-random"})
    return str(px), str(gpt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--checkpoint")
    ap.add_argument("--baseline")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    from harness.eval.bench import lm_eval_eval, load_models, paper_eval
    from harness.tasks import lambada

    texts = lambada.load_lambada(None)[: args.n]
    examples = lambada.paper_examples(texts)
    with tempfile.TemporaryDirectory() as d:
        ckpt, base = (args.checkpoint, args.baseline)
        if not (ckpt and base):
            ckpt, base = build_random_models(Path(d))
        models = load_models(ckpt, [base], "cpu", args.batch_size, "glyph", None, 0)
        task = lambada.lm_eval_task(lambada.lambada_path(None))
        speed = {}
        for bm in models:
            t0 = time.perf_counter()
            paper_eval(bm, examples, 4, None, args.batch_size)
            t1 = time.perf_counter()
            lm_eval_eval(bm, [task], args.n, args.batch_size, 0)
            t2 = time.perf_counter()
            speed[bm.kind] = (args.n / (t1 - t0), args.n / (t2 - t1))
            print(f"{bm.name:40s} paper protocol {speed[bm.kind][0]:8.1f} ex/s   lm-eval loglikelihood {speed[bm.kind][1]:8.1f} ex/s")
    (pp, pl), (gp, gl) = speed["pixar"], speed["gpt2"]
    print(f"PIXAR/GPT-2 throughput ratio: paper protocol {pp / gp:.2f}x, lm-eval {pl / gl:.2f}x "
          f"({args.n} examples; full 5,153-example test set at these rates: PIXAR {5153 / pp / 60:.1f} + {5153 / pl / 60:.1f} min)")


if __name__ == "__main__":
    main()
