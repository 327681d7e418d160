"""Zero-shot GLUE through lm-eval (multiple choice by loglikelihood), with lm-eval's own GLUE prompts.

A different protocol from `pixar bench glue`'s fine-tuned numbers: the model is never trained on the task;
each choice's continuation is scored by `loglikelihood` (PIXAR: pixel NLL of the rendered choice; GPT-2:
token log-probability) and the best choice is the prediction. Tables label it "zero-shot (lm-eval)" and never
share a column with fine-tuned results.

Prompts and choices follow lm-eval 0.4's `tasks/glue/<task>/default.yaml`; labels use HF `nyu-mll/glue`
numbering (harness.tasks.glue), so the choice index equals the label. Data comes from the local dev TSVs
(harness.tasks.glue.load_split) through a `custom_dataset` loader: offline, no HF cache.
"""
from __future__ import annotations

from pathlib import Path

from harness.tasks.common import TaskError, to_dataset
from harness.tasks.glue import load_split

# task -> (doc_to_text, choices in label order, metrics)
PROMPTS = {
    "sst2": ("{{sentence}}\nQuestion: Is this sentence positive or negative?\nAnswer:", ["negative", "positive"], ("acc",)),
    "cola": ("{{sentence}}\nQuestion: Does this sentence make sense?\nAnswer:", ["no", "yes"], ("mcc",)),
    "mrpc": ("Sentence 1: {{sentence1}}\nSentence 2: {{sentence2}}\nQuestion: Do both sentences mean the same thing?"
             "\nAnswer:", ["no", "yes"], ("acc", "f1")),
    "rte": ("{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:", ["True", "False"], ("acc",)),
    "qnli": ("{{question}}\n{{sentence}}\nQuestion: Does this response answer the question?\nAnswer:", ["yes", "no"], ("acc",)),
    "wnli": ("{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:", ["False", "True"], ("acc",)),
}
FIELDS = {"qnli": ("question", "sentence")}  # pair field names in the prompt (default sentence1, sentence2)


def _custom_dataset(task: str = "", data_dir: str | None = None, **_: object):
    """lm-eval `custom_dataset` hook: {'validation': Dataset} of the task's local dev split."""
    data = load_split(task, "validation", "local", data_dir)
    a, b = FIELDS.get(task, ("sentence1", "sentence2"))
    rows = []
    for text, label in zip(data.texts, data.labels.tolist()):
        row = {a: text[0], b: text[1]} if isinstance(text, tuple) else {"sentence": text}
        rows.append({**row, "label": int(label)})
    return {"validation": to_dataset(rows)}


def lm_eval_task(task: str, data_dir: str | Path | None = None) -> dict:
    """A run-time lm-eval task dict for zero-shot `task` (one of PROMPTS) on the local dev set."""
    if task not in PROMPTS:
        raise TaskError(f"no zero-shot prompt for GLUE task {task!r} (have: {', '.join(PROMPTS)})")
    text, choices, metrics = PROMPTS[task]
    return {
        "task": f"pixar_glue_{task}_zeroshot",
        "custom_dataset": _custom_dataset,
        "dataset_kwargs": {"task": task, "data_dir": str(Path(data_dir).resolve()) if data_dir else None},
        "output_type": "multiple_choice",
        "validation_split": "validation",
        "doc_to_text": text,
        "doc_to_target": "label",
        "doc_to_choice": choices,
        "metric_list": [{"metric": m} for m in metrics],
        "metadata": {"version": 1.0},
    }
