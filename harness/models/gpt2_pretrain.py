"""The same-budget GPT-2 baseline: `pixar train --model gpt2 --config gpt2-tiny`.

A transformers GPT2LMHeadModel trained on the same text chunks as PIXAR (pixar.data.stream.build_splits with the
config's `train` section: same sources, chunk sizes, validation split, seed, steps, batch, lr schedule), one
chunk per sequence + <|endoftext|>, right-padded, loss on real tokens only (the mean over the global batch's
tokens, exact under DDP/FSDP), with PIXAR's schedule and optimiser policy (AdamW, weight decay on every parameter).

It runs through PIXAR's run machinery (pixar.train.run.train_run, as a `RunKind`): step checkpoints
(`<out>/step-XXXXXXX` safetensors + JSON, the `last` pointer), `--resume auto`, SIGTERM/SIGUSR1 save-and-exit,
the run lock, DDP/FSDP under torchrun, rank 0 alone writing. At the end rank 0 publishes `<out>/final`:
save_pretrained (safetensors) + the tokenizer files + gpt2_config.json, atomically (`pixar bench --baseline DIR`).
A fresh run refuses an --out that already holds a `final/`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from pixar.checkpoint.store import atomic_dir
from pixar.config import TrainConfig, YamlPreset
from pixar.config_io import ConfigError
from pixar.data.stream import build_splits, epoch_order
from pixar.train import parallel
from pixar.train.loop import TrainingError
from pixar.train.run import RunKind, train_run
from pixar.train.run_state import DistInfo, all_reduce_weighted_mean, autocast

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
class GPT2BaselineConfig(YamlPreset):
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


def epoch_batches(n: int, seed: int, batch: int, start: int = 0) -> Iterator[list[int]]:
    """Endless batches of indices into n examples: consecutive slices of seeded per-epoch shuffles
    (pixar.data.stream.epoch_order), from absolute example count `start`."""
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


def build_gpt2(cfg: GPT2BaselineConfig, vocab_size: int, eos_id: int, seed: int):
    """A freshly initialised GPT2LMHeadModel; its init draws from a scoped generator seeded with `seed`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    m = cfg.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head,
                                           n_inner=m.n_inner, n_positions=m.n_positions, bos_token_id=eos_id,
                                           eos_token_id=eos_id, resid_pdrop=m.dropout, embd_pdrop=m.dropout,
                                           attn_pdrop=m.dropout))
    model.loss_type = "ForCausalLM"  # GPT2LMHeadModel names none: transformers would warn "loss_type=None"
    return model


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else "not stated"


def gpt2_card(meta: dict) -> str:
    """README.md model card of a baseline folder: what it is matched to (as trained), data, steps, usage."""
    cfg = meta.get("config") or {}
    data = ", ".join((cfg.get("train") or {}).get("data") or []) or "not stated"
    lines = ["---", "library_name: transformers", "license: mit", "tags:", "- gpt2", "- pixar-harness-baseline", "---",
             "", f"# {meta.get('name', 'gpt2')}", "",
             "A GPT-2 baseline trained by the pixar-harness (PyPI name `pixar-harness`) as a same-budget partner of "
             "a PIXAR preset.", "", "| field | value |", "|---|---|",
             f"| matched to | {meta.get('matched_to') or '-'} |", f"| match | {meta.get('match') or '-'} |",
             f"| parameters | {_count(meta.get('params'))} |",
             f"| non-embedding parameters | {_count(meta.get('non_embedding_params'))} |",
             f"| training data | {data} ({meta.get('train_chunks', '?')} chunks) |",
             f"| steps | {meta.get('steps')} |", f"| optimizer | {meta.get('optimizer', '')} |", "",
             "## Usage", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
             'model = AutoModelForCausalLM.from_pretrained("FOLDER")', 'tokenizer = AutoTokenizer.from_pretrained("FOLDER")',
             "```", "", "`pixar bench ... --baseline FOLDER` evaluates it next to a PIXAR checkpoint.", "",
             "License: MIT."]
    return "\n".join(lines) + "\n"


def save_gpt2(model, tokenizer, out_dir: str | os.PathLike, meta: dict) -> Path:
    """save_pretrained (safetensors) + tokenizer + gpt2_config.json + a README.md card into out_dir, atomically."""
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "gpt2_config.json").write_text(json.dumps(meta, indent=2))
        (tmp / "README.md").write_text(gpt2_card(meta))
    return out


class GPT2Pretrain(RunKind):
    """The GPT-2 baseline as a pixar.train.run.RunKind. Rank r of W takes rows r*B/W .. (r+1)*B/W of each global
    batch (epoch_batches over all chunks) and splits them into train.grad_accum micro-batches; each micro-batch's
    loss is its summed token cross-entropy x W / (real tokens in the global batch), so the rank-averaged
    gradient and the logged loss are the global batch's token mean whatever W and grad_accum are."""

    tag = "gpt2"
    throughput_key = "tokens_per_s"

    def __init__(self, cfg: GPT2BaselineConfig, out: Path, data_dir, overrides: list[str] | None = None):
        super().__init__(cfg)
        self.out, self.data_dir, self.overrides = out, data_dir, list(overrides or [])
        self.units_per_step = cfg.train.batch_size * cfg.model.n_positions  # padded ceiling, like PIXAR's positions
        self.meta = {"kind": "gpt2-baseline", "name": cfg.name}

    def prepare(self, info: DistInfo, ckpt: Path | None) -> None:
        final = self.out / "final"
        if ckpt is None and final.exists():
            raise TrainingError(f"{final} already holds a trained GPT-2; choose another --out (or delete it)")
        self.info = info
        self.tok = gpt2_tokenizer(self.data_dir)
        self.splits = build_splits(self.cfg.train, self.data_dir)
        if not self.splits.train:
            raise TrainingError("no training chunks: check train.data")
        if self.cfg.vocab == "corpus":  # deterministic in the chunks, so a resumed run rebuilds the same one
            self.tok = RestrictedTokenizer.from_texts(self.tok, list(self.splits.train) + list(self.splits.val))
        self.ids, self.val = self.encode(self.splits.train), self.encode(self.splits.val)

    def encode(self, texts) -> list[list[int]]:
        limit = self.cfg.model.n_positions - 1
        return [x[:limit] + [self.tok.eos_token_id] for x in (self.tok(t)["input_ids"] for t in texts)]

    def build_model(self):
        return build_gpt2(self.cfg, len(self.tok), self.tok.eos_token_id, self.cfg.train.seed)

    def blocks(self, model) -> list:
        return list(model.transformer.h)

    def check_compatible(self, ckpt: Path) -> None:
        try:
            saved = json.loads((ckpt / "config.json").read_text())["model"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TrainingError(f"{ckpt}/config.json: not a GPT-2 baseline checkpoint ({e})") from None
        mine = dataclasses.asdict(self.cfg.model)
        diff = sorted(k for k in mine if saved.get(k) != mine[k])
        if diff:
            raise TrainingError(f"{ckpt}: model config differs from the checkpoint's in {diff}")

    def weights(self, model) -> dict[str, torch.Tensor]:
        """The state dict with the tied lm_head copied (safetensors refuses tensors that share memory)."""
        return {k: v.detach().clone() if k == "lm_head.weight" else v for k, v in model.state_dict().items()}

    def on_resume(self, state: dict) -> None:
        if state.get("num_train_chunks") != len(self.ids):
            log.warning("the corpus changed (%s -> %d training chunks); the data position is approximate",
                        state.get("num_train_chunks"), len(self.ids))

    def open_data(self, info: DistInfo, consumed: int) -> None:
        tc = self.cfg.train
        if consumed == 0:  # dropout (if configured) draws from torch's RNG: seeded, and saved in every checkpoint
            torch.manual_seed(tc.seed + info.rank)
        self.batches = epoch_batches(len(self.ids), tc.seed, tc.batch_size, consumed)

    def micro_batches(self, step: int) -> list[tuple[list[list[int]], float]]:
        tc, info = self.cfg.train, self.info
        rows = [self.ids[i] for i in next(self.batches)]
        scale = info.world_size / max(1, sum(len(r) - 1 for r in rows))  # x W: DDP averages over ranks
        per = len(rows) // info.world_size
        mine = rows[info.rank * per: (info.rank + 1) * per]
        size = len(mine) // tc.grad_accum
        return [((mine[a * size: (a + 1) * size], scale), 1.0) for a in range(tc.grad_accum)]

    def token_losses(self, model, seqs: list[list[int]]) -> tuple[torch.Tensor, int]:
        """Summed next-token cross-entropy over the real tokens of `seqs`, and their count."""
        x, m, y = (t.to(self.info.device) for t in lm_batch(seqs, self.tok.eos_token_id))
        logits = model(input_ids=x, attention_mask=m).logits[:, :-1]
        labels = y[:, 1:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100,
                               reduction="sum")
        return loss, int((labels != -100).sum())

    def loss(self, model, batch) -> torch.Tensor:
        seqs, scale = batch
        return self.token_losses(model, seqs)[0] * scale

    def data_state(self, steps_done: int) -> dict:
        return {"num_train_chunks": len(self.ids)}

    @torch.no_grad()
    def evaluate(self, model, precision: str) -> float | None:
        """Token-mean validation loss over the first eval_batches x batch_size held-out chunks (every rank
        scores an equal share; sums all-reduced)."""
        tc, info = self.cfg.train, self.info
        val = self.val[: tc.eval_batches * tc.batch_size]
        val = val[: len(val) - len(val) % info.world_size]
        if not val:
            return None
        mine = val[info.rank:: info.world_size]
        was = model.training
        model.eval()
        total, count = 0.0, 0
        for i in range(0, len(mine), max(1, tc.batch_size // info.world_size)):
            with autocast(precision, info.device):
                s, n = self.token_losses(model, mine[i: i + max(1, tc.batch_size // info.world_size)])
            total, count = total + float(s), count + n
        model.train(was)
        return all_reduce_weighted_mean(total, count, info)

    def finish(self, model, last: Path | None, out: Path, info: DistInfo) -> Path:
        """Rank 0 publishes `<out>/final` (save_pretrained + tokenizer + gpt2_config.json); a finished run that is
        resumed again keeps the final/ it already published."""
        final, tc = out / "final", self.cfg.train
        gathered = parallel.full_state_dict(model) if parallel.is_fsdp(model) else None  # collective
        if not info.is_main:
            return final
        meta_file = final / "gpt2_config.json"
        if meta_file.is_file():
            with contextlib.suppress(ValueError, OSError):
                old = json.loads(meta_file.read_text())
                if old.get("steps") == tc.steps and old.get("checkpoint") == (last.name if last else None):
                    return final
            log.warning("%s: replacing the published model with the one of step %d", final, tc.steps)
        plain = parallel.unwrap(model)
        if gathered is not None:
            plain = self.build_model()
            plain.load_state_dict(gathered)
        params = sum(p.numel() for p in plain.parameters())
        emb = plain.transformer.wte.weight.numel() + plain.transformer.wpe.weight.numel()
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] \
            if (out / "metrics.jsonl").is_file() else []
        losses = [r for r in records if "loss" in r]
        changed = [o for o in self.overrides if o.split("=", 1)[0].strip().startswith("model.")]
        match = self.cfg.match if not changed else f"not matched: the model was changed by --set {' '.join(changed)}"
        meta = {"kind": "gpt2-baseline", "name": self.cfg.name, "matched_to": self.cfg.matched_to,
                "match": match, "params": params, "non_embedding_params": params - emb,
                "train_chunks": len(self.ids),
                "vocab": self.cfg.vocab if self.cfg.vocab == "full"
                else {k: v for k, v in self.tok.info().items() if k != "kept_gpt2_ids"},
                "steps": tc.steps, "checkpoint": last.name if last else None,
                "optimizer": "AdamW, weight decay on all parameters (the paper's policy)",
                "final": losses[-1] if losses else None, "config": self.cfg.to_dict()}
        return save_gpt2(plain, self.tok, final, meta)


def train_gpt2(config_path: str, overrides: list[str], out_dir: str | os.PathLike,
               data_dir: str | os.PathLike | None = None, device: str = "auto", resume: str | bool = False,
               after_step: Callable[[int, torch.nn.Module], None] | None = None) -> Path:
    """Train the same-budget GPT-2 of `config_path` (configs/gpt2-*.yaml) through pixar.train.run (resume:
    "auto" | "true" | "false"); returns the model folder `<out_dir>/final` (a save_pretrained folder usable as
    `pixar bench ... --baseline DIR`). On SIGTERM/SIGUSR1: saves a step checkpoint and raises Preempted."""
    cfg = GPT2BaselineConfig.from_yaml(config_path, overrides)
    if cfg.vocab not in ("full", "corpus"):
        raise ConfigError(f"{config_path}: vocab must be full or corpus, got {cfg.vocab!r}")
    return train_run(GPT2Pretrain(cfg, Path(out_dir), data_dir, overrides), out_dir, device=device, resume=resume,
                     after_step=after_step)
