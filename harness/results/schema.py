"""The one results schema: every command of the harness (bench lambada / babi / glue, glue zero-shot, attack)
writes `<run folder>/summary.json` through `write_summary`, and `harness.results.tables.collect` reads only this.

    {"schema_version": 1,
     "command":   "bench lambada",                  which command wrote it
     "created":   "2025-01-01T12:00:00+0000",
     "protocol":  {metric key: what the number is}, one description per metric key used below
     "config":    {...},                            every setting that made the run (paths portable, see below)
     "seed":      0,
     "versions":  pixar.provenance.versions(),
     "data":      {...},                            sources (portable paths / hub ids) and example counts
     "models":    [{"name", "kind", ...}],
     "files":     ["predictions-....jsonl", ...],   per-example and table files, relative to the run folder
     "metrics":   [{"task", "model", "protocol", "metric", "value", "n", "ci_low", "ci_high", "interval"}],
     ...command-specific fields}

Intervals: 95% Wilson score interval for proportions (accuracy, readability: "wilson95"), value +- 1.96
stderr where lm-eval reports a standard error ("normal95 (lm-eval stderr)"), else none (null bounds).
Portable paths: every string in a record that is an absolute path becomes "$PIXAR_DATA/<relative>" under the
data folder, else a path relative to the run folder; nothing absolute is ever written.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pixar.config_io import atomic_write_text
from pixar.errors import PixarError
from pixar.provenance import versions

from harness.results.stats import wilson_interval

SCHEMA_VERSION = 1
Z95 = 1.959963984540054
DATA_PREFIX = "$PIXAR_DATA"


class ResultsError(PixarError, ValueError):
    """A summary.json that is not of this schema; the message names the file."""


def wilson_bounds(k: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials (NaNs for n = 0): harness.results.stats.wilson_interval."""
    if n <= 0:
        return math.nan, math.nan

    iv = wilson_interval(int(round(k)), n)
    return iv.low, iv.high


@dataclass
class Metric:
    """One number: `value` of `metric` for `model` on `task`, under `protocol`, over n examples."""

    task: str
    model: str
    protocol: str
    metric: str
    value: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    interval: str | None = None
    note: str | None = None  # e.g. "at chance" (harness.results.reference)

    def to_json(self) -> dict:
        out = asdict(self)
        if out["note"] is None:
            del out["note"]
        for k in ("value", "ci_low", "ci_high"):
            v = out[k]
            out[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return out


def proportion(task: str, model: str, protocol: str, metric: str, value: float, n: int) -> Metric:
    """A fraction of n examples (accuracy, readability) with its Wilson interval."""
    lo, hi = wilson_bounds(round(float(value) * n), n) if n else (None, None)
    return Metric(task, model, protocol, metric, float(value), int(n), lo, hi, "wilson95" if n else None)


def with_stderr(task: str, model: str, protocol: str, metric: str, value: float, n: int,
                stderr: float | None) -> Metric:
    """A mean with lm-eval's standard error: value +- 1.96 stderr (no interval without a finite stderr)."""
    if stderr is None or not isinstance(stderr, (int, float)) or not math.isfinite(stderr):
        return Metric(task, model, protocol, metric, float(value), int(n))
    return Metric(task, model, protocol, metric, float(value), int(n), value - Z95 * stderr, value + Z95 * stderr,
                  "normal95 (lm-eval stderr)")


def point(task: str, model: str, protocol: str, metric: str, value: float, n: int) -> Metric:
    """A number with no interval (correlations, F1, MCC, counts)."""
    return Metric(task, model, protocol, metric, float(value), int(n))


# ---- portable paths ---------------------------------------------------------------------------------
def portable_path(path: str | os.PathLike, run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> str:
    """An absolute path as "$PIXAR_DATA/<rel>" (under the data folder) or relative to the run folder."""
    p = Path(os.path.abspath(path))
    if data_dir is not None:
        d = Path(os.path.abspath(data_dir))
        if p == d or d in p.parents:
            return f"{DATA_PREFIX}/{p.relative_to(d).as_posix()}".rstrip("/")
    return Path(os.path.relpath(p, os.path.abspath(run_dir))).as_posix()


def portable(obj: Any, run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Any:
    """`obj` (JSON-like) with every absolute path made portable: whole strings, and data / run folder paths
    inside longer strings (lm-eval's model_args, command lines)."""
    roots = []
    if data_dir is not None:
        roots.append((os.path.abspath(data_dir), DATA_PREFIX))
    roots.append((os.path.abspath(run_dir), "."))

    def fix(value):
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [fix(v) for v in value]
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str):
            return value
        if os.path.isabs(value) and "\n" not in value and len(value) < 4096:
            return portable_path(value, run_dir, data_dir)
        for root, label in roots:
            value = value.replace(root + os.sep, label + "/").replace(root, label)
        return value

    return fix(obj)


# ---- writing / reading ------------------------------------------------------------------------------
def json_default(obj: Any) -> Any:
    """JSON for what json cannot write itself: a callable by its import path ("module.qualname", data only), paths
    and other objects by str(), numpy scalars/arrays as numbers/lists. An object whose str() is a memory-address
    repr ("<... at 0x...>") is refused: a result file records data, never an object's identity."""
    import re

    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '') or ''}.{obj.__qualname__}".lstrip(".")
    text = str(obj)
    if re.search(r" at 0x[0-9a-fA-F]+>?", text):
        raise TypeError(f"not JSON data: {type(obj).__name__} object {text[:80]!r} (record its fields, not the object)")
    return text


def dumps(obj: Any, **kwargs) -> str:
    """json.dumps with json_default (the one JSON writer of result files)."""
    return json.dumps(obj, default=json_default, **kwargs)


def write_json(path: Path, obj: Any, run_dir: Path, data_dir: str | None = None) -> Path:
    """Any result JSON (lm-eval's own, GLUE records) with portable paths, atomically."""
    atomic_write_text(path, dumps(portable(obj, run_dir, data_dir), indent=2))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    atomic_write_text(path, "".join(dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSONL file, or of its committed gzipped copy (`<path>.gz`) when the file itself is absent."""
    import gzip

    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    if not path.exists() and gz.exists():
        text = gzip.decompress(gz.read_bytes()).decode("utf-8")
    elif path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        raise FileNotFoundError(f"{path}: no such file (nor {gz.name})")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_summary(out: Path, *, command: str, protocol: dict[str, str], config: dict, seed: int | None, data: dict,
                  models: list[dict], files: list[str | Path], metrics: list[Metric], data_dir: str | None = None,
                  **extra) -> dict:
    """Write <out>/summary.json in this schema (see the module docstring) and return it."""
    out = Path(out)
    names = sorted({Path(os.path.relpath(os.path.abspath(f), os.path.abspath(out))).as_posix() for f in files})
    used = {m.metric for m in metrics}
    missing = sorted(used - set(protocol))
    if missing:
        raise ResultsError(f"{out / 'summary.json'}: metric(s) {missing} have no protocol description")
    summary = {"schema_version": SCHEMA_VERSION, "command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "protocol": {k: v for k, v in protocol.items() if k in used}, "config": config, "seed": seed,
               "versions": versions(), "data": data, "models": models, "files": names,
               "metrics": [m.to_json() for m in metrics], **extra}
    summary = portable(summary, out, data_dir)
    atomic_write_text(out / "summary.json", dumps(summary, indent=2))
    return summary


def read_summary(path: str | os.PathLike) -> dict:
    """A summary.json of this schema; ResultsError (naming the file) for anything else."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not UTF-8 text (a binary file?); rerun the command that wrote it") from None
    except RecursionError:
        raise ResultsError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(summary, dict) or summary.get("schema_version") != SCHEMA_VERSION:
        found = summary.get("schema_version") if isinstance(summary, dict) else None
        raise ResultsError(f"{path}: not a harness results summary (schema_version {found!r}, "
                           f"expected {SCHEMA_VERSION}); rerun the command that wrote it")
    return summary
