"""GPT-2 with an output layer restricted to the BPE tokens of a corpus (`vocab: corpus` in a GPT-2 config).

Why: a tiny GPT-2 (2 x 128) spends ~90% of its matmul FLOPs on the 50,257 x 128 output projection; on a task whose
text uses a few dozen BPE tokens (bAbI task 1: 28) that layer makes a CPU demo ~20x slower and, under total-FLOPs
matching, starves the model of steps. Restricting the vocabulary changes nothing about tokenization: text is cut
by the real GPT-2 BPE exactly as before, and each GPT-2 id is then renumbered into a compact table:

    compact id i < K   the i-th kept GPT-2 id (sorted ascending; <|endoftext|> is always kept)
    compact id K       UNSEEN: every GPT-2 id that is not in the table (labelled in the saved folder's
                       restricted_vocab.json and in the model's metadata; decoded as the visible text UNSEEN_TEXT)

The model's vocab_size is K + 1. `RestrictedTokenizer` has the slice of the HF tokenizer interface that training,
greedy decoding and saving use (__call__, decode, eos/pad ids, padding_side, __len__, save_pretrained);
`harness.models.gpt2_baselines.load_gpt2` wraps a saved folder's tokenizer again when restricted_vocab.json is there.
lm-eval (HFLM) needs the full tokenizer and is not supported for restricted models.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

VOCAB_FILE = "restricted_vocab.json"
UNSEEN_TEXT = "<|unseen|>"


class RestrictedTokenizer:
    """The GPT-2 BPE `base` (a GPT2TokenizerFast) with ids renumbered into `kept` (+ one UNSEEN id)."""

    def __init__(self, base, kept_base_ids: Iterable[int]):
        self.base = base
        self.kept = sorted(set(int(i) for i in kept_base_ids) | {int(base.eos_token_id)})
        self._compact = {b: i for i, b in enumerate(self.kept)}
        self.unseen_id = len(self.kept)
        self.eos_token, self.pad_token = base.eos_token, base.eos_token
        self.eos_token_id = self.pad_token_id = self._compact[int(base.eos_token_id)]
        self.padding_side = "right"

    @classmethod
    def from_texts(cls, base, texts: Iterable[str]) -> "RestrictedTokenizer":
        """Keep every GPT-2 id that occurs in `texts` (tokenised by `base`)."""
        kept: set[int] = set()
        for ids in base(list(texts))["input_ids"]:
            kept.update(ids)
        return cls(base, kept)

    def __len__(self) -> int:
        return len(self.kept) + 1

    def to_compact(self, base_ids: Iterable[int]) -> list[int]:
        return [self._compact.get(int(i), self.unseen_id) for i in base_ids]

    def to_base(self, ids: Iterable[int]) -> list[int | None]:
        """Compact ids -> GPT-2 ids (None for UNSEEN)."""
        return [self.kept[i] if 0 <= i < len(self.kept) else None for i in (int(x) for x in ids)]

    def __call__(self, text):
        if isinstance(text, str):
            return {"input_ids": self.to_compact(self.base(text)["input_ids"])}
        return {"input_ids": [self.to_compact(x) for x in self.base(list(text))["input_ids"]]}

    def unseen_share(self, texts: Iterable[str]) -> tuple[int, int]:
        """(UNSEEN tokens, all tokens) over `texts`."""
        n = unseen = 0
        for ids in self(list(texts))["input_ids"]:
            n += len(ids)
            unseen += sum(i == self.unseen_id for i in ids)
        return unseen, n

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        parts, run = [], []
        for b in self.to_base(ids.tolist() if hasattr(ids, "tolist") else ids):
            if b is None:
                parts.append(self.base.decode(run, skip_special_tokens=skip_special_tokens))
                parts.append(UNSEEN_TEXT)
                run = []
            else:
                run.append(b)
        parts.append(self.base.decode(run, skip_special_tokens=skip_special_tokens))
        return "".join(parts)

    def info(self) -> dict:
        return {"vocab": "corpus", "kept_gpt2_ids": self.kept, "unseen_id": self.unseen_id,
                "vocab_size": len(self), "unseen_text": UNSEEN_TEXT,
                "rule": "GPT-2 BPE tokenization unchanged; ids not in kept_gpt2_ids map to unseen_id"}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        self.base.save_pretrained(str(folder))
        (Path(folder) / VOCAB_FILE).write_text(json.dumps(self.info(), indent=1))


def load_restricted(folder: str | os.PathLike, base) -> RestrictedTokenizer | None:
    """The RestrictedTokenizer saved in `folder` around `base`, or None when the folder has a full vocabulary."""
    path = Path(folder) / VOCAB_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        tok = RestrictedTokenizer(base, info["kept_gpt2_ids"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a restricted-vocabulary file ({e})") from None
    if tok.unseen_id != info.get("unseen_id"):
        raise ValueError(f"{path}: unseen_id {info.get('unseen_id')} does not follow its {len(tok.kept)} kept ids")
    return tok
