"""`--finetune`: train a model on a task's training examples before evaluating it, on pixar.train.loop's loop.

PIXAR: (paper prompt, answer) pairs rendered in the evaluation layout (`compose(prompts, continuations)` of the
PIXAR runner / harness.models.lm_eval_adapter.PixarLM): the prompt left-fitted word by word and spaced with space_text(3), the answer
starting on the fresh position where generation starts, then an EOS block -- so training sees exactly the
alignment the paper protocol generates from; the stage-1 objective (pixar.model.transformer.masked_bce over text + EOS
positions). GPT-2: the same "<prompt> <answer>" strings, tokenised, left-truncated to n_positions, standard
causal-LM loss. Both: pixar.train.loop's AdamW policy and schedule (warm-up over 10% of the steps, cosine),
batches from seeded per-epoch shuffles, fp32.

Trained to a plateau (`dev_fraction` > 0): the last stories (harness.models.plateau.story_split) are held out as a
dev split; every `eval_every` steps the dev split is scored: the paper protocol's first-word accuracy on the dev
prompts (`dev_metric` accuracy, the default: what the test reports) and the dev loss on the ANSWER only (PIXAR: the
answer's positions + EOS block; GPT-2: the answer's tokens + EOS; the prompt is context). Training stops after
`patience` evaluations without improvement (0 = run all `steps`), and the weights of the best evaluation are kept.
`steps` is then the cap (the matched budget) and the schedule's horizon. With `lrs`, one such run per lr from the
same starting weights, the best dev score wins (harness.models.plateau.sweep_lrs). The summary reports the lr
picked, the sweep with each run's dev curve, and the budget actually used (harness.models.compute units) up to the
best step, up to the stop, and over the whole sweep.
"""
from __future__ import annotations

import logging
import time
import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch

from pixar.config import OptimConfig, TrainConfig
from pixar.model.transformer import masked_bce
from pixar.train.loop import Schedule, StandardStep, adamw_from, run_loop

from harness.models.base import TextReads
from harness.models.compute import ParamCounts, budget, gpt2_params, pixar_params
from harness.models.gpt2_baselines import PAPER_NEW_TOKENS, greedy_continuations
from harness.models.gpt2_pretrain import epoch_batches, lm_batch
from harness.models.plateau import EarlyStopping, FitResult, story_split, sweep_lrs

log = logging.getLogger(__name__)


@dataclass
class TaskFinetuneConfig:
    """The bAbI/LAMBADA `--finetune` schedule (GLUE's per-task schedules are harness.models.glue_classifiers.GlueFinetuneConfig)."""

    steps: int = 300
    """Steps (no dev split) or the cap on steps (with one)."""
    batch_size: int = 16
    seed: int = 0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, warmup_steps=30, weight_decay=0.0))
    """optim.lr is the lr (without `lrs`); optim.warmup_steps is replaced by steps // 10 in train_config."""
    lrs: list[float] = field(default_factory=list)
    """An lr sweep picked on dev (needs dev_fraction > 0); empty = `optim.lr` alone."""
    dev_fraction: float = 0.0
    """Share of the training pairs (whole stories, the last ones) held out as dev; 0 = no dev split."""
    eval_every: int = 50
    patience: int = 0
    """Dev evaluations without improvement before stopping; 0 = never stop early (best weights still kept)."""
    min_steps: int = 0
    """No early stop before this many steps (the best weights are still tracked from the first evaluation): a model
    that needs a while before it writes any answer (PIXAR draws the words first) is not stopped on a flat start."""
    dev_limit: int = 200
    """At most this many dev pairs are scored (the first ones)."""
    dev_metric: str = "accuracy"
    """What early stopping and the lr sweep read: accuracy (the paper protocol's first-word accuracy on the dev
    prompts, `dev_positions` PIXAR positions / 5 GPT-2 tokens; higher is better) or loss (the answer's dev loss)."""
    dev_positions: int = 5

    @classmethod
    def of(cls, steps: int, lr: float, batch_size: int, seed: int, **plateau) -> "TaskFinetuneConfig":
        """The `--finetune-*` options: warm-up over the first tenth of the steps, no weight decay; `plateau`: the
        dev-split fields (lrs, dev_fraction, eval_every, patience, min_steps, dev_limit, dev_metric, dev_positions)."""
        return cls(steps=steps, batch_size=batch_size, seed=seed,
                   optim=OptimConfig(lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0), **plateau)

    def train_config(self, lr: float | None = None) -> TrainConfig:
        optim = dataclasses.replace(self.optim, lr=self.optim.lr if lr is None else lr,
                                    warmup_steps=max(1, self.steps // 10))
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, seed=self.seed, optim=optim,
                           log_every=max(1, self.steps // 10), eval_every=0)

    def sweep(self) -> list[float]:
        if self.dev_metric not in ("accuracy", "loss"):
            raise ValueError(f"finetune: dev_metric must be accuracy or loss, got {self.dev_metric!r}")
        if self.lrs and self.dev_fraction <= 0:
            raise ValueError("finetune: an lr sweep needs a dev split (dev_fraction > 0)")
        return [float(x) for x in self.lrs] or [float(self.optim.lr)]


LOSS_TIE_BREAK = 1e-4
"""accuracy scores: 1 - accuracy + LOSS_TIE_BREAK x loss. One dev example moves accuracy by >= 1/dev_limit (0.005),
far more than the loss term (< 1e-3 for losses < 10), so it is accuracy first and, at equal accuracy, the loss: a
model that reads no answer yet (accuracy 0 for the first evaluations, as PIXAR while it learns to draw the words)
is not stopped while its dev loss still falls."""


def dev_score(d: dict, metric: str) -> float:
    """The number early stopping and the sweep minimise (see LOSS_TIE_BREAK)."""
    return 1.0 - d["accuracy"] + LOSS_TIE_BREAK * d["loss"] if metric == "accuracy" else d["loss"]


# ---- the shared driver ----------------------------------------------------------------------------
def fit_to_plateau(model: torch.nn.Module, fc: TaskFinetuneConfig, n_train: int, loss_fn: Callable,
                   batch_of: Callable[[list[int]], object], dev_eval: Callable[[], dict] | None,
                   width_of: Callable[[object], int], params: ParamCounts, desc: str,
                   progress: bool = True) -> tuple[list[dict], dict]:
    """Train `model` in place (see the module docstring) -> (log records, summary). `dev_eval()` -> {"loss": the
    answer's dev loss, "accuracy": dev accuracy (when fc.dev_metric is accuracy)}; the score early stopping and
    the sweep minimise is `dev_score`: the loss, or 1 - accuracy with the loss as tie-break."""
    def fit(lr: float) -> FitResult:
        tc = fc.train_config(lr)
        opt = adamw_from(model.parameters(), tc.optim)
        batches = epoch_batches(n_train, tc.seed, tc.batch_size)
        widths: list[int] = []

        def micro(step: int):
            batch = batch_of(next(batches))
            widths.append(width_of(batch))
            return [(batch, 1.0)]

        stopper = EarlyStopping(model, max(fc.patience, 1))
        records, t0 = [], time.time()

        def on_step(step: int, m: dict) -> None:
            rec = None
            if (step - 1) % tc.log_every == 0 or step == tc.steps:
                rec = {"lr_peak": lr, "step": step, "loss": m["loss"], "lr": m["lr"]}
            if dev_eval is not None and (step % fc.eval_every == 0 or step == tc.steps):
                model.eval()
                d = dev_eval()
                model.train()
                stopper.update(step, dev_score(d, fc.dev_metric))
                stopper.history[-1] |= {f"dev_{k}": v for k, v in d.items()}
                rec = (rec or {"lr_peak": lr, "step": step, "loss": m["loss"], "lr": m["lr"]}) | {
                    f"dev_{k}": v for k, v in d.items()}
            if rec is not None:
                records.append(rec | {"elapsed_s": round(time.time() - t0, 2)})
                log.info("%s lr %.1e step %d: loss %.4f%s", desc, lr, step, m["loss"],
                         "".join(f" {k} {v:.4f}" for k, v in rec.items() if k.startswith("dev_")))

        model.train()
        ran = run_loop(StandardStep(list(model.parameters()), loss_fn, opt, micro, tc.optim.grad_clip), 0, tc.steps,
                       schedules=[(opt, Schedule.of(tc))], hooks=[on_step], desc=f"{desc} lr {lr:g}",
                       progress=progress, postfix=lambda m: {"loss": f"{m['loss']:.4f}"},
                       should_stop=(lambda: fc.patience > 0 and stopper.stop and stopper.history[-1]["step"] >= fc.min_steps)
                       if dev_eval is not None else None)
        if dev_eval is not None:
            stopper.restore()
        model.eval()
        best = stopper.best_step if dev_eval is not None else ran
        return FitResult(lr, stopper.best_score, best, ran, ran < tc.steps, stopper.history, records,
                         {"used_to_best": budget(params, best, tc.batch_size, sum(widths[:best]) * tc.batch_size).to_dict(),
                          "used_to_stop": budget(params, ran, tc.batch_size, sum(widths) * tc.batch_size).to_dict()})

    best, runs = sweep_lrs(model, fc.sweep(), fit)
    total = {k: sum(r.extra["used_to_stop"][k] for r in runs) for k in runs[0].extra["used_to_stop"]}
    rule = {"accuracy": "highest dev first-word accuracy (the paper protocol on the dev prompts)",
            "loss": "lowest dev loss on the answer"}[fc.dev_metric]
    summary = {"lr": best.lr, "lrs": fc.sweep(), "selection": rule if dev_eval else "none", "min_steps": fc.min_steps,
               "score": f"1 - dev accuracy + {LOSS_TIE_BREAK:g} x dev loss" if fc.dev_metric == "accuracy" else "dev loss",
               "dev_fraction": fc.dev_fraction, "patience": fc.patience, "eval_every": fc.eval_every,
               "cap_steps": fc.steps, "chosen": best.summary(), "sweep": [r.summary() for r in runs],
               "used_sweep_total": total, "params": vars(params)}
    return [rec for r in runs for rec in r.records], summary


def _split(pairs: list[tuple[str, str]], fc: TaskFinetuneConfig) -> tuple[list, list]:
    if not pairs:
        raise ValueError("finetune: no training examples")
    if fc.dev_fraction <= 0:
        return list(pairs), []
    train, dev = story_split(list(pairs), fc.dev_fraction)
    return train, dev[: fc.dev_limit]


# ---- PIXAR ------------------------------------------------------------------------------------------
def finetune_pixar(lm, pairs: list[tuple[str, str]], fc: TaskFinetuneConfig, progress: bool = True
                   ) -> tuple[list[dict], dict]:
    """Fine-tune `lm.model` in place on (prompt, answer) pairs (`lm` has .model, .device, .compose and
    .continuation_positions, e.g. the PIXAR runner) -> (log records, summary)."""
    train, dev = _split(pairs, fc)
    model = lm.model

    def compose(ps):
        return lm.compose([p for p, _ in ps], [" " + a for _, a in ps])

    def loss_fn(batch) -> torch.Tensor:
        pos, mask = (t.to(lm.device) for t in batch)
        return masked_bce(model.head(model.hidden_states(pos)), pos, mask)

    dev_batches = []
    for i in range(0, len(dev), fc.batch_size):
        chunk = dev[i: i + fc.batch_size]
        pos, mask = compose(chunk)
        answer = torch.zeros_like(mask)  # the answer's positions and the EOS block: the last len+1 of the mask
        for r, (_, a) in enumerate(chunk):
            end = int(mask[r].sum())
            answer[r, max(end - lm.continuation_positions(" " + a)[: lm.P - 2].shape[0] - 1, 1): end] = 1
        dev_batches.append((pos, answer))

    @torch.no_grad()
    def dev_eval() -> dict:
        tot = sum(float(loss_fn(b)) * b[0].shape[0] for b in dev_batches)
        out = {"loss": tot / sum(b[0].shape[0] for b in dev_batches)}
        if fc.dev_metric == "accuracy":
            reads = lm.first_words([p for p, _ in dev], fc.dev_positions)
            out["accuracy"] = sum(r.correct(a) for r, (_, a) in zip(reads, dev)) / len(dev)
        return out

    return fit_to_plateau(model, fc, len(train), loss_fn, lambda ids: compose([train[i] for i in ids]),
                          dev_eval if dev else None, lambda b: b[0].shape[1], pixar_params(model), "finetune pixar",
                          progress)


# ---- GPT-2 ------------------------------------------------------------------------------------------
def gpt2_answer_batch(tokenizer, pairs: list[tuple[str, str]], limit: int):
    """Right-padded ids, mask and labels of "<prompt> <answer>" + EOS (left-truncated to `limit` tokens + EOS)
    whose labels keep only the answer's tokens and EOS (-100 elsewhere)."""
    seqs, n_answer = [], []
    for p, a in pairs:
        full = tokenizer(f"{p} {a}")["input_ids"]
        n_answer.append(max(1, len(full) - len(tokenizer(p)["input_ids"])) + 1)
        seqs.append(full[-limit:] + [tokenizer.eos_token_id])
    ids, mask, labels = lm_batch(seqs, tokenizer.eos_token_id)
    for r, (s, k) in enumerate(zip(seqs, n_answer)):
        labels[r, : len(s) - k] = -100
    return ids, mask, labels


def finetune_gpt2(model, tokenizer, pairs: list[tuple[str, str]], fc: TaskFinetuneConfig, device="cpu",
                  progress: bool = True) -> tuple[list[dict], dict]:
    """Fine-tune a GPT2LMHeadModel in place on "<prompt> <answer>" texts (left-truncated) -> (records, summary)."""
    train, dev = _split(pairs, fc)
    dev_ = torch.device(device)
    limit = model.config.n_positions - 1
    enc = [x[-limit:] + [tokenizer.eos_token_id] for x in tokenizer([f"{p} {a}" for p, a in train])["input_ids"]]
    dev_batches = [gpt2_answer_batch(tokenizer, dev[i: i + fc.batch_size], limit) for i in range(0, len(dev), fc.batch_size)]

    def loss_fn(batch) -> torch.Tensor:
        x, m, y = (t.to(dev_) for t in batch)
        return model(input_ids=x, attention_mask=m, labels=y).loss

    @torch.no_grad()
    def dev_eval() -> dict:  # loss: mean over answer tokens
        tot = n = 0.0
        for x, m, y in dev_batches:
            k = int((y[:, 1:] != -100).sum())
            tot, n = tot + float(loss_fn((x, m, y))) * k, n + k
        out = {"loss": tot / max(n, 1)}
        if fc.dev_metric == "accuracy":  # as GPT2Runner.first_words: greedy PAPER_NEW_TOKENS, first word, ci
            texts = greedy_continuations(model, tokenizer, [p for p, _ in dev], PAPER_NEW_TOKENS, fc.batch_size * 2,
                                         progress=False)
            out["accuracy"] = sum(TextReads(t).correct(a) for t, (_, a) in zip(texts, dev)) / len(dev)
        return out

    with torch.random.fork_rng(devices=[]):  # dropout (if configured) draws from a scoped, seeded generator
        torch.manual_seed(fc.seed)
        return fit_to_plateau(model, fc, len(enc), loss_fn, lambda ids: lm_batch([enc[i] for i in ids],
                                                                                 tokenizer.eos_token_id),
                              dev_eval if dev else None, lambda b: b[0].shape[1], gpt2_params(model),
                              "finetune gpt2", progress)
