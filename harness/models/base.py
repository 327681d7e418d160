"""The model-runner protocol: what bench, the attack suite, GLUE and the demo may ask of a model.

Two families, each implemented once for PIXAR and once for GPT-2 and registered by kind:

    LMRunner (kind "pixar" | "gpt2")                                  language models, paper + lm-eval protocols
        first_words(prompts, n_positions, transform=None, ids=None) -> list[Reads]
            the paper protocol's generation: PIXAR greedily generates n_positions positions after the rendered
            prompt and reads them back with its OCR engine(s); GPT-2 greedily generates PAPER_NEW_TOKENS tokens
            (n_positions is PIXAR's; GPT-2 ignores it, as the official evaluate_gpt2.py's max_length=5)
        paper_eval(examples, n_positions, readability, transform=None) -> (metrics, per-example rows)
        loglikelihood([(context, continuation), ...]) -> [(log-lik, is_greedy), ...]   (lm-eval semantics)
        lm_eval_model(batch_size) -> an lm-eval LM;  lm_eval_metrics(task_result) -> labelled metric keys
        finetune(pairs, fc) -> a new, fine-tuned runner (self is untouched);  save(path, meta) -> path
    ClassifierRunner (kind "pixar" | "gpt2")                          GLUE classifiers
        predict_proba(texts, transform=None, ids=None) -> float [N, C];  predict(...) -> class ids
        build(base, spec, seed, max_tokens) / load(path) -> runner;  train(...);  save(path, info)

A pixel `transform` is `transform(image uint8 [H, W] (1 = white), example_id) -> image`, applied to each
example's rendered input before the model sees it. It must derive its randomness from the example id (see
attacks.seeded.PixelAttack), so a result never depends on batch size or order. Only runners with
`supports_pixels` accept one; the others raise TypeError.

Predictions of the paper protocol are `Reads`, which carry their own scoring rule (`correct(gold)`):
`OcrReads` (PIXAR: case-sensitive, g->q fold, correct if any engine is) and `TextReads` (GPT-2:
case-insensitive, as the official evaluate_gpt2.py).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from pixar.read import ocr

from harness.models.glue_classifiers import finetune, load_classifier, save_classifier

PixelTransform = Callable[[np.ndarray, int], np.ndarray]
OCR_ENGINES = ("glyph", "tesseract", "union")
"""A pixel runner's read-back choices (union: either engine's reading counts, the paper's scoring)."""
LM_RUNNERS: dict[str, type["LMRunner"]] = {}
CLASSIFIER_RUNNERS: dict[str, type["ClassifierRunner"]] = {}


def register(registry: dict, kind: str):
    """Class decorator: registry[kind] = cls, cls.kind = kind."""

    def deco(cls):
        cls.kind = kind
        registry[kind] = cls
        return cls
    return deco


def check_transform(runner, transform: PixelTransform | None) -> None:
    if transform is not None and not runner.supports_pixels:
        raise TypeError(f"{runner.name}: a pixel transform needs a pixel model; {runner.kind} reads tokens")


# ---- predictions of the paper protocol ----------------------------------------------------------
class Reads(ABC):
    """One prompt's generation as text, with the rule that scores its first word."""

    rule: ClassVar[str]

    @property
    @abstractmethod
    def texts(self) -> dict[str, str]:
        """{engine or "text": text read/decoded}."""

    @abstractmethod
    def correct(self, gold: str) -> bool:
        """Is the first word of this generation the first word of `gold`?"""

    def to_json(self) -> dict:
        return {"reads": dict(self.texts), "rule": self.rule}


@dataclass(frozen=True)
class OcrReads(Reads):
    """PIXAR: the generated positions read back by each OCR engine ((engine, text), ...)."""

    by_engine: tuple[tuple[str, str], ...]
    context_positions: int = 0
    rule: ClassVar[str] = "ocr"

    @property
    def texts(self) -> dict[str, str]:
        return dict(self.by_engine)

    def correct(self, gold: str) -> bool:
        return ocr.union_correct(self.texts, ocr.first_word(gold))


@dataclass(frozen=True)
class TextReads(Reads):
    """GPT-2: the decoded new tokens."""

    text: str
    rule: ClassVar[str] = "ci"

    @property
    def texts(self) -> dict[str, str]:
        return {"text": self.text}

    def correct(self, gold: str) -> bool:
        first, want = ocr.first_word(self.text), ocr.first_word(gold)
        return bool(want) and first.lower() == want.lower()


# ---- language models ------------------------------------------------------------------------------
@dataclass
class LMRunner(ABC):
    """A language model behind the paper and lm-eval protocols. `info`: its description for records."""

    name: str
    info: dict
    finetuned: bool = False
    finetune_log: list = field(default_factory=list)
    finetune_summary: dict = field(default_factory=dict)  # lr picked, dev curve, budget used (harness.models.finetune)

    kind: ClassVar[str] = ""
    supports_pixels: ClassVar[bool] = False
    lm_eval_keys: ClassVar[dict[str, str]] = {}  # lm-eval metric name -> our labelled key (harness.results.tables)

    @classmethod
    @abstractmethod
    def load(cls, spec: str, *, device: str = "cpu", batch_size: int = 16, ocr: str = "glyph",
             data_dir: str | None = None, seed: int = 0) -> "LMRunner":
        """A runner for the model at `spec` (checkpoint/run folder, GPT-2 folder or hub name)."""

    @property
    def renderer(self):
        """The pixar.render.renderer.Renderer this model reads (None for token models)."""
        return None

    @abstractmethod
    def first_words(self, prompts: list[str], n_positions: int, transform: PixelTransform | None = None,
                    ids: list[int] | None = None) -> list[Reads]:
        """The paper protocol's generation for each prompt (see the module docstring)."""

    @abstractmethod
    def paper_row(self, example: dict, reads: Reads, readability) -> dict:
        """The per-example record of the paper protocol."""

    @abstractmethod
    def paper_metrics(self, rows: list[dict], readability) -> dict[str, float]:
        """Labelled paper-protocol metrics (harness.results.tables keys) over `paper_row` records."""

    def paper_eval(self, examples: list[dict], n_positions: int, readability,
                   transform: PixelTransform | None = None) -> tuple[dict, list[dict]]:
        """examples: {'idx', 'prompt', 'target'} -> (metrics, per-example rows)."""
        reads = self.first_words([e["prompt"] for e in examples], n_positions, transform,
                                 [int(e["idx"]) for e in examples])
        rows = [self.paper_row(e, r, readability) for e, r in zip(examples, reads)]
        return self.paper_metrics(rows, readability), rows

    @abstractmethod
    def protocol_reads(self, spec, prompts: list[str], transform: PixelTransform | None = None,
                       ids: list[int] | None = None) -> tuple[dict[str, list[str]], object, list[int | None]]:
        """A named protocol's generation (harness.eval.protocols.ProtocolSpec `spec`) for each prompt ->
        ({reading: [text per prompt]}, the spec the readings are scored under, context positions per prompt)."""

    def protocol_eval(self, spec, examples: list[dict], vocab, transform: PixelTransform | None = None) -> list[dict]:
        """A named protocol on examples {'idx', 'prompt', 'target'}: one scored row per example
        (harness.eval.protocols.score_rows: prediction, correct per reading, correct_union, readable)."""
        from harness.eval.protocols import score_rows

        reads, scored, context = self.protocol_reads(spec, [e["prompt"] for e in examples], transform,
                                                     [int(e["idx"]) for e in examples])
        rows = score_rows(scored, examples, reads, vocab)
        for row, n in zip(rows, context):
            if n is not None:
                row["context_positions"] = n
        return rows

    @abstractmethod
    def lm_eval_model(self, batch_size: int):
        """This model as an lm-eval `LM` (PIXAR: harness.models.lm_eval_adapter.PixarLM; GPT-2: HFLM)."""

    @abstractmethod
    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """lm-eval's loglikelihood on (context, continuation) pairs: pixel NLL (PIXAR) or token NLL (GPT-2)."""

    def lm_eval_metrics(self, task_result: dict) -> dict[str, float]:
        """lm-eval result keys ("acc,none", ...) -> our labelled metric keys (units by model)."""
        out = {}
        for name, key in self.lm_eval_keys.items():
            if f"{name},none" in task_result:
                out[key] = task_result[f"{name},none"]
        for k, v in task_result.items():
            if k.startswith("exact_match,") and "stderr" not in k:
                out["lm_eval_exact_match"] = v
        return out

    @abstractmethod
    def finetune(self, pairs: list[tuple[str, str]], fc) -> "LMRunner":
        """A fine-tuned copy on (prompt, answer) pairs (harness.models.finetune.TaskFinetuneConfig `fc`)."""

    @abstractmethod
    def save(self, path: Path, meta: dict) -> Path:
        """Write this model where `load` reads it back."""

    @abstractmethod
    def paper_metric(self, ocr: str) -> str:
        """Short label of the paper-protocol score (attack tables' "metric" column)."""

    @abstractmethod
    def paper_protocol(self, positions: int, ocr: str) -> str:
        """The full paper protocol this runner follows, for reports and summary.json."""

    def id_columns(self, task: str, n: int, ocr: str) -> dict:
        return {"task": task, "model": self.name, "kind": self.kind, "params": self.info.get("params"),
                "non-embedding params": self.info.get("non_embedding_params"), "match": self.info.get("match", ""),
                "finetuned": self.finetuned, "ocr": ocr if self.supports_pixels else "", "n": n}


# ---- classifiers ----------------------------------------------------------------------------------
class ClassifierRunner(ABC):
    """A GLUE classifier (harness.models.glue_classifiers's PixarClassifier / GPT2Classifier) behind one interface."""

    kind: ClassVar[str] = ""
    meta_kind: ClassVar[str] = ""  # the classifier directory's meta.json "kind"
    supports_pixels: ClassVar[bool] = False

    def __init__(self, model, name: str = "", info: dict | None = None, batch_size: int = 32):
        self.model, self.name, self.batch_size = model, name, int(batch_size)
        self.info = dict(info or getattr(model, "info", {}) or {})

    @property
    def renderer(self):
        return None

    @classmethod
    @abstractmethod
    def build(cls, base: str, spec, seed: int, max_tokens: int = 1024) -> "ClassifierRunner":
        """A classifier on the pretrained model `base` with a fresh head (seeded) for GLUE task `spec`."""

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", batch_size: int = 32, name: str = "") -> "ClassifierRunner":
        """A fine-tuned classifier directory (written by `save`)."""
        model, _ = load_classifier(path, device)
        return cls(model, name or Path(path).name, dict(model.info), batch_size)

    @abstractmethod
    def logits(self, texts: list, transform: PixelTransform | None = None, ids: list[int] | None = None):
        """Raw outputs float [N, num_labels] for one batch (eval mode, no grad)."""

    def predict_proba(self, texts: list, transform: PixelTransform | None = None,
                      ids: list[int] | None = None, batch_size: int | None = None) -> np.ndarray:
        """Softmax probabilities [N, C] (regression: the score [N, 1]); `ids` key a pixel transform."""
        import torch

        check_transform(self, transform)
        texts = list(texts)
        ids = list(range(len(texts))) if ids is None else list(ids)
        bs = batch_size or self.batch_size
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = [self.logits(texts[a: a + bs], transform, ids[a: a + bs]).float().cpu()
                       for a in range(0, len(texts), bs)]
        finally:
            self.model.train(was_training)
        logits = torch.cat(out) if out else torch.zeros(0, self.model.num_labels)
        if self.info.get("problem_type") == "regression":
            return logits.numpy()
        return torch.softmax(logits, -1).numpy()

    def predict(self, texts: list, transform: PixelTransform | None = None, ids: list[int] | None = None) -> list[int]:
        return [int(k) for k in self.predict_proba(texts, transform, ids).argmax(-1)]

    def train(self, spec, train, devs: dict, cfg, log=None):
        """Fine-tune in place on GLUE data (harness.models.glue_classifiers.finetune) -> its FinetuneResult."""
        return finetune(self.model, spec, train, devs, cfg, log=log)

    def save(self, path: Path, info: dict) -> Path:
        return save_classifier(self.model, path, info)

    def truncated_fraction(self, texts: list) -> float:
        return float(self.model.truncated(texts).mean()) if texts else 0.0

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a results record says about this classifier (parameters, renderer)."""
