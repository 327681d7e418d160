"""Ports of the official evaluation pieces (april-tools/pixar @ 810a423), quirks included.

    process_lambda(raw)          LatentPixel/utils.py ~408 (and lambada.ipynb): detokenise an ORIGINAL LAMBADA
                                 prompt
    gen_babi_samples(text, ...)  LatentPixel/utils.py ~384 `gen_babi`: generator output -> one
                                 (prompt, target) per story
    SCORERS                      how one OCR reading is turned into (prediction, correct, readable):
        notebook     `evaluate_babi` (babi.ipynb; lambada.ipynb cells 28/32 call it on LAMBADA too, and
                     those cells print the paper's LAMBADA 5.7 / 13.8): prediction = `^([a-zA-Z]*)` of
                     the raw OCR text; g -> q on prediction and target; case-sensitive equality; readable =
                     the first whitespace token of the OCR text, lower-cased, is in the vocabulary
        evluate      lambada.ipynb `_evluate` (used by its `evaluate()`, the alpha-sweep cells): target =
                     `t.replace('g', 'q').lower()`; prediction = `re.match('([a-zA-Z]+)', ocr_text)`
                     (none -> ''); the line `text.replace('g', 'q').lower()` discards its result, so the RAW
                     prediction is compared with the folded target (a target with a 'g' only matches an
                     OCR reading with a 'q' there); readable = the prediction, lower-cased, is in the
                     vocabulary
        harness      this harness's rule (pixar.read.ocr.score_first_word): quotes/whitespace stripped first,
                     gold = the first alphabetic run of the target, g -> q on both, case-sensitive;
                     readable = pixar.read.wordlist.Readability (first whitespace token, lower-cased)
    union: an example is correct when any engine's reading is (the paper's paddleocr-or-tesseract; here
    whatever engines were read), readable when any engine's reading is.

The official lines are quoted in comments where they are ported. Every scorer works on one engine's
reading at a time, so per-engine and union numbers come from the same function.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from pixar.read import ocr

# ---- LAMBADA prompt preparation ------------------------------------------------------------------
_NO_SPACE_BEFORE = ",.?><{}()'"  # `if cn in ',.?><{}()\'' and c == ' ': continue`
_CONTRACTIONS_3 = ("n't", "'re")  # raw[idx+1:idx+4]
_CONTRACTIONS_2 = ("'d", "'s", "'m")  # raw[idx+1:idx+3]
_LOWER = "abcdefghijklmnopqrstuvwxyz"


def process_lambda(raw: str) -> str:
    """Detokenise an original-LAMBADA context exactly as the official `process_lambda`.

    Quotes: ``` `` ``` followed by a space, a space followed by `''`, then any remaining ``` `` ``` and `''`
    become '"' (in that order). Then every space is dropped that stands before one of , . ? > < { } ( ) '
    or before "n't" / "'re" / "'d" / "'s" / "'m". Nothing else changes: spaces before ! ; : stay
    ("wait !"), and "can n't" becomes "can't" but "gon na" stays. The official loop's third test
    (`raw[idx+1] == "'" and raw[idx+2] in 'a..z' and raw[idx] == ' '`) can never skip anything (the first
    test already dropped such a space) but indexes raw[idx+2]: it raises IndexError when the text ends in
    a non-space followed by "'" (none of the 5,153 test prompts does); here that is a ValueError."""
    if not raw:
        raise ValueError("process_lambda: empty prompt (the official code indexes raw[-1])")
    # raw = raw.replace('`` ', '"').replace(" ''", '"').replace('``', '"').replace("''", '"')
    raw = raw.replace("`` ", '"').replace(" ''", '"').replace("``", '"').replace("''", '"')
    out = []
    for idx in range(len(raw) - 1):
        c, cn = raw[idx], raw[idx + 1]
        if c == " " and cn in _NO_SPACE_BEFORE:
            continue
        if c == " " and (raw[idx + 1: idx + 4] in _CONTRACTIONS_3 or raw[idx + 1: idx + 3] in _CONTRACTIONS_2):
            continue
        if cn == "'" and idx + 2 >= len(raw):
            raise ValueError(f"process_lambda: text ends in a non-space + \"'\" ({raw[-20:]!r}); the official "
                             "code raises IndexError here")
        out.append(c)
    out.append(raw[-1])  # result += raw[-1]
    return "".join(out)


# ---- bAbI sample construction --------------------------------------------------------------------
# pat = re.compile("(^[0-9]*) ([^\t]*)(?:\t(.*)\t)*")
_GEN_BABI_LINE = re.compile("(^[0-9]*) ([^\t]*)(?:\t(.*)\t)*")


def gen_babi_samples(generator_output: str, prompt: str = "|", after_prompt: str = "") -> list[tuple[str, str]]:
    """The official `gen_babi` after its `babi-tasks` call: bAbI text -> [(prompt, target)], one per story.

    Each line is matched with the official regex; a line numbered '1' starts a new story; a statement adds
    its text; a question adds its text, then `prompt`, then its answer + `after_prompt`. The sample is
    ' '.join(all but the last piece) -> (prompt, last piece): the whole story, earlier questions answered
    ("Where is Mary? | bathroom"), ending with the last question and " |"; target = the last answer.
    `gen_babi(1, 10000, '|', '')` is the paper's call. The regex needs the answer to be followed by a tab
    (support numbers), as every generated question line is."""
    results: list[list[str]] = []
    cur: list[str] = []
    for n, line in enumerate(generator_output.splitlines(), 1):
        m = _GEN_BABI_LINE.match(line)
        if m is None:
            raise ValueError(f"gen_babi: line {n} does not match the official pattern: {line[:60]!r}")
        number, text, answer = m.groups()
        if number == "1":  # if line[0] == '1': results.append(cur_sample) if len(cur_sample) > 0 else ...
            if cur:
                results.append(cur)
            cur = []
        cur.append(text)
        if answer is not None:
            cur.append(prompt)
            cur.append(answer + after_prompt)
    results.append(cur)
    # prompt = ' '.join(sample[:-1]); target = sample[-1]
    return [(" ".join(sample[:-1]), sample[-1]) for sample in results]


# ---- scorers -------------------------------------------------------------------------------------
_LEADING_ALPHA_ANY = re.compile("^([a-zA-Z]*)")  # evaluate_babi: pat = re.compile('^([a-zA-Z]*)')
_LEADING_ALPHA_ONE = re.compile("([a-zA-Z]+)")  # lambada.ipynb: pat = re.compile('([a-zA-Z]+)'); pat.match


def _first_token_lower(text: str) -> str:
    # raw = text[0].lower().split(); raw = '' if len(raw) == 0 else raw[0]
    parts = text.lower().split()
    return parts[0] if parts else ""


def notebook_prediction(text: str) -> str:
    m = _LEADING_ALPHA_ANY.match(text)
    return m.group(1) if m is not None else ""


def notebook_correct(text: str, target: str) -> bool:
    """evaluate_babi: `text = text.replace('g', 'q')`, `t = t.replace('g', 'q')`, `if text == t`."""
    return notebook_prediction(text).replace("g", "q") == target.replace("g", "q")


def notebook_readable(text: str, vocab: Collection[str]) -> bool:
    return _first_token_lower(text) in vocab  # if raw in vocab: readable = True


def evluate_prediction(text: str) -> str:
    m = _LEADING_ALPHA_ONE.match(text)
    return m.group(1) if m is not None else ""  # if m is not None: text = m.groups()[0] else: text = ''


def evluate_correct(text: str, target: str) -> bool:
    """_evluate: `t = t.replace('g', 'q').lower()`; `text.replace('g', 'q').lower()` (result discarded);
    `if text == t`."""
    return evluate_prediction(text) == target.replace("g", "q").lower()


def evluate_readable(text: str, vocab: Collection[str]) -> bool:
    return evluate_prediction(text).lower() in vocab  # if text.lower() in vocab: readable = True


def harness_correct(text: str, target: str) -> bool:
    return ocr.score_first_word(text, ocr.first_word(target))


def harness_readable(text: str, vocab: Collection[str]) -> bool:
    return _first_token_lower(text) in vocab


def gpt2_prediction(text: str) -> str:
    # evaluate_gpt2.py: gen = gen[0]['generated_text'].strip().split()[0]
    parts = text.strip().split()
    return parts[0] if parts else ""


def gpt2_correct(text: str, target: str) -> bool:
    """evaluate_gpt2.py: `if gen.lower() == target.lower()` (the first whitespace token, punctuation kept)."""
    return gpt2_prediction(text).lower() == target.lower()


@dataclass(frozen=True)
class Scorer:
    name: str
    prediction: Callable[[str], str]
    correct: Callable[[str, str], bool]  # (ocr text, target) -> bool
    readable: Callable[[str, Collection[str]], bool]  # (ocr text, vocabulary) -> bool
    source: str

    def score(self, reads: Mapping[str, str], target: str, vocab: Collection[str] | None) -> dict:
        """{engine: text} -> per-engine prediction/correct, union correct, readable (None without vocab)."""
        if not reads:
            raise ValueError("score: no OCR readings (need at least one engine)")
        correct = {e: bool(self.correct(t, target)) for e, t in reads.items()}
        return {"prediction": {e: self.prediction(t) for e, t in reads.items()}, "correct": correct,
                "correct_union": any(correct.values()),
                "readable": None if vocab is None else any(self.readable(t, vocab) for t in reads.values())}


SCORERS = {
    "notebook": Scorer("notebook", notebook_prediction, notebook_correct, notebook_readable,
                       "babi.ipynb evaluate_babi (also lambada.ipynb cells 28/32, the paper's LAMBADA numbers)"),
    "evluate": Scorer("evluate", evluate_prediction, evluate_correct, evluate_readable,
                      "lambada.ipynb _evluate (its evaluate(): the alpha-sweep cells)"),
    "harness": Scorer("harness", ocr.first_word, harness_correct, harness_readable,
                      "pixar.read.ocr.score_first_word + pixar.read.wordlist.Readability (this harness)"),
    "gpt2-official": Scorer("gpt2-official", gpt2_prediction, gpt2_correct, harness_readable,
                            "evaluate_gpt2.py: first whitespace token of the greedy text, case-insensitive"),
}


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r} (known: {', '.join(SCORERS)})")
    return SCORERS[name]
