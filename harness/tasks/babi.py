"""bAbI QA tasks 1-20 (v1.2, English): parser, the two prompt formats, task definitions.

Files: `babi/tasks_1-20_v1-2/en/` (1k) or `en-10k/` in the data directory, or any folder holding
`qa<N>_<name>_<split>.txt` (e.g. the output of harness.tasks.babi_generator). Line format:

    <n> <statement>                     a story line; n = 1 starts a new story
    <n> <question>\t<answer>\t<support>  a question (answer may be a comma list, e.g. "milk,football")

Every question is one example; earlier lines of its story are its context. `last_question_per_story` keeps
one example per story, the last question (4 answered questions in context for task 1): the official
sample construction (LatentPixel/utils.py `gen_babi`, one (prompt, target) per story). `generated_task1`
builds those stories with harness.tasks.babi_generator (the paper's 10,000 generated stories, seeded).

Prompt formats:
  * paper (PIXAR's babi.ipynb): story lines joined by single spaces; each earlier question is followed by
    " | <answer>" (in-context examples); the prompt ends with the question and " |"; target = the answer:
        "Mary moved to the bathroom. John went to the hallway. Where is Mary? | bathroom ... Where is Daniel? |"
  * lm-eval (`babi.yaml`, Muennighoff/babi): "Passage: {passage}Question: {question}\nAnswer:" where the
    passage is the story's statements so far, one per line (earlier questions left out), target " {answer}".

Normalisation of the lm-eval format's exact match (ours, because a pixel model's read-back has no leading
space and no newline to stop at): the response is cut at "\n"/"Passage:", its first whitespace-delimited
word is taken (regex filter `\S+`), then compared to the gold answer ignoring case, punctuation and
surrounding whitespace. Reported as "lm-eval exact_match (first word, case/punct-insensitive)".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pixar.paths import DataNotFound, data_dir as resolve_data_dir

from harness.tasks import babi_generator as babi_gen
from harness.tasks.common import TaskError, to_dataset

BABI_ROOT = "babi/tasks_1-20_v1-2"
VARIANTS = ("en", "en-10k")
TASK_IDS = tuple(range(1, 21))
_QUESTION = re.compile(r"^(\d+) ([^\t]*)\t([^\t]*)\t?([\d ]*)$")
_STATEMENT = re.compile(r"^(\d+) (.*)$")


@dataclass
class BabiQuestion:
    task: int
    story: int  # index of the story within its file
    source: str  # "file:line" of the question
    context: list[tuple[str, str | None]] = field(default_factory=list)  # earlier lines: (text, answer or None)
    question: str = ""
    answer: str = ""
    support: list[int] = field(default_factory=list)

    def paper_prompt(self) -> str:
        parts = [text if ans is None else f"{text} | {ans}" for text, ans in self.context]
        return " ".join(parts + [f"{self.question} |"])

    def lm_eval_doc(self) -> dict:
        passage = "".join(f"{text}\n" for text, ans in self.context if ans is None)
        return {"passage": passage, "question": self.question, "answer": self.answer, "task": self.task}

    def finetune_text(self) -> str:
        """The paper prompt followed by the answer: what --finetune trains on."""
        return f"{self.paper_prompt()} {self.answer}"


def parse_babi_file(path: str | Path, task: int = 0) -> list[BabiQuestion]:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            questions = parse_babi_lines(f, task, str(path))
    except UnicodeDecodeError as e:
        raise TaskError(f"{path}: not UTF-8 text (a binary file? {e.reason})") from None
    if not questions:
        raise TaskError(f"{path}: no bAbI questions (an empty file?)")
    return questions


def parse_babi_lines(raw_lines, task: int = 0, source: str = "<text>") -> list[BabiQuestion]:
    """Questions of bAbI-format lines (an iterable of str); errors name `source`:line."""
    questions: list[BabiQuestion] = []
    lines: list[tuple[str, str | None]] = []
    story, last_n = -1, 0
    for ln, raw in enumerate(raw_lines, 1):
        raw = raw.rstrip("\n").rstrip("\r")
        if not raw.strip():
            continue
        m = _QUESTION.match(raw) if "\t" in raw else _STATEMENT.match(raw)
        if m is None:
            raise TaskError(f"{source}:{ln}: not a bAbI line (expected '<n> text' or '<n> question<TAB>answer<TAB>support')")
        n = int(m.group(1))
        if n == 1 or n <= last_n:
            story, lines = story + 1, []
        last_n = n
        text = m.group(2).strip()
        if "\t" in raw:
            support = [int(s) for s in m.group(4).split()]
            questions.append(BabiQuestion(task, story, f"{source}:{ln}", list(lines), text, m.group(3).strip(), support))
            lines.append((text, m.group(3).strip()))
        else:
            lines.append((text, None))
    return questions


def last_question_per_story(questions: list[BabiQuestion]) -> list[BabiQuestion]:
    """One example per story: its last question, in story order (gen_babi's sample construction)."""
    last: dict[int, BabiQuestion] = {}
    for q in questions:
        last[q.story] = q
    return [last[s] for s in sorted(last)]


def generated_task1(num_stories: int, seed: int, style: str = "lua") -> list[BabiQuestion]:
    """All questions of `num_stories` task-1 stories from harness.tasks.babi_generator (`babi-tasks 1 <num_stories>`)."""
    text = babi_gen.format_stories(babi_gen.generate_stories(num_stories, seed, style))
    return parse_babi_lines(text.splitlines(), 1, f"babi_gen(stories={num_stories}, seed={seed}, style={style})")


def babi_dir(variant: str = "en", data_dir: str | Path | None = None, folder: str | Path | None = None) -> Path:
    """The folder with the qa*.txt files: `folder` if given, else <data>/babi/tasks_1-20_v1-2/<variant>."""
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataNotFound(f"{folder}: bAbI folder not found")
        return folder
    if variant not in VARIANTS:
        raise TaskError(f"unknown bAbI variant {variant!r} (known: {', '.join(VARIANTS)})")
    d = resolve_data_dir(data_dir)
    if d is None:
        raise DataNotFound("bAbI: no data directory (set PIXAR_DATA or pass --data-dir / --babi-dir)")
    path = d / BABI_ROOT / variant
    if not path.is_dir():
        raise DataNotFound(f"bAbI: {path} not found")
    return path


def babi_file(task: int, split: str, folder: Path) -> Path:
    if task not in TASK_IDS:
        raise TaskError(f"unknown bAbI task {task} (tasks are 1-20)")
    if split not in ("train", "test"):
        raise TaskError(f"bAbI split must be train or test, got {split!r}")
    found = sorted(folder.glob(f"qa{task}_*_{split}.txt"))
    if not found:
        hint = " (en-10k has no qa3 train file here: use --variant en)" if task == 3 and "10k" in folder.name else ""
        raise DataNotFound(f"bAbI task {task} {split}: no {folder}/qa{task}_*_{split}.txt{hint}")
    return found[0]


def task_name(task: int, folder: Path) -> str:
    """e.g. 'qa1_single-supporting-fact' (from the file name, falling back to 'qa<N>')."""
    found = sorted(folder.glob(f"qa{task}_*_*.txt"))
    return found[0].name.rsplit("_", 1)[0] if found else f"qa{task}"


def load_babi(task: int, split: str, folder: Path) -> list[BabiQuestion]:
    return parse_babi_file(babi_file(task, split, folder), task)


def parse_task_list(spec: str) -> list[int]:
    """'1,2,5-7' or 'all' -> sorted task ids; bad entries -> TaskError naming them."""
    if spec.strip().lower() == "all":
        return list(TASK_IDS)
    ids: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        try:
            a, b = (int(x) for x in part.split("-", 1)) if "-" in part else (int(part), int(part))
        except ValueError:
            raise TaskError(f"bad bAbI task list {spec!r}: {part!r} is not a number or range") from None
        if a > b:
            raise TaskError(f"bad bAbI task list {spec!r}: {part!r} is a reversed (empty) range; write {b}-{a}")
        ids.update(range(a, b + 1))
    if not ids:
        raise TaskError(f"bad bAbI task list {spec!r}: empty (name tasks such as 1,2 or 1-20)")
    bad = sorted(i for i in ids if i not in TASK_IDS)
    if bad:
        raise TaskError(f"unknown bAbI task(s) {bad} (tasks are 1-20)")
    return sorted(ids)


def _custom_dataset(path: str | None = None, task: int = 0, **_: object):
    """lm-eval `custom_dataset` hook: {'test': Dataset of lm-eval-format docs}."""
    return {"test": to_dataset([q.lm_eval_doc() for q in parse_babi_file(path, task)])}


def lm_eval_task(task: int, path: str | Path, name: str | None = None, max_gen_toks: int = 32) -> dict:
    """lm-eval's babi.yaml prompt on one local file, with the documented exact-match normalisation.
    max_gen_toks is tokens for GPT-2 and characters for PIXAR (its adapter's unit)."""
    return {
        "task": name or f"pixar_babi_qa{task}",
        "custom_dataset": _custom_dataset,
        "dataset_kwargs": {"path": str(Path(path).resolve()), "task": task},
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": "Passage: {{passage}}Question: {{question}}\nAnswer:",
        "doc_to_target": " {{answer}}",
        "target_delimiter": "",
        "generation_kwargs": {"until": ["\n", "Passage:"], "do_sample": False, "max_gen_toks": max_gen_toks},
        "filter_list": [{"name": "first_word", "filter": [
            {"function": "regex", "regex_pattern": r"\S+", "group_select": 0, "fallback": ""},
            {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": True, "ignore_punctuation": True, "regexes_to_ignore": [r"^\s+", r"\s+$"]}],
        "metadata": {"version": 1.0},
    }
