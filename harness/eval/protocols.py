"""Named evaluation protocols for the generate-and-read tasks: the paper's, exactly, and our variants.

A protocol (`ProtocolSpec`) fixes everything that decides a number: data variant, prompt preparation,
strip length, generated positions, crop, OCR engines (+ Tesseract preprocessing), scorer and vocabulary.
Results of different protocols never share a column: label them with `spec.label`.

    task     name                 what it is (docs/protocol.md has the official file/line of each piece)
    lambada  paper                the official protocol: ORIGINAL test set (5,153), prompt = process_lambda(
                                  ' '.join(words[:-1])), target = words[-1]; 360-position strip; 4 positions;
                                  crop = exactly the generated positions; glyph + Tesseract (official
                                  preprocessing); scorer `notebook` (evaluate_babi, what lambada.ipynb's
                                  result cells ran); vocabulary paper-official with NO eval words (the
                                  notebook's `for a, b in data` adds only 'text' and 'domain')
    lambada  paper-evluate        as paper, scorer `evluate` (lambada.ipynb _evluate: raw prediction vs the
                                  lower-cased g->q target)
    lambada  paper-openai-cased   our earlier variant: OpenAI's cased detokenised set, context = text.split(' ')
                                  [:-1], the model's strip, scorer `harness`, glyph + tesseract-line,
                                  vocabulary paper + eval words
    babi     paper                the official protocol: 10,000 generated task-1 stories (harness.tasks.babi_generator,
                                  Lua style, seeded), one sample per story = the last question with the 4
                                  earlier ones answered (gen_babi(1, 10000, '|', '')); 400-position strip
                                  (renderer max_seq_length 800 patches); 5 positions; scorer `notebook`;
                                  vocabulary paper-official + eval words
    babi     paper-qa1-last       as paper on the 200 stories of the released qa1 test file (last question)
    babi     paper-all-questions  our earlier variant: all 1,000 questions of the qa1 test file (question 1
                                  has no demonstration), the model's strip, scorer `harness`, glyph +
                                  tesseract-line, vocabulary paper + eval words
    lambada  paper-gpt2-official  GPT-2 only: evaluate_gpt2.py's rules, `generator(prompt, max_length=5,
                                  do_sample=False, min_length=5)`: max_length is the TOTAL length, so a prompt of
                                  >= 5 tokens gets 1 new greedy token (our `paper` gives GPT-2 5 greedy new tokens)
    babi     paper-gpt2-official  GPT-2 only: `generator(prompt, max_length=5)` on gen_babi(1, 5000, '|', ''):
                                  1 new token SAMPLED with the pipeline's defaults for gpt2 (do_sample=True from
                                  its task_specific_params, top_k=50, temperature 1), seeded per example

Prompt fitting: a prompt longer than the model's room (PIXAR: context_budget positions; GPT-2: n_positions minus
the new tokens) keeps its END (left-fit). A run that cut any prompt is labelled `<label>+fit<N>` (N = the room, in
the model's units) and records how many prompts it cut (`fit_label`, `count_pixel_cuts`, `count_token_cuts`); only
a run that cut nothing keeps the bare label.

PaddleOCR is not available offline: our union is glyph or Tesseract, the paper's PaddleOCR or Tesseract.

A runner (harness.eval.bench) does, per protocol:
    spec = get_protocol(task, name)                  # optionally with_context_cap(spec, n)
    examples = load_examples(spec, data_dir, seed)   # [{'idx', 'prompt', 'target', 'source'}]
    vocab = build_vocabulary(spec, examples, data_dir)
    budget = context_budget(spec, model.max_positions)   # context positions to keep (left-fit)
    ... render prompt, space_text(spec.spacing_px), greedily generate spec.positions positions, crop them
    reads = pixar.read.ocr.read_engines(crops, spec.engines, stop_at_eos=spec.stop_at_eos)
    rows = score_rows(spec, examples, reads, vocab); metrics = summarise(spec, rows)
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixar.errors import PixarError
from pixar.paths import DataNotFound
from pixar.read.wordlist import build_wordlist

from harness.eval import readability
from harness.eval.official_scorers import get_scorer, process_lambda
from harness.models.layout import left_fit
from harness.results import stats
from harness.tasks import babi, lambada

DATA_VARIANTS = ("lambada-original", "lambada-openai", "babi-generated", "babi-qa1-test")
PROMPT_PREPS = ("process_lambda", "split-space", "last-question", "all-questions")


class ProtocolError(PixarError, ValueError):
    """A protocol that cannot run as asked: unknown name, a context cap or task it cannot score, a model too short
    for its generated positions."""


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    task: str  # "lambada" | "babi"
    data: str  # DATA_VARIANTS
    prompt_prep: str  # PROMPT_PREPS
    positions: int  # generated positions (no EOS stop)
    strip_positions: int | None  # the renderer's strip, in positions; None = the model's own length
    scorer: str  # harness.eval.official_scorers.SCORERS
    engines: tuple[str, ...]  # pixar.read.ocr.ENGINES read for each example; union = any of them
    vocabulary: str  # pixar.read.wordlist.VOCABULARIES
    vocab_eval_words: bool  # add the evaluation set's words to the vocabulary
    spacing_px: int = 3  # white columns between the prompt's last ink and its EOS (`_spacing_text(3)`)
    stop_at_eos: bool = False  # False: read exactly the generated positions (the official crop)
    threshold: float = 0.5  # greedy binarisation of generated pixels
    babi_stories: int = 10000  # babi-generated: stories generated (`babi-tasks 1 10000`)
    context_cap: int | None = None  # keep at most this many context positions (see with_context_cap)
    official: str = ""  # the official file/lines this protocol follows
    summary: str = ""
    text_decoding: str = "greedy-5-new"  # how a text model (GPT-2) generates: harness.models.gpt2_runner.TEXT_DECODERS
    text_only: bool = False  # a protocol for text models only (pixel models do not run it)

    def __post_init__(self) -> None:
        if self.task not in ("lambada", "babi"):
            raise ValueError(f"protocol {self.name}: unknown task {self.task!r}")
        if self.data not in DATA_VARIANTS or self.prompt_prep not in PROMPT_PREPS:
            raise ValueError(f"protocol {self.name}: unknown data {self.data!r} or prompt prep {self.prompt_prep!r}")
        get_scorer(self.scorer)
        if self.positions < 1 or (self.context_cap is not None and self.context_cap < 1):
            raise ProtocolError(f"protocol {self.name}: positions and context_cap must be >= 1")

    @property
    def label(self) -> str:
        """Column label, e.g. 'babi:paper' or 'lambada:paper+cap64' (a capped protocol is another protocol)."""
        cap = f"+cap{self.context_cap}" if self.context_cap is not None else ""
        return f"{self.task}:{self.name}{cap}"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "engines": list(self.engines), "label": self.label}


_UNION = ("glyph", "tesseract")
_OURS = ("glyph", "tesseract-line")
_PROTOCOLS = [
    ProtocolSpec("paper", "lambada", "lambada-original", "process_lambda", 4, 360, "notebook", _UNION,
                 "paper-official", False,
                 official="lambada.ipynb cells 10, 28, 32 (load_dataset('lambada'), process_lambda, "
                          "autoregressive_generate(prompt, None, 4), evaluate_babi); LatentPixel/utils.py "
                          "process_lambda ~408; LatentPixel/__init__.py DEFAULT_BINARY_RENDERING "
                          "(max_seq_length 720 patches = 360 positions)",
                 summary="the official LAMBADA protocol"),
    ProtocolSpec("paper-evluate", "lambada", "lambada-original", "process_lambda", 4, 360, "evluate", _UNION,
                 "paper-official", False, official="lambada.ipynb _evluate / evaluate (alpha-sweep cells)",
                 summary="official data and prompts, the notebook's older _evluate scorer"),
    ProtocolSpec("paper-openai-cased", "lambada", "lambada-openai", "split-space", 4, None, "harness", _OURS,
                 "paper", True, official="(ours) lm-eval lambada_openai data; pixar.read.ocr.score_first_word",
                 summary="OpenAI's cased detokenised set, both sides folded, quotes stripped"),
    ProtocolSpec("paper", "babi", "babi-generated", "last-question", 5, 400, "notebook", _UNION,
                 "paper-official", True,
                 official="babi.ipynb cells 3, 6-9 (gen_babi(1, 10000, '|', ''), max_seq_length=800, "
                          "autoregressive_generate(prompt, None, 5), evaluate_babi); LatentPixel/utils.py "
                          "gen_babi ~384",
                 summary="the official bAbI protocol on 10,000 seeded generated stories"),
    ProtocolSpec("paper-qa1-last", "babi", "babi-qa1-test", "last-question", 5, 400, "notebook", _UNION,
                 "paper-official", True, official="as babi:paper, on the released qa1 test stories",
                 summary="official sample construction and scoring on the 200 qa1 test stories"),
    ProtocolSpec("paper-all-questions", "babi", "babi-qa1-test", "all-questions", 5, None, "harness", _OURS,
                 "paper", True, official="(ours) every question of qa1 test; pixar.read.ocr.score_first_word",
                 summary="all 5 questions of each qa1 test story"),
]
_GPT2_OFFICIAL = "evaluate_gpt2.py (april-tools/pixar, commit 7807505)"
_PROTOCOLS += [
    ProtocolSpec("paper-gpt2-official", "lambada", "lambada-original", "process_lambda", 4, None, "gpt2-official",
                 ("text",), "paper-official", False, text_decoding="hf-max-length-5-greedy", text_only=True,
                 official=f"{_GPT2_OFFICIAL}: process_lambda, generator(prompt, max_length=5, "
                          "return_full_text=False, do_sample=False, min_length=5), gen.strip().split()[0] vs "
                          "target, lower-cased",
                 summary="GPT-2's official LAMBADA rules: 1 new greedy token (max_length=5 is the total length)"),
    ProtocolSpec("paper-gpt2-official", "babi", "babi-generated", "last-question", 5, None, "gpt2-official",
                 ("text",), "paper-official", True, babi_stories=5000, text_decoding="hf-max-length-5-sample",
                 text_only=True,
                 official=f"{_GPT2_OFFICIAL}: gen_babi(1, 5000, '|', ''), generator(prompt, max_length=5, "
                          "return_full_text=False) (sampling: gpt2's task_specific_params do_sample=True, top_k 50), "
                          "seed_everyting(42)",
                 summary="GPT-2's official bAbI rules: 1 new token sampled (top-k 50), seeded per example"),
]
PROTOCOLS: dict[tuple[str, str], ProtocolSpec] = {(p.task, p.name): p for p in _PROTOCOLS}


def protocol_names(task: str) -> list[str]:
    return [name for t, name in PROTOCOLS if t == task]


def get_protocol(task: str, name: str) -> ProtocolSpec:
    if (task, name) not in PROTOCOLS:
        raise ProtocolError(f"unknown {task} protocol {name!r} (known: {', '.join(protocol_names(task)) or 'none'})")
    return PROTOCOLS[(task, name)]


def with_context_cap(spec: ProtocolSpec, cap: int | None) -> ProtocolSpec:
    """spec keeping at most `cap` context positions (the prompt's end; left-fit); None = uncapped."""
    return dataclasses.replace(spec, context_cap=cap)


def context_budget(spec: ProtocolSpec, model_positions: int) -> int:
    """Context positions the runner keeps: the strip (the protocol's, at most the model's) minus the
    generated positions, then the cap. A prompt longer than this keeps its END (left-fit)."""
    strip = model_positions if spec.strip_positions is None else min(spec.strip_positions, model_positions)
    budget = strip - spec.positions
    if spec.context_cap is not None:
        budget = min(budget, spec.context_cap)
    if budget < 1:
        raise ProtocolError(f"{spec.label}: a {model_positions}-position model leaves no room for context "
                         f"before {spec.positions} generated positions")
    return budget


def fit_label(label: str, budget: int, cut: int) -> str:
    """A protocol label as a run reports it: `<label>+fit<budget>` when the run cut any prompt, else `label`."""
    return f"{label}+fit{budget}" if cut else label


def fit_record(label: str, budget: int, unit: str, flags: Sequence[bool]) -> dict:
    """What a run records about prompt fitting: the room, its unit, how many prompts were cut and their share."""
    n, cut = len(flags), int(sum(bool(f) for f in flags))
    return {"protocol": label, "label": fit_label(label, budget, cut), "budget": int(budget), "unit": unit,
            "cut": cut, "n": n, "share": cut / n if n else 0.0}


def count_pixel_cuts(renderer, spec: ProtocolSpec, model_positions: int, prompts: Sequence[str]) -> tuple[int, list[bool]]:
    """(context budget in positions, per prompt: was it cut?) for a pixel model: a prompt is cut when its left-fit
    to context_budget(spec, model_positions) positions is not the whole (normalised) prompt."""
    budget = context_budget(spec, model_positions)
    return budget, [left_fit(renderer, p, budget) != renderer.normalise(p) for p in prompts]


def count_token_cuts(tokenizer, n_positions: int, new_tokens: int, prompts: Sequence[str]) -> tuple[int, list[bool]]:
    """(token room, per prompt: was it cut?) for a text model that keeps the last n_positions - new_tokens tokens."""
    room = n_positions - new_tokens
    return room, [len(tokenizer(p)["input_ids"]) > room for p in prompts]


def cap_for_training_lengths(lengths: Sequence[int], positions: int, coverage: float = 0.5) -> int:
    """The largest context cap c such that the generated positions c .. c+positions-1 are training targets in
    at least `coverage` of training rows, i.e. at least that fraction of rows have >= c + positions attended
    positions. lengths: attended positions (text + EOS) of training rows."""
    arr = np.sort(np.asarray(lengths, dtype=np.int64))
    if arr.size == 0 or not 0 < coverage <= 1:
        raise ValueError("cap_for_training_lengths: need training lengths and 0 < coverage <= 1")
    # the row at rank floor((1 - coverage) * n) has a length that >= coverage of rows reach
    reach = int(arr[int(math.floor((1 - coverage) * arr.size))])
    cap = reach - positions
    if cap < 1:
        raise ProtocolError(f"training rows are too short: {coverage:.0%} of them reach only {reach} positions")
    return cap


# ---- examples ------------------------------------------------------------------------------------
def load_examples(spec: ProtocolSpec, data_dir: str | Path | None = None, seed: int = 0,
                  babi_folder: str | Path | None = None, task: int = 1, variant: str = "en") -> list[dict]:
    """The protocol's examples, all of them: [{'idx', 'prompt', 'target', 'source'}] (slice to limit).
    seed: the babi-generated stories' seed (recorded with the results). task / variant / babi_folder: which
    released bAbI test file the babi-qa1-test protocols read (the generated stories are task 1 only)."""
    if spec.data == "lambada-original":
        pairs = [lambada.split_original(t) for t in lambada.load_lambada_original(data_dir)]
        prep = process_lambda if spec.prompt_prep == "process_lambda" else (lambda c: c)
        return [{"idx": i, "prompt": prep(c), "target": t, "source": f"{lambada.LAMBADA_ORIGINAL_FILE}:{i + 1}"}
                for i, (c, t) in enumerate(pairs)]
    if spec.data == "lambada-openai":
        return [{**e, "source": f"{lambada.LAMBADA_FILE}:{e['idx'] + 1}"}
                for e in lambada.paper_examples(lambada.load_lambada(data_dir))]
    if spec.data == "babi-generated":
        check_task(spec, task)
        questions = babi.generated_task1(spec.babi_stories, seed)
    else:
        questions = babi.load_babi(task, "test", babi.babi_dir(variant, data_dir, babi_folder))
    if spec.prompt_prep == "last-question":
        questions = babi.last_question_per_story(questions)
    return [{"idx": i, "prompt": q.paper_prompt(), "target": q.answer, "source": q.source}
            for i, q in enumerate(questions)]


def check_task(spec: ProtocolSpec, task: int) -> None:
    """ProtocolError when a protocol cannot score bAbI `task` (the generated-story protocols are task 1 only)."""
    if spec.data == "babi-generated" and task != 1:
        raise ProtocolError(f"{spec.label} is defined on generated task-1 stories; for bAbI task {task} use "
                         f"{', '.join(n for n in protocol_names('babi') if PROTOCOLS[('babi', n)].data != spec.data)}")


def build_vocabulary(spec: ProtocolSpec, examples: Sequence[Mapping], data_dir: str | Path | None = None,
                     required: bool = False) -> frozenset | None:
    """The readability vocabulary: spec.vocabulary (+ the words of every example when vocab_eval_words). Without
    its word list (no data folder) readability is not scored: None, logged (required=True raises instead)."""
    import logging

    texts = [f"{e['prompt']} {e['target']}" for e in examples] if spec.vocab_eval_words else []
    try:
        return frozenset(build_wordlist(data_dir, extra_texts=texts, vocabulary=spec.vocabulary))
    except DataNotFound as e:
        if required:
            raise
        logging.getLogger(__name__).warning("%s: readability not scored (%s)", spec.label, str(e).splitlines()[0])
        return None


# ---- scoring -------------------------------------------------------------------------------------
def score_rows(spec: ProtocolSpec, examples: Sequence[Mapping], reads: Mapping[str, Sequence[str]],
               vocab: frozenset | None) -> list[dict]:
    """reads: {engine: [text per example]} (pixar.read.ocr.read_engines) -> one row per example:
    {'idx', 'target', 'read', 'prediction', 'correct', 'correct_union', 'readable'} and, with a vocabulary, the
    readability of each reading and the strict variant (harness.eval.readability.row_fields: 'readable_by',
    'readable_strict', 'readable_strict_by'); 'readable' stays the paper's union."""
    missing = [e for e in spec.engines if e not in reads]
    if missing:
        raise ValueError(f"{spec.label}: no readings for engine(s) {missing} (the protocol reads {list(spec.engines)})")
    scorer = get_scorer(spec.scorer)
    rows = []
    for j, ex in enumerate(examples):
        texts = {e: reads[e][j] for e in spec.engines}
        scored = scorer.score(texts, ex["target"], vocab)
        rows.append({"idx": ex["idx"], "target": ex["target"], "read": texts, **scored,
                     **readability.row_fields(scorer.readable, texts, vocab)})
    return rows


def summarise(spec: ProtocolSpec, rows: Sequence[Mapping], level: float = stats.LEVEL) -> dict:
    """Each engine's accuracy, the union's, and readability (the union; per engine and the strict variant when
    the rows carry them: harness.eval.readability.readability_flags), each {'estimate', 'low', 'high', ...}
    (Wilson)."""
    if not rows:
        raise ValueError(f"{spec.label}: no scored examples")
    out = {f"acc_{e}": stats.proportion_interval([r["correct"][e] for r in rows], level).to_dict()
           for e in spec.engines}
    out["acc_union"] = stats.proportion_interval([r["correct_union"] for r in rows], level).to_dict()
    for metric, flags in readability.readability_flags(rows).items():
        out[metric] = stats.proportion_interval(flags, level).to_dict()
    return {"protocol": spec.label, "n": len(rows), **out}


def text_model_spec(spec: ProtocolSpec) -> ProtocolSpec:
    """The protocol as a text model (GPT-2) is scored: one reading ("text", the greedy continuation) and the
    official evaluate_gpt2.py rule (first whitespace token, case-insensitive); same examples, same label."""
    return dataclasses.replace(spec, engines=("text",), scorer="gpt2-official")


def paired_difference(rows_a: Sequence[Mapping], rows_b: Sequence[Mapping], metric: str = "correct_union",
                      engine: str | None = None, resamples: int = stats.RESAMPLES, seed: int = 0,
                      common: bool = False) -> stats.Interval:
    """mean(a) - mean(b) of a per-example flag ('correct_union', 'readable', 'readable_strict', or 'correct' /
    'readable_by' / 'readable_strict_by' with engine) for two systems scored on the same examples (matched by idx),
    with Newcombe's paired interval (stats.paired_proportion_diff: it does not degenerate when both arms are all 0 or
    all 1; the percentile bootstrap, used for scores that are not 0/1 flags, does).
    common=True pairs them on the examples both scored (one run on a subset of the other's); its n says how many."""
    def flags(rows):
        return {r["idx"]: float(r[metric][engine] if engine is not None else r[metric]) for r in rows}

    a, b = flags(rows_a), flags(rows_b)
    if common:
        shared = set(a) & set(b)
        if not shared:
            raise ValueError("paired_difference: the two systems scored no example in common")
        a, b = {k: a[k] for k in shared}, {k: b[k] for k in shared}
    if set(a) != set(b):
        raise ValueError(f"paired_difference: the two systems scored different examples "
                         f"({len(set(a) ^ set(b))} idx in only one of them)")
    keys = sorted(a)
    xa, xb = [a[k] for k in keys], [b[k] for k in keys]
    if set(xa) | set(xb) <= {0.0, 1.0}:
        return stats.paired_proportion_diff(xa, xb)
    return stats.paired_bootstrap_diff(xa, xb, resamples, seed)
