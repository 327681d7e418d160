"""The GPT-2 runner: the paper protocol as the official evaluate_gpt2.py (greedy PAPER_NEW_TOKENS tokens, the
first generated word compared case-insensitively; case-sensitive recorded beside it), lm-eval through HFLM
(token NLL), fine-tuning (harness.models.finetune.finetune_gpt2) and saving (harness.models.gpt2_baselines.save_gpt2)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness.models.base import LM_RUNNERS, LMRunner, PixelTransform, TextReads, check_transform, register


@register(LM_RUNNERS, "gpt2")
class GPT2Runner(LMRunner):
    supports_pixels = False
    lm_eval_keys = {"acc": "lm_eval_acc_token", "nll": "lm_eval_token_nll", "perplexity": "lm_eval_token_ppl"}

    def __init__(self, hf_model, tokenizer, *, name: str = "gpt2", info: dict | None = None, device: str = "cpu",
                 batch_size: int = 16):
        super().__init__(name=name, info=dict(info or {}))
        self.hf_model: Any = hf_model
        self.tokenizer = tokenizer
        self.device, self.batch_size = str(device), int(batch_size)

    @classmethod
    def load(cls, spec: str, *, device: str = "cpu", batch_size: int = 16, ocr: str = "glyph",
             data_dir: str | None = None, seed: int = 0) -> "GPT2Runner":
        """'gpt2' (HF cache/hub) or a save_pretrained folder (harness.models.gpt2_baselines.load_gpt2)."""
        from harness.models.gpt2_baselines import load_gpt2

        model, tok, info = load_gpt2(spec, device, data_dir)
        info = {**info, "config": model.config.to_diff_dict()}
        return cls(model, tok, name=f"gpt2:{info['name']}", info=info, device=device, batch_size=batch_size)

    def first_words(self, prompts: list[str], n_positions: int, transform: PixelTransform | None = None,
                    ids: list[int] | None = None) -> list[TextReads]:
        """Greedy PAPER_NEW_TOKENS tokens after each prompt (n_positions is PIXAR's budget: not used)."""
        from harness.models.gpt2_baselines import PAPER_NEW_TOKENS, greedy_continuations

        check_transform(self, transform)
        texts = greedy_continuations(self.hf_model, self.tokenizer, list(prompts), PAPER_NEW_TOKENS, self.batch_size)
        return [TextReads(t) for t in texts]

    def protocol_reads(self, spec, prompts: list[str], transform: PixelTransform | None = None,
                       ids: list[int] | None = None):
        """Greedy PAPER_NEW_TOKENS tokens after each prompt, scored as the official evaluate_gpt2.py
        (harness.eval.protocols.text_model_spec: first whitespace token, case-insensitive)."""
        from harness.models.gpt2_baselines import PAPER_NEW_TOKENS, greedy_continuations
        from harness.eval.protocols import text_model_spec

        check_transform(self, transform)
        texts = greedy_continuations(self.hf_model, self.tokenizer, list(prompts), PAPER_NEW_TOKENS, self.batch_size)
        return {"text": texts}, text_model_spec(spec), [None] * len(prompts)

    def paper_row(self, example: dict, reads: TextReads, readability) -> dict:
        from pixar.read import ocr
        fw, gold = ocr.first_word(reads.text), ocr.first_word(example["target"])
        row = {"idx": example["idx"], "target": example["target"], "text": reads.text, "first_word": fw,
               "correct_ci": reads.correct(example["target"]), "correct_cs": bool(gold) and fw == gold}
        if readability is not None:
            row["readable"] = readability.is_readable(reads.text)
        return row

    def paper_metrics(self, rows: list[dict], readability) -> dict[str, float]:
        n = max(len(rows), 1)
        metrics = {"paper_acc_ci": sum(r["correct_ci"] for r in rows) / n,
                   "paper_acc_cs": sum(r["correct_cs"] for r in rows) / n}
        if readability is not None:
            metrics["paper_readability_text"] = sum(r["readable"] for r in rows) / n
        return metrics

    def paper_metric(self, ocr: str) -> str:
        return "paper first-word acc (case-insensitive)"

    def paper_protocol(self, positions: int, ocr: str) -> str:
        return ("paper first-word accuracy: 5 greedy tokens, first generated word vs target, case-insensitive "
                "(as the official evaluate_gpt2.py)")

    def lm_eval_model(self, batch_size: int):
        from harness.models.gpt2_baselines import gpt2_lm

        return gpt2_lm(self.hf_model, self.tokenizer, batch_size)

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        from lm_eval.api.instance import Instance

        inst = [Instance(request_type="loglikelihood", doc={}, arguments=(c, t), idx=i, metadata=("runner", i, 1))
                for i, (c, t) in enumerate(requests)]
        return [(float(ll), bool(g)) for ll, g in self.lm_eval_model(self.batch_size).loglikelihood(inst)]

    def finetune(self, pairs: list[tuple[str, str]], fc) -> "GPT2Runner":
        from harness.models.finetune import finetune_gpt2

        model = copy.deepcopy(self.hf_model)
        new = GPT2Runner(model, self.tokenizer, name=self.name, info=dict(self.info), device=self.device,
                         batch_size=self.batch_size)
        new.finetune_log, new.finetune_summary = finetune_gpt2(model, self.tokenizer, list(pairs), fc, self.device)
        new.finetuned = True
        return new

    def save(self, path: Path, meta: dict) -> Path:
        from harness.models.gpt2_pretrain import save_gpt2

        name = meta.get("finetuned_on")
        record = {"kind": "gpt2-finetuned" if name else "gpt2",
                  "name": f"{self.info.get('name', 'gpt2')}-ft-{name}" if name else self.info.get("name", "gpt2"),
                  **{k: self.info[k] for k in ("matched_to", "match") if k in self.info}, **meta}
        return save_gpt2(self.hf_model, self.tokenizer, path, record)
