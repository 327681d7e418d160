"""GLUE data and metrics for the fine-tuned protocol (the paper's downstream evaluation).

Data comes from the canonical GLUE TSVs under `$PIXAR_DATA/glue/<Folder>/` (as written by the official
`download_glue_data.py`) or from HF `nyu-mll/glue` online (`source="hf"`; `datasets` is imported lazily).
Rows are split on tabs with no quote handling (QUOTE_NONE, as GLUE's own processors do), so STS-B's and
MRPC's stray `"` characters stay literal text; MRPC's UTF-8 BOM is stripped; CoLA train/dev have no header.
A row with the wrong number of fields or an unreadable label raises `GlueDataError("<file>:<line>: ...")`.

Labels follow HF `nyu-mll/glue` (so local and online data agree):

    task   inputs (text_a, text_b)      labels
    cola   sentence                     0 unacceptable, 1 acceptable          (local col 1 of 4, no header)
    sst2   sentence                     0 negative, 1 positive
    mrpc   #1 String, #2 String         0 not_equivalent, 1 equivalent      (local column "Quality")
    qqp    question1, question2         0 not_duplicate, 1 duplicate        (local column "is_duplicate")
    stsb   sentence1, sentence2         similarity score, float in [0, 5]   (regression)
    mnli   premise, hypothesis          0 entailment, 1 neutral, 2 contradiction (local: derived 3-column form)
    qnli   question, sentence           0 entailment, 1 not_entailment      (local: the label name)
    rte    sentence1, sentence2         0 entailment, 1 not_entailment      (local: the label name)
    wnli   sentence1, sentence2         0 not_entailment, 1 entailment      (local: 0/1)

Metrics (GLUE's official ones), implemented here with numpy: CoLA Matthews correlation; accuracy;
MRPC/QQP accuracy + F1 of the positive class; STS-B Pearson + Spearman (average ranks for ties).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixar.errors import PixarError
from pixar.paths import DataNotFound, data_dir


class GlueDataError(PixarError, ValueError):
    """Malformed or missing GLUE data; the message names the file (and line) or the split."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    hf_config: str
    folder: str
    """Folder under `<data>/glue/`."""
    files: dict
    """split -> local file name (splits use HF names: train, validation, validation_matched, ...)."""
    header: bool
    columns: tuple
    """(text_a, text_b or None, label): header names when `header`, else 0-based indices."""
    num_fields: int | None
    """Fields per row for header-less files (header files: the header's field count)."""
    hf_fields: tuple
    """(text_a, text_b or None) field names in `nyu-mll/glue`."""
    label_names: tuple | None
    """Class names by label id; None = regression."""
    label_format: str
    """How the local file writes labels: 'index' (0/1/2), 'name' (a label name) or 'float'."""
    metrics: tuple
    dev_splits: tuple

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def main_metric(self) -> str:
        """The metric that selects the best dev evaluation: GLUE's first-listed one (MRPC/QQP F1, STS-B Pearson)."""
        return self.metrics[0]

TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("cola", "cola", "CoLA", {"train": "train.tsv", "validation": "dev.tsv"}, False, (3, None, 1), 4,
             ("sentence", None), ("unacceptable", "acceptable"), "index", ("mcc",), ("validation",)),
    TaskSpec("sst2", "sst2", "SST-2", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("sentence", None, "label"), None, ("sentence", None), ("negative", "positive"), "index",
             ("accuracy",), ("validation",)),
    TaskSpec("mrpc", "mrpc", "MRPC", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("#1 String", "#2 String", "Quality"), None, ("sentence1", "sentence2"),
             ("not_equivalent", "equivalent"), "index", ("f1", "accuracy"), ("validation",)),
    TaskSpec("qqp", "qqp", "QQP", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("question1", "question2", "is_duplicate"), None, ("question1", "question2"),
             ("not_duplicate", "duplicate"), "index", ("f1", "accuracy"), ("validation",)),
    TaskSpec("stsb", "stsb", "STS-B", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("sentence1", "sentence2", "score"), None, ("sentence1", "sentence2"), None, "float",
             ("pearson", "spearman"), ("validation",)),
    TaskSpec("mnli", "mnli", "MNLI_derived",
             {"train": "train.tsv", "validation_matched": "valid_matched.tsv",
              "validation_mismatched": "valid_mismatched.tsv"}, False, (0, 1, 2), 3, ("premise", "hypothesis"),
             ("entailment", "neutral", "contradiction"), "index", ("accuracy",),
             ("validation_matched", "validation_mismatched")),
    TaskSpec("qnli", "qnli", "QNLI", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("question", "sentence", "label"), None, ("question", "sentence"), ("entailment", "not_entailment"),
             "name", ("accuracy",), ("validation",)),
    TaskSpec("rte", "rte", "RTE", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("sentence1", "sentence2", "label"), None, ("sentence1", "sentence2"),
             ("entailment", "not_entailment"), "name", ("accuracy",), ("validation",)),
    TaskSpec("wnli", "wnli", "WNLI", {"train": "train.tsv", "validation": "dev.tsv"}, True,
             ("sentence1", "sentence2", "label"), None, ("sentence1", "sentence2"),
             ("not_entailment", "entailment"), "index", ("accuracy",), ("validation",)),
]}
TASK_ORDER = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
SPLIT_TAGS = {"validation": "", "validation_matched": "-m", "validation_mismatched": "-mm"}


def get_task(name: str) -> TaskSpec:
    key = name.lower().replace("-", "")
    if key not in TASKS:
        raise GlueDataError(f"unknown GLUE task {name!r} (known: {', '.join(TASK_ORDER)})")
    return TASKS[key]


@dataclass
class GlueData:
    """One split: `texts[i]` is a string or an (a, b) pair; `labels` int64 [N] (float32 [N] for STS-B)."""

    task: str
    split: str
    texts: list
    labels: np.ndarray
    source: str
    """Where it came from: a file path or `hf:nyu-mll/glue/<config>:<split>`."""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int, seed: int) -> "GlueData":
        """A seeded random subset of n examples (kept in file order); n <= 0 or >= len = everything."""
        if n <= 0 or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return GlueData(self.task, self.split, [self.texts[i] for i in idx], self.labels[idx], self.source)


# ---- local TSV files ---------------------------------------------------------------------------
def local_path(spec: TaskSpec, split: str, data: str | os.PathLike | None = None) -> Path:
    if split not in spec.files:
        raise GlueDataError(f"{spec.name}: no split {split!r} (splits: {', '.join(spec.files)})")
    root = data_dir(data)
    if root is None:
        raise GlueDataError(f"{spec.name}/{split}: no data directory; pass --data-dir or set PIXAR_DATA "
                            f"(or use --source hf for HF nyu-mll/glue online)")
    return root / "glue" / spec.folder / spec.files[split]


def has_local(spec: TaskSpec, split: str, data: str | os.PathLike | None = None) -> bool:
    try:
        return local_path(spec, split, data).is_file()
    except (GlueDataError, DataNotFound):
        return False


def _parse_label(spec: TaskSpec, raw: str, where: str):
    raw = raw.strip()
    if spec.label_format == "float":
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise GlueDataError(f"{where}: label {raw!r} is not a finite number")
        return value
    if spec.label_format == "name":
        if raw not in spec.label_names:
            raise GlueDataError(f"{where}: label {raw!r} is not one of {list(spec.label_names)}")
        return spec.label_names.index(raw)
    if raw not in [str(i) for i in range(len(spec.label_names))]:
        raise GlueDataError(f"{where}: label {raw!r} is not a class id in 0..{len(spec.label_names) - 1}")
    return int(raw)


def read_tsv(spec: TaskSpec, path: str | os.PathLike, split: str = "?") -> GlueData:
    """Parse one canonical GLUE TSV (see the module docstring for the per-task layout)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # utf-8-sig drops MRPC's BOM
    except FileNotFoundError:
        raise GlueDataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise GlueDataError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    lines = text.split("\n")  # not splitlines(): U+2028 and friends can occur inside sentences
    if lines and lines[-1] == "":
        lines.pop()
    start, (a_col, b_col, y_col), n_fields = 0, spec.columns, spec.num_fields
    if spec.header:
        if not lines:
            raise GlueDataError(f"{path}:1: empty file (expected a header row)")
        header = lines[0].rstrip("\r").split("\t")
        missing = [c for c in (a_col, b_col, y_col) if c is not None and c not in header]
        if missing:
            raise GlueDataError(f"{path}:1: header lacks column(s) {missing} (has {header})")
        a_col, y_col = header.index(a_col), header.index(y_col)
        b_col = header.index(b_col) if b_col is not None else None
        start, n_fields = 1, len(header)
    texts, labels = [], []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        where = f"{path}:{lineno}"
        fields = line.rstrip("\r").split("\t")
        if len(fields) != n_fields:
            raise GlueDataError(f"{where}: expected {n_fields} tab-separated fields, found {len(fields)}")
        labels.append(_parse_label(spec, fields[y_col], where))
        texts.append(fields[a_col] if b_col is None else (fields[a_col], fields[b_col]))
    dtype = np.float32 if spec.is_regression else np.int64
    return GlueData(spec.name, split, texts, np.asarray(labels, dtype=dtype), str(path))


def load_local(task: str, split: str, data: str | os.PathLike | None = None) -> GlueData:
    spec = get_task(task)
    path = local_path(spec, split, data)
    if not path.is_file():
        note = " (QQP is not in the offline data: its dev set is over the 4 MiB copy limit)" if spec.name == "qqp" else ""
        raise GlueDataError(f"{path}: {spec.name} {split} split is missing locally{note}; "
                            f"--source hf loads it from HF nyu-mll/glue online")
    return read_tsv(spec, path, split)


# ---- HF nyu-mll/glue ---------------------------------------------------------------------------
def load_hf(task: str, split: str) -> GlueData:
    """Load from the HF hub (`nyu-mll/glue`); needs network (or a warm datasets cache)."""
    spec = get_task(task)
    if split not in spec.files:
        raise GlueDataError(f"{spec.name}: no split {split!r} (splits: {', '.join(spec.files)})")
    try:
        import datasets

        ds = datasets.load_dataset("nyu-mll/glue", spec.hf_config, split=split)
    except Exception as e:  # network, offline mode, cache: all mean "not available"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise GlueDataError(f"hf:nyu-mll/glue/{spec.hf_config}:{split}: could not load ({first}); "
                            "needs network access (unset HF_DATASETS_OFFLINE) or a cached copy") from None
    a_field, b_field = spec.hf_fields
    a = ds[a_field]
    texts = list(a) if b_field is None else list(zip(a, ds[b_field]))
    labels = np.asarray(ds["label"], dtype=np.float32 if spec.is_regression else np.int64)
    if not spec.is_regression and (labels < 0).any():
        raise GlueDataError(f"hf:nyu-mll/glue/{spec.hf_config}:{split}: has no labels (a test split?)")
    return GlueData(spec.name, split, texts, labels, f"hf:nyu-mll/glue/{spec.hf_config}:{split}")


def load_split(task: str, split: str, source: str = "local", data: str | os.PathLike | None = None) -> GlueData:
    """source: 'local' (the TSVs under <data>/glue), 'hf' (online) or 'auto' (local if the file exists, else hf)."""
    if source not in ("local", "hf", "auto"):
        raise GlueDataError(f"source must be local|hf|auto, got {source!r}")
    if source == "hf" or (source == "auto" and not has_local(get_task(task), split, data)):
        return load_hf(task, split)
    return load_local(task, split, data)


# ---- metrics -----------------------------------------------------------------------------------
def accuracy(preds, labels) -> float:
    preds, labels = np.asarray(preds), np.asarray(labels)
    return float((preds == labels).mean()) if labels.size else math.nan


def f1_binary(preds, labels, positive: int = 1) -> float:
    """F1 of the positive class: 2TP / (2TP + FP + FN); 0 when there are no positives at all."""
    preds, labels = np.asarray(preds) == positive, np.asarray(labels) == positive
    tp = float(np.sum(preds & labels))
    denom = 2 * tp + float(np.sum(preds & ~labels)) + float(np.sum(~preds & labels))
    return 2 * tp / denom if denom else 0.0


def matthews_corrcoef(preds, labels) -> float:
    """Multi-class MCC from the confusion matrix (Gorodkin's R_K; = the binary phi coefficient).
    0 when either side is constant (the undefined case, as sklearn reports it)."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes = np.union1d(preds, labels)
    conf = np.zeros((classes.size, classes.size))
    np.add.at(conf, (np.searchsorted(classes, labels), np.searchsorted(classes, preds)), 1)
    t, p = conf.sum(1), conf.sum(0)  # true / predicted counts per class
    n, c = conf.sum(), np.trace(conf)
    denom = math.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float((c * n - t @ p) / denom) if denom else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy / denom) if denom else math.nan


def rankdata(x) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(x, y) -> float:
    return pearson(rankdata(x), rankdata(y))


METRIC_FNS = {"accuracy": accuracy, "f1": f1_binary, "mcc": matthews_corrcoef, "pearson": pearson,
              "spearman": spearman}


def compute_metrics(task: str, predictions, labels) -> dict[str, float]:
    """predictions: class ids [N] (or scores [N] for STS-B); labels [N]. -> {metric: value}."""
    spec = get_task(task)
    return {m: METRIC_FNS[m](predictions, labels) for m in spec.metrics}
