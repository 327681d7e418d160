"""Reference rows: what trivial rules score on the SAME examples a model is scored on, and per-model answer
diversity, so a table shows when a model is no better than chance.

    reference_rows(task, examples)      [ReferenceRow]: every rule registered for the task, each an accuracy on
                                        the examples with its 95% Wilson interval (the models' intervals)
    diversity(answers)                  {"distinct", "top_answer", "top_share", "n"} of a model's answers
    best_reference(rows)                the strongest reference row (highest accuracy)
    is_at_chance(low, rows)             a model whose interval's lower bound does not clear the best
                                        reference row's accuracy is "at chance"

Rules (registries, never switches; a task family lists the rules it gets in TASK_RULES):
    majority class   always answer the most frequent gold answer of these examples (an upper bound on every
                     constant answer: it is chosen on the evaluated examples themselves)
    uniform chance   a uniformly random choice among the K distinct gold answers of these examples: its expected
                     accuracy 1/K, with the Wilson interval of that rate over n (its answers column shows one
                     seeded draw)
    last location    bAbI: the last word of the prompt before its final question that is one of the task's
                     answers (the six bAbI task-1 locations), earlier answered questions included
    context word     LAMBADA: the most frequent capitalised word of the context (stop words dropped) that does not
                     occur in its last sentence; ties go to the latest occurrence; without one, the most frequent
                     content word (>= 3 letters, not a stop word) of the context outside the last sentence
A rule's answer is right when it equals the target's first word case-insensitively (evaluate_gpt2.py's rule).
Examples are {"prompt": str, "target": str} (GLUE: {"label": int}, prompts unused).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.results.stats import Interval, proportion_interval, wilson_interval

AT_CHANCE = "at chance"
NA_AT_CHANCE = "n/a (at chance)"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
STOP_WORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
off on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves mr mrs ms oh yes yeah well""".split())


@dataclass(frozen=True)
class ReferenceRow:
    name: str
    description: str
    interval: Interval  # accuracy on the examples, 95% Wilson
    answers: tuple  # the rule's answer per example

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, **self.interval.to_dict(),
                **diversity(self.answers)}


def first_word(text) -> str:
    m = _WORD.search(str(text))
    return m.group(0) if m else ""


def _gold(ex: Mapping) -> str:
    return str(ex["label"]) if "label" in ex and "target" not in ex else first_word(ex["target"])


def _correct(answer, ex: Mapping) -> bool:
    gold = _gold(ex)
    return bool(gold) and str(answer).lower() == gold.lower()


# ---- rules --------------------------------------------------------------------------------------
def majority_class(examples: Sequence[Mapping], seed: int = 0) -> list[str]:
    counts = Counter(_gold(e).lower() for e in examples)
    top = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else ""
    return [top] * len(examples)


def uniform_chance(examples: Sequence[Mapping], seed: int = 0) -> list[str]:
    labels = sorted({_gold(e).lower() for e in examples})
    rng = np.random.default_rng(seed)
    return [labels[int(i)] for i in rng.integers(0, len(labels), size=len(examples))] if labels else []


def _before_final_question(prompt: str) -> str:
    """The prompt up to the start of its last question (bAbI paper prompts end '<question>? |')."""
    text = prompt.rstrip().rstrip("|").rstrip()
    q = text.rfind("?")
    if q < 0:
        return text
    start = max(text.rfind(".", 0, q), text.rfind("|", 0, q))
    return text[: start + 1] if start >= 0 else ""


BABI_LOCATIONS = frozenset({"bathroom", "bedroom", "garden", "hallway", "kitchen", "office"})  # task 1's places


def last_location(examples: Sequence[Mapping], seed: int = 0) -> list[str]:
    """bAbI: the last word before the final question that is a task-1 location or a gold answer of these examples."""
    answers = {_gold(e).lower() for e in examples} | BABI_LOCATIONS
    out = []
    for e in examples:
        words = [w.lower() for w in _WORD.findall(_before_final_question(e["prompt"]))]
        out.append(next((w for w in reversed(words) if w in answers), ""))
    return out


def _last_sentence_start(text: str) -> int:
    ends = [m.end() for m in re.finditer(r"[.!?][\"')\]]*\s", text.rstrip())]
    return ends[-1] if ends else 0


def context_word(examples: Sequence[Mapping], seed: int = 0) -> list[str]:
    """LAMBADA: the most frequent capitalised non-stop word of the context absent from its last sentence (ties:
    the latest); else the most frequent content word (>= 3 letters) absent from the last sentence."""
    out = []
    for e in examples:
        text = str(e["prompt"])
        cut = _last_sentence_start(text)
        last = {w.lower() for w in _WORD.findall(text[cut:])}
        words = [w for w in _WORD.findall(text[:cut]) if w.lower() not in last and w.lower() not in STOP_WORDS]
        capital = [w for w in words if w[0].isupper()]
        pool = capital or [w for w in words if len(w) >= 3]
        if not pool:
            out.append("")
            continue
        counts, latest = Counter(pool), {w: i for i, w in enumerate(pool)}
        out.append(max(counts, key=lambda w: (counts[w], latest[w])))
    return out


Rule = Callable[[Sequence[Mapping], int], list]
RULES: dict[str, tuple[Rule, str]] = {
    "majority class": (majority_class, "always the most frequent gold answer of these examples"),
    "uniform chance": (uniform_chance, "a seeded uniform draw among the distinct gold answers (expected 1/K)"),
    "last location": (last_location, "the last bAbI location mentioned before the final question"),
    "context word": (context_word, "the most frequent capitalised context word absent from the last sentence"),
}
def uniform_expected(examples: Sequence[Mapping]) -> Interval:
    """1/K for K distinct gold answers, with the Wilson interval of that rate over the n examples."""
    k = len({_gold(e).lower() for e in examples})
    return wilson_interval(len(examples) / k, len(examples))


EXPECTED: dict[str, Callable[[Sequence[Mapping]], Interval]] = {"uniform chance": uniform_expected}
PROMPT_RULES = frozenset({"last location", "context word"})  # need the examples' prompts
TASK_RULES: dict[str, tuple[str, ...]] = {
    "babi": ("majority class", "uniform chance", "last location"),
    "lambada": ("majority class", "uniform chance", "context word"),
    "glue": ("majority class", "uniform chance"),  # GLUE's task heuristic is its majority label
}


def task_family(task: str) -> str:
    """'babi' / 'lambada' / 'glue' for the task names the harness writes ('babi qa1 ...', 'babi-qa1', 'sst2')."""
    t = task.lower()
    return "babi" if t.startswith("babi") else "lambada" if t.startswith("lambada") else "glue"


def reference_rows(task: str, examples: Sequence[Mapping], seed: int = 0) -> list[ReferenceRow]:
    """Every rule registered for the task's family, scored on `examples` with a Wilson interval (rules that read
    the prompt are skipped when the examples carry none)."""
    if not examples:
        return []
    rows = []
    has_prompts = all("prompt" in e for e in examples)
    for name in TASK_RULES[task_family(task)]:
        if name in PROMPT_RULES and not has_prompts:
            continue
        rule, description = RULES[name]
        answers = rule(examples, seed)
        if name in EXPECTED:
            iv = EXPECTED[name](examples)
        else:
            iv = proportion_interval([_correct(a, e) for a, e in zip(answers, examples)])
        rows.append(ReferenceRow(name, description, iv, tuple(answers)))
    return rows


def diversity(answers: Sequence) -> dict:
    """Distinct answers, the most frequent one and its share (answers compared case-insensitively)."""
    norm = [str(a).strip().lower() for a in answers]
    if not norm:
        return {"distinct": 0, "top_answer": "", "top_share": float("nan"), "n": 0}
    counts = Counter(norm)
    top, k = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return {"distinct": len(counts), "top_answer": top, "top_share": k / len(norm), "n": len(norm)}


def best_reference(rows: Sequence) -> dict | None:
    """The reference row (ReferenceRow or its dict) with the highest accuracy."""
    dicts = [r.to_dict() if isinstance(r, ReferenceRow) else r for r in rows]
    return max(dicts, key=lambda r: r["estimate"]) if dicts else None


def is_at_chance(low: float | None, rows: Sequence) -> bool:
    """True when a model's 95% lower bound does not clear (is not above) the best reference row's accuracy."""
    best = best_reference(rows)
    if best is None or low is None:
        return False
    return not low > best["estimate"]


def status(low: float | None, rows: Sequence) -> str:
    """'at chance' or '' for a table cell."""
    return AT_CHANCE if is_at_chance(low, rows) else ""
