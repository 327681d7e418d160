"""A small training loop that stops cleanly on SIGTERM/SIGUSR1 and resumes (tests/test_preempt.py).

    python tests/preempt_run.py --out DIR --steps N --save-every K [--delay S] [--resume auto]

Tiny pixar.model.transformer.Pixar (seeded init), AdamW, seeded random binary strips per step (the batch depends
only on the step, so a resumed run sees the same data). Per-step losses go to DIR/losses.jsonl. On a
stop signal: finish the step, save a checkpoint (pixar.checkpoint.store.save_step_checkpoint), print the
resume line, exit 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pixar.checkpoint.store import load_state, load_weights, save_step_checkpoint
from pixar.config import PixarConfig
from pixar.config_io import from_dict
from pixar.model.transformer import Pixar
from pixar.train.preempt import Preemption, resume_checkpoint
from pixar.train.runlock import RunLock


def cfg() -> PixarConfig:
    return from_dict(PixarConfig, {"name": "preempt-test", "train": {"optim": {"lr": 3e-3}},
                                   "model": {"hidden": 32, "layers": 1, "heads": 2, "ffn": 64, "max_positions": 8},
                                   "render": {"max_positions": 8}})


def batch(step: int, c: PixarConfig) -> torch.Tensor:
    g = torch.Generator().manual_seed(5000 + step)
    return (torch.rand(4, c.render.patch_size, c.render.width, generator=g) > 0.3).float()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--save-every", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--resume", default="false")
    args = ap.parse_args()
    torch.set_num_threads(1)
    c = cfg()
    model = Pixar(c.model, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=c.train.optim.lr)
    with RunLock(args.out), Preemption() as pre:
        step, ckpt = 0, resume_checkpoint(args.out, args.resume)
        if ckpt is not None:
            load_weights(model, ckpt)
            state = load_state(ckpt)
            opt.load_state_dict(state["optimizer"])
            step = int(state["step"])
            print(f"resumed from {ckpt} at step {step}", flush=True)
        log = args.out / "losses.jsonl"
        kept = [x for x in (log.read_text().splitlines() if log.exists() else []) if json.loads(x)["step"] <= step]
        log.write_text("".join(f"{x}\n" for x in kept))
        while step < args.steps:
            x = batch(step, c)
            _, loss = model(x, None, x)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            with open(log, "a") as f:
                f.write(json.dumps({"step": step, "loss": float(loss.detach())}) + "\n")
            stop = pre.should_stop()
            if stop or step % args.save_every == 0 or step == args.steps:
                path = save_step_checkpoint(args.out, step, model, c, {"step": step, "optimizer": opt.state_dict()},
                                            keep_last=2)
            if stop:
                print(pre.resume_message(step, path), flush=True)
                return 0
            time.sleep(args.delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
