"""`--finetune`: train a model on a task's training examples before evaluating it.

PIXAR: (paper prompt, answer) pairs rendered in the evaluation layout (harness.lm.PixarLM.compose): the
prompt left-fitted word by word and spaced with space_text(3), the answer starting on the fresh position
where generation starts, then an EOS block -- so training sees exactly the alignment the paper protocol
generates from; the stage-1 objective (pixar.model.masked_bce over text + EOS positions). GPT-2: the
same "<prompt> <answer>" strings, tokenised, left-truncated to n_positions, standard causal-LM loss
(harness.baselines.train_causal_lm). Both use AdamW
with linear warm-up (10% of the steps) and cosine decay (pixar.train.lr_at), batches drawn from seeded
per-epoch shuffles (pixar.data.epoch_order), fp32.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from pixar.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    weight_decay: float = 0.0

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           warmup_steps=max(1, self.steps // 10), weight_decay=self.weight_decay,
                           log_every=max(1, self.steps // 10), eval_every=0)


def finetune_pixar(lm, pairs: list[tuple[str, str]], fc: FinetuneConfig, progress: bool = True) -> list[dict]:
    """Fine-tune `lm.model` (harness.lm.PixarLM) in place on (prompt, answer) pairs; returns log records."""
    from tqdm import tqdm

    from pixar.data import epoch_order
    from pixar.model import masked_bce
    from pixar.train import lr_at

    if not pairs:
        raise ValueError("finetune: no training examples")
    tc = fc.train_config()
    model = lm.model
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)
    model.train()
    n, records, t0 = len(pairs), [], time.time()
    for step in tqdm(range(tc.steps), desc="finetune pixar", disable=not progress):
        ids = [int(epoch_order(n, tc.seed, q // n)[q % n]) for q in range(step * tc.batch_size, (step + 1) * tc.batch_size)]
        pos, mask = lm.compose([pairs[i][0] for i in ids], [" " + pairs[i][1] for i in ids])
        pos, mask = pos.to(lm.device), mask.to(lm.device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        loss = masked_bce(model.head(model.hidden_states(pos)), pos, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        if step % tc.log_every == 0 or step + 1 == tc.steps:
            records.append({"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, tc),
                            "elapsed_s": round(time.time() - t0, 2)})
            log.info("finetune pixar %s", records[-1])
    model.eval()
    return records


def finetune_gpt2(model, tokenizer, texts: list[str], fc: FinetuneConfig, device="cpu") -> list[dict]:
    """Fine-tune a GPT2LMHeadModel in place on `texts` (left-truncated); returns log records."""
    from .baselines import train_causal_lm

    if not texts:
        raise ValueError("finetune: no training texts")
    return train_causal_lm(model, texts, tokenizer, fc.train_config(), torch.device(device), left_truncate=True)
