"""LAMBADA test set (5,153 passages): loaders for both variants and task definitions.

Data variants:
  * openai (`load_lambada`, the default): `lambada/lambada_test.jsonl` in the data directory
    (`{"text": ...}` per line; OpenAI's detokenised, cased set; the checksum lm-eval uses), or HF
    `EleutherAI/lambada_openai` (config `default`, split `test`) when online.
  * original (`load_lambada_original`): `lambada/lambada_test_plain_text.txt`, the ORIGINAL test set
    (Paperno et al. 2016; lower-cased, tokenised, one passage a line), what HF `lambada` loads and what the
    paper scored (lambada.ipynb `load_dataset('lambada', split='test')`), or HF `lambada` when online.
    `split_original`: words = `text.split()`, target = the last token, context = the others joined by
    spaces (prompt preparation, `process_lambda`, is the protocol's: harness.eval.official_scorers).

Two protocols, kept apart in every table:
  * lm-eval (`pixar_lambada`): lm-eval's `lambada_openai` definition -- context = every word but the
    last joined by spaces, target = " " + last word, loglikelihood; acc = is_greedy, nll = summed
    NLL of the target (pixel NLL for PIXAR, token NLL for GPT-2), perplexity = exp(mean nll).
  * paper: prompt = every word but the last, generate a fixed number of positions (4), read back,
    compare the first word with the target (harness.eval.bench).
"""
from __future__ import annotations

import json
from pathlib import Path

from pixar.paths import DataNotFound, data_dir as resolve_data_dir

from harness.tasks.common import LOGLIKELIHOOD_METRICS, TaskError, loglikelihood_results, offline, to_dataset

LAMBADA_FILE = "lambada/lambada_test.jsonl"
LAMBADA_ORIGINAL_FILE = "lambada/lambada_test_plain_text.txt"
LAMBADA_SIZE = 5153
HF_DATASET = ("EleutherAI/lambada_openai", "default")
HF_ORIGINAL_DATASET = "lambada"


def split_passage(text: str) -> tuple[str, str]:
    """(context, target word): lm-eval's `text.split(' ')[:-1]|join(' ')` and the last word."""
    words = text.split(" ")
    return " ".join(words[:-1]), words[-1]


def lambada_path(data_dir: str | Path | None = None) -> Path | None:
    d = resolve_data_dir(data_dir)
    if d is not None and (d / LAMBADA_FILE).is_file():
        return d / LAMBADA_FILE
    return None


def read_lines(path: str | Path):
    """(line number, line) of a UTF-8 text file; a binary or non-UTF-8 file -> TaskError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            yield from enumerate(f, 1)
    except UnicodeDecodeError as e:
        raise TaskError(f"{path}: not UTF-8 text (a binary file? byte {e.start} of a line: {e.reason})") from None


def nonempty(texts: list, path: str | Path) -> list:
    if not texts:
        raise TaskError(f"{path}: no passages (an empty LAMBADA file)")
    return texts


def read_passages(path: str | Path) -> list[str]:
    """The "text" of every line of a LAMBADA .jsonl file; TaskError names the file and line of a bad one."""
    texts = []
    for n, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            texts.append(row["text"])
        except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
            raise TaskError(f"{path}:{n}: expected a JSON object with a 'text' field") from None
        if not isinstance(texts[-1], str):
            raise TaskError(f"{path}:{n}: the 'text' field must be a string")
    return nonempty(texts, path)


def load_lambada(data_dir: str | Path | None = None, path: str | Path | None = None) -> list[str]:
    """The passages, from `path`, the data directory, or (online only) the HF hub."""
    if path is not None:
        if not Path(path).is_file():
            raise DataNotFound(f"{path}: LAMBADA file not found")
        return read_passages(path)
    local = lambada_path(data_dir)
    if local is not None:
        return read_passages(local)
    if offline():
        raise DataNotFound(f"LAMBADA: {LAMBADA_FILE} not found (set PIXAR_DATA or --data-dir; offline, so "
                           f"HF {HF_DATASET[0]} cannot be fetched)")
    import datasets

    return list(datasets.load_dataset(*HF_DATASET, split="test")["text"])


def split_original(text: str) -> tuple[str, str]:
    """(context, target) of an original-set passage as the notebook does it: `words = txt.split()`,
    context ' '.join(words[:-1]) (not yet detokenised), target words[-1]."""
    words = text.split()
    if len(words) < 2:
        raise TaskError(f"a LAMBADA passage needs a context and a target word, got {text[:60]!r}")
    return " ".join(words[:-1]), words[-1]


def lambada_original_path(data_dir: str | Path | None = None) -> Path | None:
    d = resolve_data_dir(data_dir)
    if d is not None and (d / LAMBADA_ORIGINAL_FILE).is_file():
        return d / LAMBADA_ORIGINAL_FILE
    return None


def read_plain_text(path: str | Path) -> list[str]:
    """One passage a line; a blank line is an error naming file:line (the original file has none)."""
    texts = []
    for n, line in read_lines(path):
        line = line.rstrip("\n")
        if len(line.split()) < 2:
            raise TaskError(f"{path}:{n}: expected a passage (a context and a target word)")
        texts.append(line)
    return nonempty(texts, path)


def load_lambada_original(data_dir: str | Path | None = None, path: str | Path | None = None) -> list[str]:
    """The original (tokenised, lower-cased) passages: `path`, the data directory, or (online) HF `lambada`."""
    if path is not None:
        if not Path(path).is_file():
            raise DataNotFound(f"{path}: LAMBADA plain-text file not found")
        return read_plain_text(path)
    local = lambada_original_path(data_dir)
    if local is not None:
        return read_plain_text(local)
    if offline():
        raise DataNotFound(f"LAMBADA (original): {LAMBADA_ORIGINAL_FILE} not found (set PIXAR_DATA or --data-dir; "
                           f"offline, so HF {HF_ORIGINAL_DATASET} cannot be fetched)")
    import datasets

    return list(datasets.load_dataset(HF_ORIGINAL_DATASET, split="test")["text"])


def _custom_dataset(path: str | None = None, **_: object):
    """lm-eval `custom_dataset` hook: {'test': Dataset of {'text'}}."""
    return {"test": to_dataset([{"text": t} for t in load_lambada(path=path)])}


def lm_eval_task(path: str | Path | None, name: str = "pixar_lambada") -> dict:
    """lm-eval's lambada_openai, reading `path` (absolute) through a custom_dataset loader;
    path None = the HF dataset (online)."""
    source = ({"custom_dataset": _custom_dataset, "dataset_kwargs": {"path": str(Path(path).resolve())}}
              if path is not None else {"dataset_path": HF_DATASET[0], "dataset_name": HF_DATASET[1]})
    return {
        "task": name,
        **source,
        "output_type": "loglikelihood",
        "test_split": "test",
        "doc_to_text": "{{text.split(' ')[:-1]|join(' ')}}",
        "doc_to_target": "{{' '+text.split(' ')[-1]}}",
        "process_results": loglikelihood_results,
        "metric_list": LOGLIKELIHOOD_METRICS,
        "metadata": {"version": 1.0},
    }


def paper_examples(texts: list[str]) -> list[dict]:
    """Paper protocol examples: {'idx', 'prompt', 'target'}."""
    out = []
    for i, t in enumerate(texts):
        prompt, target = split_passage(t)
        out.append({"idx": i, "prompt": prompt, "target": target})
    return out
