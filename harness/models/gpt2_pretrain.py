"""The same-budget GPT-2 baseline: `pixar train --model gpt2 --config gpt2-tiny`.

A transformers GPT2LMHeadModel trained on the same text chunks as PIXAR (pixar.data.sources.build_splits with the
config's `train` section: same sources, chunk sizes, validation split, seed, steps, batch, lr schedule), one
chunk per sequence + <|endoftext|>, right-padded, loss on real tokens only, through pixar.train.loop's loop with its
schedule and optimiser policy (AdamW, weight decay on every parameter, exactly as PIXAR). Saved with
save_pretrained (safetensors) + the tokenizer files + gpt2_config.json, atomically.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from pixar.config import ConfigError, TrainConfig, dataclass_from_yaml
from pixar.train.loop import Schedule, StandardStep, adamw, every, run_loop

from harness.models.gpt2_baselines import TOKENIZER_DIR, gpt2_tokenizer
from harness.models.gpt2_vocab import RestrictedTokenizer

log = logging.getLogger(__name__)


@dataclass
class GPT2ModelConfig:
    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_inner: int = 576
    n_positions: int = 128
    dropout: float = 0.0
    """resid/embd/attn dropout; 0 like PIXAR (which has none)."""


@dataclass
class GPT2BaselineConfig:
    name: str = "gpt2-tiny"
    matched_to: str = ""
    """The PIXAR preset this baseline is sized against."""
    match: str = ""
    """How it was matched (shown in comparison tables)."""
    tokenizer: str = TOKENIZER_DIR
    vocab: str = "full"
    """full: GPT-2's 50,257-way output layer; corpus: only the BPE tokens of the training text (+ one UNSEEN id;
    harness.models.gpt2_vocab), tokenization unchanged."""
    model: GPT2ModelConfig = field(default_factory=GPT2ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "GPT2BaselineConfig":
        return dataclass_from_yaml(cls, path, overrides)


def epoch_batches(n: int, seed: int, batch: int, start: int = 0) -> Iterator[list[int]]:
    """Endless batches of indices into n examples: consecutive slices of seeded per-epoch shuffles
    (pixar.data.sources.epoch_order), from absolute example count `start`."""
    from pixar.data.sources import epoch_order

    consumed, orders = start, {}
    while True:
        ids = []
        for q in range(consumed, consumed + batch):
            epoch = q // n
            if epoch not in orders:
                orders = {epoch: epoch_order(n, seed, epoch)}
            ids.append(int(orders[epoch][q % n]))
        yield ids
        consumed += batch


def lm_batch(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T], attention mask [B, T] and labels (-100 on padding) [B, T]."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def train_causal_lm(model, texts: list[str], tokenizer, tc: TrainConfig, device: torch.device,
                    log_path: Path | None = None, val_texts: list[str] | None = None, left_truncate: bool = False,
                    progress: bool = True) -> list[dict]:
    """pixar.train.loop's loop on one sequence per text (causal-LM loss); returns the log records (also appended to
    `log_path` as JSON lines)."""
    limit = model.config.n_positions - 1

    def encode(ts):
        enc = [tokenizer(t)["input_ids"] for t in ts]
        return [(x[-limit:] if left_truncate else x[:limit]) + [tokenizer.eos_token_id] for x in enc]

    ids, val = encode(texts), encode(val_texts or [])
    opt = adamw(model.parameters(), tc.lr, (tc.beta1, tc.beta2), tc.eps, tc.weight_decay)
    batches = epoch_batches(len(ids), tc.seed, tc.batch_size)

    def loss_fn(seqs: list[list[int]]) -> torch.Tensor:
        x, m, y = (t.to(device) for t in lm_batch(seqs, tokenizer.eos_token_id))
        return model(input_ids=x, attention_mask=m, labels=y).loss

    step_fn = StandardStep(list(model.parameters()), loss_fn, opt,
                           lambda step: [([ids[i] for i in next(batches)], 1.0)], tc.grad_clip)
    records, t0 = [], time.time()

    def on_step(step: int, m: dict) -> None:
        evaluate = bool(val) and (step == tc.steps or (tc.eval_every > 0 and every(tc.eval_every, step, tc.steps)))
        if (step - 1) % max(tc.log_every, 1) == 0 or step == tc.steps or evaluate:
            rec = {"step": step, "loss": m["loss"], "lr": m["lr"], "elapsed_s": round(time.time() - t0, 2)}
            if evaluate:
                rec["val_loss"] = validation_loss(model, val[: tc.eval_batches * tc.batch_size], tokenizer,
                                                  tc.batch_size, device)
            records.append(rec)
            log.info("gpt2 step %d: loss %.4f lr %.2e%s", step, rec["loss"], rec["lr"],
                     f" val_loss {rec['val_loss']:.4f}" if "val_loss" in rec else "")
            if log_path is not None:
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")

    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout (if configured) draws from a scoped, seeded generator
        torch.manual_seed(tc.seed)
        run_loop(step_fn, 0, tc.steps, schedules=[(opt, Schedule.of(tc))], hooks=[on_step], desc="gpt2",
                 progress=progress, postfix=lambda m: {"loss": f"{m['loss']:.4f}"})
    model.eval()
    return records


@torch.no_grad()
def validation_loss(model, ids: list[list[int]], tokenizer, batch: int, device) -> float:
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(ids), batch):
        x, m, y = (t.to(device) for t in lm_batch(ids[i: i + batch], tokenizer.eos_token_id))
        tot += float(model(input_ids=x, attention_mask=m, labels=y).loss) * len(x)
        n += len(x)
    model.train(was)
    return tot / max(n, 1)


def build_gpt2(cfg: GPT2BaselineConfig, vocab_size: int, eos_id: int, seed: int):
    """A freshly initialised GPT2LMHeadModel; its init draws from a scoped generator seeded with `seed`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    m = cfg.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head,
                                          n_inner=m.n_inner, n_positions=m.n_positions, bos_token_id=eos_id,
                                          eos_token_id=eos_id, resid_pdrop=m.dropout, embd_pdrop=m.dropout,
                                          attn_pdrop=m.dropout))


def save_gpt2(model, tokenizer, out_dir: str | os.PathLike, meta: dict) -> Path:
    """save_pretrained (safetensors) + tokenizer + gpt2_config.json into out_dir, atomically."""
    from pixar.checkpoint.store import atomic_dir

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "gpt2_config.json").write_text(json.dumps(meta, indent=2))
    return out


def train_gpt2(config_path: str, overrides: list[str], out_dir: str | os.PathLike,
               data_dir: str | os.PathLike | None = None, device: str = "auto") -> Path:
    """Train the same-budget GPT-2 of `config_path` (configs/gpt2-*.yaml); returns the model folder
    `<out_dir>/final` (a save_pretrained folder usable as `pixar bench ... --baseline DIR`)."""
    from pixar.data.sources import build_splits

    cfg = GPT2BaselineConfig.from_yaml(config_path, overrides)
    tc = cfg.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    tok = gpt2_tokenizer(data_dir)
    splits = build_splits(tc, data_dir)
    if cfg.vocab == "corpus":
        tok = RestrictedTokenizer.from_texts(tok, list(splits.train) + list(splits.val))
    elif cfg.vocab != "full":
        raise ConfigError(f"{config_path}: vocab must be full or corpus, got {cfg.vocab!r}")
    model = build_gpt2(cfg, len(tok), tok.eos_token_id, tc.seed).to(dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "metrics.jsonl"
    log_path.unlink(missing_ok=True)
    records = train_causal_lm(model, list(splits.train), tok, tc, dev, log_path, list(splits.val))
    params = sum(p.numel() for p in model.parameters())
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    meta = {"kind": "gpt2-baseline", "name": cfg.name, "matched_to": cfg.matched_to, "match": cfg.match,
            "params": params, "non_embedding_params": params - emb, "train_chunks": len(splits.train),
            "vocab": cfg.vocab if cfg.vocab == "full" else {k: v for k, v in tok.info().items() if k != "kept_gpt2_ids"},
            "steps": tc.steps, "optimizer": "AdamW, weight decay on all parameters (the paper's policy)",
            "final": records[-1] if records else None, "config": dataclasses.asdict(cfg)}
    return save_gpt2(model, tok, out / "final", meta)
