"""`--finetune`: train a model on a task's training examples before evaluating it, on pixar.train.loop's loop.

PIXAR: (paper prompt, answer) pairs rendered in the evaluation layout (`compose(prompts, continuations)` of the
PIXAR runner / harness.models.lm_eval_adapter.PixarLM): the prompt left-fitted word by word and spaced with space_text(3), the answer
starting on the fresh position where generation starts, then an EOS block -- so training sees exactly the
alignment the paper protocol generates from; the stage-1 objective (pixar.model.transformer.masked_bce over text + EOS
positions). GPT-2: the same "<prompt> <answer>" strings, tokenised, left-truncated to n_positions, standard
causal-LM loss (harness.models.gpt2_pretrain.train_causal_lm). Both: pixar.train.loop's AdamW policy and schedule (warm-up over
10% of the steps, cosine), batches from seeded per-epoch shuffles, fp32.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from pixar.config import OptimConfig, TrainConfig
from pixar.train.loop import Schedule, StandardStep, adamw_from, run_loop

log = logging.getLogger(__name__)


@dataclass
class TaskFinetuneConfig:
    """The bAbI/LAMBADA `--finetune` schedule (GLUE's per-task schedules are harness.models.glue_classifiers.GlueFinetuneConfig)."""

    steps: int = 300
    batch_size: int = 16
    seed: int = 0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=30, weight_decay=0.0))

    @classmethod
    def of(cls, steps: int, lr: float, batch_size: int, seed: int) -> "TaskFinetuneConfig":
        """The `--finetune-*` options: warm-up over the first tenth of the steps, no weight decay."""
        return cls(steps=steps, batch_size=batch_size, seed=seed,
                   optim=OptimConfig(lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0))

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, seed=self.seed, optim=self.optim,
                           log_every=max(1, self.steps // 10), eval_every=0)


def finetune_pixar(lm, pairs: list[tuple[str, str]], fc: TaskFinetuneConfig, progress: bool = True) -> list[dict]:
    """Fine-tune `lm.model` in place on (prompt, answer) pairs (`lm` has .model, .device and .compose, e.g. the
    PIXAR runner); returns the log records."""
    from pixar.model.transformer import masked_bce

    from harness.models.gpt2_pretrain import epoch_batches

    if not pairs:
        raise ValueError("finetune: no training examples")
    tc = fc.train_config()
    model = lm.model
    opt = adamw_from(model.parameters(), tc.optim)
    batches = epoch_batches(len(pairs), tc.seed, tc.batch_size)

    def micro_batches(step: int):
        ids = next(batches)
        return [(lm.compose([pairs[i][0] for i in ids], [" " + pairs[i][1] for i in ids]), 1.0)]

    def loss_fn(batch) -> torch.Tensor:
        pos, mask = (t.to(lm.device) for t in batch)
        return masked_bce(model.head(model.hidden_states(pos)), pos, mask)

    records, t0 = [], time.time()

    def on_step(step: int, m: dict) -> None:
        if (step - 1) % tc.log_every == 0 or step == tc.steps:
            records.append({"step": step, "loss": m["loss"], "lr": m["lr"], "elapsed_s": round(time.time() - t0, 2)})
            log.info("finetune pixar step %d: loss %.4f lr %.2e", step, m["loss"], m["lr"])

    model.train()
    run_loop(StandardStep(list(model.parameters()), loss_fn, opt, micro_batches, tc.optim.grad_clip), 0, tc.steps,
             schedules=[(opt, Schedule.of(tc))], hooks=[on_step], desc="finetune pixar", progress=progress,
             postfix=lambda m: {"loss": f"{m['loss']:.4f}"})
    model.eval()
    return records


def finetune_gpt2(model, tokenizer, texts: list[str], fc: TaskFinetuneConfig, device="cpu") -> list[dict]:
    """Fine-tune a GPT2LMHeadModel in place on `texts` (left-truncated); returns log records."""
    from harness.models.gpt2_pretrain import train_causal_lm

    if not texts:
        raise ValueError("finetune: no training texts")
    return train_causal_lm(model, texts, tokenizer, fc.train_config(), torch.device(device), left_truncate=True)
