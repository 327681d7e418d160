"""Model runners: one protocol (harness.models.base), implemented once per model, chosen from a registry.

    LM_RUNNERS["pixar" | "gpt2"]          PixarRunner, GPT2Runner           (paper + lm-eval protocols)
    CLASSIFIER_RUNNERS["pixar" | "gpt2"]  PixarClassifierRunner, GPT2ClassifierRunner  (GLUE)

    load_lm_runners(checkpoint, baselines, ...)   --checkpoint is PIXAR, every --baseline GPT-2
    load_classifier(path, ...)                    a `pixar bench glue` classifier dir, by its meta.json kind
"""
from __future__ import annotations

import json
from pathlib import Path

from pixar.checkpoint.store import CheckpointError

from harness.models.base import (CLASSIFIER_RUNNERS, LM_RUNNERS, ClassifierRunner, LMRunner, OcrReads, PixelTransform,
                                 Reads, TextReads)
from harness.models.classifiers import GPT2ClassifierRunner, PixarClassifierRunner
from harness.models.gpt2_runner import GPT2Runner
from harness.models.pixar_runner import PixarRunner

__all__ = ["CLASSIFIER_RUNNERS", "LM_RUNNERS", "ClassifierRunner", "GPT2ClassifierRunner", "GPT2Runner", "LMRunner",
           "OcrReads", "PixarClassifierRunner", "PixarRunner", "PixelTransform", "Reads", "TextReads",
           "classifier_meta_kind", "load_classifier", "load_lm_runners", "model_specs"]


def model_specs(checkpoint: str | None, baselines: list[str]) -> list[tuple[str, str]]:
    """Command-line models as (runner kind, spec): --checkpoint is PIXAR, every --baseline GPT-2."""
    return ([("pixar", checkpoint)] if checkpoint else []) + [("gpt2", b) for b in baselines]


def load_lm_runners(checkpoint: str | None, baselines: list[str], device: str = "cpu", batch_size: int = 16,
                    ocr: str = "glyph", data_dir: str | None = None, seed: int = 0) -> list[LMRunner]:
    runners = [LM_RUNNERS[kind].load(spec, device=device, batch_size=batch_size, ocr=ocr, data_dir=data_dir, seed=seed)
               for kind, spec in model_specs(checkpoint, list(baselines))]
    if not runners:
        raise ValueError("nothing to evaluate: pass --checkpoint and/or --baseline")
    return runners


def classifier_meta_kind(path: str | Path) -> str | None:
    """The "kind" in a model directory's meta.json (None without one or when unreadable)."""
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("kind")
    except (json.JSONDecodeError, AttributeError):
        return None  # the loader reports the corrupt file with its own message


def load_classifier(path: str | Path, device: str = "cpu", batch_size: int = 32, name: str = "") -> ClassifierRunner:
    """A fine-tuned classifier directory as the runner registered for its meta.json kind."""
    kind = classifier_meta_kind(path)
    by_meta = {cls.meta_kind: cls for cls in CLASSIFIER_RUNNERS.values()}
    if kind not in by_meta:
        raise CheckpointError(f"{path}: not a GLUE classifier (meta kind {kind!r})")
    return by_meta[kind].load(path, device, batch_size, name)
