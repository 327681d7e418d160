"""Task adapters for ``pixar attack``: examples, model callables and one scorer for :func:`attacks.suite.run_suite`.

Two task families, each with its own kind of model directory:

``glue`` (cola, sst2, mrpc, qqp, mnli, qnli, rte, wnli; not stsb, a regression task)
    Examples ``{"text": str | (a, b), "label": int}`` from the task's (first) dev split, first ``limit`` rows.
    Models are classifiers fine-tuned by ``pixar bench glue`` (``harness.glue_train.load_classifier``);
    prediction = argmax class id, score = exact match: "GLUE dev accuracy under attack" (both texts of a
    pair are perturbed). The classifier's ``meta.json`` must name the same task.
``lm`` (babi, lambada): the paper protocol of ``harness.bench.paper_eval``
    Examples ``{"text": prompt, "target": word}``: bAbI's paper prompt (whole story, in-context
    ``| answer`` pairs, question and ``" |"``), LAMBADA's context (every word but the last). The prompt is
    what gets perturbed; the target never is. PIXAR (a checkpoint or run folder) greedily generates 4
    (LAMBADA) / 5 (bAbI) positions, which the OCR engine(s) read back; GPT-2 (a folder or hub name)
    greedily generates 5 tokens. Score = the first word vs the target's first word: PIXAR with
    ``pixar.ocr.union_correct`` (case-sensitive, g->q fold, correct if any engine is), GPT-2
    case-insensitively (the official ``evaluate_gpt2.py``), exactly as ``harness.bench.paper_eval``.

Predictions of generation models are :class:`FirstWordPrediction` (they carry their scoring rule), so one
:func:`score_prediction` serves every model of a suite.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from attacks.suite import exact_match

LM_TASKS = ("babi", "lambada")
CLASSIFIER_KINDS = ("pixar-classifier", "gpt2-classifier")


class AttackTaskError(ValueError):
    """Unknown task, wrong kind of model directory, or a classifier fine-tuned on another task."""


@dataclass
class TaskData:
    """One task's attack inputs. ``name`` labels reports (``sst2``, ``babi-qa1``, ``lambada``)."""

    name: str
    family: str  # "glue" | "lm"
    examples: list[dict]
    source: str
    n_total: int
    positions: int | None = None  # paper protocol: positions PIXAR generates (lm family)
    train_pairs: list[tuple[str, str]] = field(default_factory=list)  # bAbI (prompt, answer), for --finetune
    task_key: str = ""  # GLUE task name / "babi" / "lambada"


@dataclass(frozen=True)
class FirstWordPrediction:
    """Generated text(s) of one example: ``reads`` = ((engine, text), ...) for PIXAR (one per OCR engine),
    (("text", text),) for GPT-2. ``rule``: "ocr" (case-sensitive, g->q, any engine) or "ci"."""

    reads: tuple[tuple[str, str], ...]
    rule: str

    def to_json(self) -> dict:
        return {"reads": dict(self.reads), "rule": self.rule}


@dataclass
class AttackModel:
    """A model as the suite sees it: ``predict(inputs) -> predictions``; ``predict_proba`` for TextAttack."""

    name: str
    kind: str  # "pixar" | "gpt2"
    predict: Callable[[list], list]
    metric: str  # short label of the score (table column "metric")
    protocol: str  # the full protocol, for the report and summary.json
    info: dict
    predict_proba: Callable[[list], np.ndarray] | None = None
    renderer: Any = None  # PIXAR models: their pixar.render.Renderer (for glyph-coverage diagnostics)


def glyph_coverage(renderer, texts: list) -> dict:
    """How ``renderer`` draws the characters of ``texts`` (str or pairs): counts of characters in its main
    font, in the fallback font, and with no glyph at all (drawn as the replacement box), + the latter."""
    from collections import Counter

    from pixar.render import REPLACEMENT

    counts = Counter(ch for t in texts for part in ([t] if isinstance(t, str) else t) for ch in part
                     if not ch.isspace())
    fallback, unknown = 0, {}
    for ch, n in counts.items():
        path, drawn = renderer.font_for(ch)
        if drawn == REPLACEMENT and ch != REPLACEMENT:
            unknown[ch] = n
        elif path == renderer.fallback_path and path != renderer.font_path:
            fallback += n
    total = sum(counts.values())
    return {"chars": total, "fallback": fallback, "no_glyph": sum(unknown.values()),
            "no_glyph_fraction": sum(unknown.values()) / total if total else 0.0,
            "no_glyph_chars": "".join(sorted(unknown))}


def score_prediction(prediction: Any, example: Mapping[str, Any]) -> float:
    """1.0 / 0.0: the paper's first-word rule for :class:`FirstWordPrediction`, else exact match vs ``label``."""
    if not isinstance(prediction, FirstWordPrediction):
        return exact_match(prediction, example)
    from pixar import ocr

    gold = ocr.first_word(example["target"])
    if prediction.rule == "ocr":
        return float(ocr.union_correct(dict(prediction.reads), gold))
    first = ocr.first_word(prediction.reads[0][1])
    return float(bool(gold) and first.lower() == gold.lower())


# ---- data ------------------------------------------------------------------------------------
def task_family(task: str) -> str:
    """'lm' for babi/lambada, 'glue' for a classification GLUE task; AttackTaskError otherwise."""
    from harness.glue import TASK_ORDER, GlueDataError, get_task

    if task.lower() in LM_TASKS:
        return "lm"
    try:
        spec = get_task(task)
    except GlueDataError:
        valid = ", ".join([*LM_TASKS, *(t for t in TASK_ORDER if t != "stsb")])
        raise AttackTaskError(f"unknown task {task!r}; valid tasks: {valid}") from None
    if spec.is_regression:
        raise AttackTaskError(f"{spec.name} is a regression task; accuracy under attack needs a classification "
                              "task")
    return "glue"


def load_task_data(task: str, limit: int | None = None, data_dir: str | None = None, babi_task: int = 1,
                   variant: str = "en", babi_dir: str | None = None, with_train: bool = False) -> TaskData:
    """The first ``limit`` examples (all when None) of ``task``'s evaluation split."""
    if task_family(task) == "glue":
        from harness.glue import get_task, load_split

        spec = get_task(task)
        dev = load_split(spec.name, spec.dev_splits[0], "auto", data_dir)
        n = len(dev) if not limit else min(limit, len(dev))
        examples = [{"text": dev.texts[i], "label": int(dev.labels[i])} for i in range(n)]
        return TaskData(spec.name, "glue", examples, dev.source, len(dev), task_key=spec.name)
    from harness.bench import PAPER_POSITIONS

    if task.lower() == "lambada":
        from harness.tasks import lambada

        texts = lambada.load_lambada(data_dir)
        path = lambada.lambada_path(data_dir)
        examples = [{"text": e["prompt"], "target": e["target"]}
                    for e in lambada.paper_examples(texts[:limit] if limit else texts)]
        return TaskData("lambada", "lm", examples, str(path) if path else "hf:EleutherAI/lambada_openai",
                        len(texts), PAPER_POSITIONS["lambada"], task_key="lambada")
    from harness.tasks import babi

    folder = babi.babi_dir(variant, data_dir, babi_dir)
    test = babi.load_babi(babi_task, "test", folder)
    sub = test[:limit] if limit else test
    pairs = ([(q.paper_prompt(), q.answer) for q in babi.load_babi(babi_task, "train", folder)]
             if with_train else [])
    examples = [{"text": q.paper_prompt(), "target": q.answer} for q in sub]
    return TaskData(f"babi-qa{babi_task}", "lm", examples, str(babi.babi_file(babi_task, "test", folder)),
                    len(test), PAPER_POSITIONS["babi"], pairs, task_key="babi")


# ---- models ----------------------------------------------------------------------------------
def _meta_kind(path: Path) -> str | None:
    meta = path / "meta.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text()).get("kind")
    except (json.JSONDecodeError, AttributeError):
        return None  # the loader reports the corrupt file with its own message


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


GLUE_METRIC = "GLUE dev accuracy (fine-tuned classifier)"
GLUE_PROTOCOL = ("GLUE dev accuracy of the fine-tuned classifier (argmax class vs gold) on perturbed inputs; "
                 "pairs: both texts perturbed")


def check_glue_paths(paths: list[str], task: str) -> None:
    """Each path is a `pixar bench glue` classifier dir fine-tuned on GLUE ``task`` (reads only meta.json)."""
    from harness.glue import get_task

    spec = get_task(task)
    for p in paths:
        path = Path(p)
        if not path.is_dir():
            raise AttackTaskError(f"{p}: classifier directory does not exist (fine-tune one with `pixar bench glue`)")
        kind = _meta_kind(path)
        if kind not in CLASSIFIER_KINDS:
            what = f"meta kind {kind!r}" if kind else "no meta.json"
            raise AttackTaskError(f"{p}: not a fine-tuned GLUE classifier ({what}); --task {spec.name} needs a "
                                  f"`pixar bench glue` classifier dir (e.g. runs/glue-classifiers/<model>/{spec.name})")
        trained_on = (json.loads((path / "meta.json").read_text()).get("classifier") or {}).get("task")
        if trained_on != spec.name:
            raise AttackTaskError(f"{p}: classifier was fine-tuned on {trained_on!r}, not {spec.name!r} "
                                  f"(--task {spec.name})")


def load_glue_models(paths: list[str], task: str, device: str = "cpu", batch_size: int = 32) -> list[AttackModel]:
    """Fine-tuned classifiers (``pixar bench glue`` output dirs) for GLUE ``task``; checks kind and task."""
    from harness.glue import get_task
    from harness.glue_train import load_classifier

    check_glue_paths(paths, task)
    spec = get_task(task)
    models = []
    for p in paths:
        path = Path(p)
        kind = _meta_kind(path)
        model, predict_proba = load_classifier(path, device)

        def predict(inputs: list, _proba=predict_proba) -> list[int]:
            return [int(k) for k in np.asarray(_proba(inputs, batch_size)).argmax(-1)]

        short = path.parent.name if path.name == spec.name and path.parent.name else path.name
        family = "pixar" if kind == "pixar-classifier" else "gpt2"
        info = {"dir": str(path), "kind": kind, **{k: v for k, v in model.info.items() if k != "label_names"},
                "label_names": list(model.info.get("label_names") or [])}
        models.append(AttackModel(f"{family}:{short}", family, predict, GLUE_METRIC, GLUE_PROTOCOL, info,
                                  lambda texts, _proba=predict_proba: _proba(texts, batch_size),
                                  getattr(model, "renderer", None)))
    for m, name in zip(models, _unique([m.name for m in models])):
        m.name = name
    return models


def lm_metric(kind: str, ocr: str) -> str:
    return f"paper first-word acc (OCR {ocr})" if kind == "pixar" else "paper first-word acc (case-insensitive)"


def lm_protocol(kind: str, positions: int, ocr: str) -> str:
    if kind == "pixar":
        rule = "correct if either engine is" if ocr == "union" else "one engine"
        return (f"paper first-word accuracy: {positions} greedy positions read back by OCR ({ocr}; {rule}), "
                "first word vs target, case-sensitive with g->q fold")
    return ("paper first-word accuracy: 5 greedy tokens, first generated word vs target, case-insensitive "
            "(as the official evaluate_gpt2.py)")


def check_lm_paths(checkpoint: str | None, baselines: list[str]) -> None:
    """Reject GLUE classifier dirs given for a generation task, with a one-line reason."""
    for p in ([checkpoint] if checkpoint else []) + list(baselines):
        if _meta_kind(Path(p)) in CLASSIFIER_KINDS:
            raise AttackTaskError(f"{p}: a fine-tuned GLUE classifier; bAbI/LAMBADA need a PIXAR LM checkpoint "
                                  "(--checkpoint) or a GPT-2 LM folder/hub name (--baseline)")


def save_finetuned(bm, folder: Path, task_name: str, fc, source: str) -> Path:
    """Write a fine-tuned BenchModel (harness.bench) as a reloadable PIXAR checkpoint / GPT-2 folder."""
    from dataclasses import asdict

    path = folder / "".join(c if c.isalnum() or c in "-_." else "_" for c in bm.name)  # name ends "+ft-<task>"
    info = {"finetuned_on": task_name, "finetune": asdict(fc), "source": source,
            "finetune_log": bm.extra.get("finetune_log", [])[-1:]}
    if bm.kind == "pixar":
        from pixar.checkpoint import save_checkpoint

        return save_checkpoint(path, bm.lm.model, bm.lm.config, meta=info)
    from harness.baselines import save_gpt2

    return save_gpt2(bm.hf_model, bm.tokenizer, path,
                     {"kind": "gpt2-finetuned", "name": f"{bm.info.get('name', 'gpt2')}-ft-{task_name}",
                      **{k: bm.info[k] for k in ("matched_to", "match") if k in bm.info}, **info})


def load_lm_models(checkpoint: str | None, baselines: list[str], data: TaskData, device: str = "cpu",
                   batch_size: int = 16, ocr: str = "glyph", data_dir: str | None = None, seed: int = 0,
                   finetune=None, save_dir: str | None = None, log: Callable[[str], None] | None = None,
                   ) -> list[AttackModel]:
    """PIXAR / GPT-2 generators for the paper protocol (``harness.bench.load_models``, ``paper_eval``).

    ``finetune``: a ``harness.finetune.FinetuneConfig``; each model is first fine-tuned on
    ``data.train_pairs`` (``harness.bench.finetuned_copy``) and, with ``save_dir``, saved there.
    """
    from harness.bench import finetuned_copy, load_models, paper_eval

    check_lm_paths(checkpoint, baselines)
    if ocr in ("tesseract", "union") and checkpoint:
        from pixar.ocr import TESSERACT_INSTALL, OCRError, tesseract_available

        if not tesseract_available():
            raise OCRError(f"--ocr {ocr} needs Tesseract, which is not installed ({TESSERACT_INSTALL})")
    out = []
    for bm in load_models(checkpoint, list(baselines), device, batch_size, ocr, data_dir, seed):
        info = {k: v for k, v in bm.info.items() if k != "config"}
        if finetune is not None:
            if not data.train_pairs:
                raise AttackTaskError(f"--finetune: {data.name} has no training examples")
            source = info.get("checkpoint") or info.get("spec")
            bm = finetuned_copy(bm, data.train_pairs, finetune, device)
            bm.name = f"{bm.name}+ft-{data.name}"
            info = {**info, "finetuned_on": data.name, "finetune_loss": bm.extra["finetune_log"][-1]["loss"]}
            if save_dir is not None:
                info["saved_to"] = str(save_finetuned(bm, Path(save_dir), data.name, finetune, str(source)))
                if log:
                    log(f"saved fine-tuned {bm.name} to {info['saved_to']}")

        def predict(inputs: list, _bm=copy.copy(bm)) -> list[FirstWordPrediction]:
            examples = [{"idx": i, "prompt": p, "target": ""} for i, p in enumerate(inputs)]
            _, rows = paper_eval(_bm, examples, data.positions, None, batch_size)
            if _bm.kind == "pixar":
                return [FirstWordPrediction(tuple(sorted(r["read"].items())), "ocr") for r in rows]
            return [FirstWordPrediction((("text", r["text"]),), "ci") for r in rows]

        out.append(AttackModel(bm.name, bm.kind, predict, lm_metric(bm.kind, ocr),
                               lm_protocol(bm.kind, data.positions, ocr), info,
                               renderer=bm.lm.renderer if bm.kind == "pixar" else None))
    return out
