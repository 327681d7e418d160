"""Task adapters for ``pixar attack``: examples, models (over harness.models) and one scorer for the suite.

Two task families, each with its own kind of model directory:

``glue`` (cola, sst2, mrpc, qqp, mnli, qnli, rte, wnli; not stsb, a regression task)
    Examples ``{"text": str | (a, b), "label": int}`` from the task's (first) dev split, first ``limit`` rows.
    Models are classifiers fine-tuned by ``pixar bench glue`` (harness.models.load_classifier); prediction =
    argmax class id, score = exact match: "GLUE dev accuracy under attack" (both texts of a pair are
    perturbed). The classifier's ``meta.json`` must name the same task.
``lm`` (babi, lambada): the paper protocol (``LMRunner.first_words``)
    Examples ``{"text": prompt, "target": word}``: bAbI's paper prompt (whole story, in-context ``| answer``
    pairs, question and ``" |"``), LAMBADA's context (every word but the last). The prompt is what gets
    perturbed; the target never is. PIXAR generates 4 (LAMBADA) / 5 (bAbI) positions read back by OCR; GPT-2
    greedily generates 5 tokens. Predictions are ``harness.models.Reads``, which score themselves (PIXAR:
    case-sensitive, g->q fold, any engine; GPT-2 case-insensitively as the official evaluate_gpt2.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pixar.errors import PixarError
from pixar.provenance import slug
from pixar.read.ocr import TESSERACT_INSTALL, OCRError, tesseract_available
from pixar.render.renderer import REPLACEMENT

from harness.eval.bench import PAPER_POSITIONS
from harness.models import (CLASSIFIER_RUNNERS, ClassifierRunner, LMRunner, Reads, classifier_meta_kind,
                            load_classifier, load_lm_runners)
from harness.robustness.suite import exact_match
from harness.tasks import babi, lambada
from harness.tasks.glue import TASK_ORDER, GlueDataError, get_task, load_split

LM_TASKS = ("babi", "lambada")
CLASSIFIER_KINDS = tuple(cls.meta_kind for cls in CLASSIFIER_RUNNERS.values())
GLUE_METRIC = "GLUE dev accuracy (fine-tuned classifier)"
GLUE_PROTOCOL = ("GLUE dev accuracy of the fine-tuned classifier (argmax class vs gold) on perturbed inputs; "
                 "pairs: both texts perturbed")


class AttackConfigError(PixarError, ValueError):
    """A bad `pixar attack` option or preset value; the message names the option or file."""


class AttackTaskError(PixarError, ValueError):
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


@dataclass
class AttackModel:
    """A runner as the suite sees it: ``predict(inputs, transform=None, ids=None) -> predictions``, its score
    label (``metric``), protocol and description. ``positions``: the paper protocol's budget (LMs)."""

    name: str
    runner: LMRunner | ClassifierRunner
    metric: str
    protocol: str
    info: dict
    positions: int | None = None

    @property
    def kind(self) -> str:
        return self.runner.kind

    @property
    def renderer(self):
        return self.runner.renderer

    @property
    def supports_pixels(self) -> bool:
        return self.runner.supports_pixels

    def predict(self, inputs: list, transform=None, ids: list[int] | None = None) -> list:
        if isinstance(self.runner, ClassifierRunner):
            return self.runner.predict(inputs, transform, ids)
        return self.runner.first_words(list(inputs), self.positions, transform, ids)

    def predict_proba(self, texts: list) -> np.ndarray:
        return self.runner.predict_proba(texts)


def glyph_coverage(renderer, texts: list) -> dict:
    """How ``renderer`` draws the characters of ``texts`` (str or pairs): counts of characters in its main
    font, in the fallback font, and with no glyph at all (drawn as the replacement box), + the latter."""
    from collections import Counter

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
    """1.0 / 0.0: a paper-protocol `Reads` scores itself against ``target``; else exact match vs ``label``."""
    if isinstance(prediction, Reads):
        return float(prediction.correct(example["target"]))
    return exact_match(prediction, example)


# ---- data ------------------------------------------------------------------------------------
def task_family(task: str) -> str:
    """'lm' for babi/lambada, 'glue' for a classification GLUE task; AttackTaskError otherwise."""
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
        spec = get_task(task)
        dev = load_split(spec.name, spec.dev_splits[0], "auto", data_dir)
        n = len(dev) if not limit else min(limit, len(dev))
        examples = [{"text": dev.texts[i], "label": int(dev.labels[i])} for i in range(n)]
        return TaskData(spec.name, "glue", examples, dev.source, len(dev), task_key=spec.name)
    if task.lower() == "lambada":
        texts = lambada.load_lambada(data_dir)
        path = lambada.lambada_path(data_dir)
        examples = [{"text": e["prompt"], "target": e["target"]}
                    for e in lambada.paper_examples(texts[:limit] if limit else texts)]
        return TaskData("lambada", "lm", examples, str(path) if path else "hf:EleutherAI/lambada_openai",
                        len(texts), PAPER_POSITIONS["lambada"], task_key="lambada")

    folder = babi.babi_dir(variant, data_dir, babi_dir)
    test = babi.load_babi(babi_task, "test", folder)
    sub = test[:limit] if limit else test
    pairs = [(q.paper_prompt(), q.answer) for q in babi.load_babi(babi_task, "train", folder)] if with_train else []
    examples = [{"text": q.paper_prompt(), "target": q.answer} for q in sub]
    return TaskData(f"babi-qa{babi_task}", "lm", examples, str(babi.babi_file(babi_task, "test", folder)),
                    len(test), PAPER_POSITIONS["babi"], pairs, task_key="babi")


# ---- models ----------------------------------------------------------------------------------
def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def check_glue_paths(paths: list[str], task: str) -> None:
    """Each path is a `pixar bench glue` classifier dir fine-tuned on GLUE ``task`` (reads only meta.json)."""
    import json

    spec = get_task(task)
    for p in paths:
        path = Path(p)
        if not path.is_dir():
            raise AttackTaskError(f"{p}: classifier directory does not exist (fine-tune one with `pixar bench glue`)")
        kind = classifier_meta_kind(path)
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
    check_glue_paths(paths, task)
    spec = get_task(task)
    models = []
    for p in paths:
        path = Path(p)
        short = path.parent.name if path.name == spec.name and path.parent.name else path.name
        runner = load_classifier(path, device, batch_size)
        runner.name = f"{runner.kind}:{short}"
        info = {"dir": str(path), "kind": runner.meta_kind,
                **{k: v for k, v in runner.info.items() if k != "label_names"},
                "label_names": list(runner.info.get("label_names") or [])}
        models.append(AttackModel(runner.name, runner, GLUE_METRIC, GLUE_PROTOCOL, info))
    for m, name in zip(models, _unique([m.name for m in models])):
        m.name = m.runner.name = name
    return models


def check_lm_paths(checkpoint: str | None, baselines: list[str]) -> None:
    """Reject GLUE classifier dirs given for a generation task, with a one-line reason."""
    for p in ([checkpoint] if checkpoint else []) + list(baselines):
        if classifier_meta_kind(Path(p)) in CLASSIFIER_KINDS:
            raise AttackTaskError(f"{p}: a fine-tuned GLUE classifier; bAbI/LAMBADA need a PIXAR LM checkpoint "
                                  "(--checkpoint) or a GPT-2 LM folder/hub name (--baseline)")


def save_finetuned(runner: LMRunner, folder: Path, task_name: str, fc, source: str) -> Path:
    """Write a fine-tuned runner where its kind's `load` reads it back (name ends "+ft-<task>")."""
    info = {"finetuned_on": task_name, "finetune": asdict(fc), "source": source,
            "finetune_log": runner.finetune_log[-1:]}
    return runner.save(folder / slug(runner.name), info)


def load_lm_models(checkpoint: str | None, baselines: list[str], data: TaskData, device: str = "cpu",
                   batch_size: int = 16, ocr: str = "glyph", data_dir: str | None = None, seed: int = 0,
                   finetune=None, save_dir: str | None = None, log: Callable[[str], None] | None = None,
                   ) -> list[AttackModel]:
    """PIXAR / GPT-2 generators for the paper protocol. ``finetune``: a ``harness.models.finetune.TaskFinetuneConfig``;
    each model is first fine-tuned on ``data.train_pairs`` (``LMRunner.finetune``) and, with ``save_dir``, saved."""
    check_lm_paths(checkpoint, baselines)
    if ocr in ("tesseract", "union") and checkpoint:
        if not tesseract_available():
            raise OCRError(f"--ocr {ocr} needs Tesseract, which is not installed ({TESSERACT_INSTALL})")
    out = []
    for runner in load_lm_runners(checkpoint, list(baselines), device, batch_size, ocr, data_dir, seed):
        info = {k: v for k, v in runner.info.items() if k != "config"}
        if finetune is not None:
            if not data.train_pairs:
                raise AttackTaskError(f"--finetune: {data.name} has no training examples")
            source = info.get("checkpoint") or info.get("spec")
            runner = runner.finetune(data.train_pairs, finetune)
            runner.name = f"{runner.name}+ft-{data.name}"
            info = {**info, "finetuned_on": data.name, "finetune_loss": runner.finetune_log[-1]["loss"],
                    "finetune_summary": runner.finetune_summary}
            if save_dir is not None:
                info["saved_to"] = str(save_finetuned(runner, Path(save_dir), data.name, finetune, str(source)))
                if log:
                    log(f"saved fine-tuned {runner.name} to {info['saved_to']}")
        out.append(AttackModel(runner.name, runner, runner.paper_metric(ocr),
                               runner.paper_protocol(data.positions, ocr), info, data.positions))
    return out
