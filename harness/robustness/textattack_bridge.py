"""Optional bridge to TextAttack (QData/TextAttack 0.3.11), usable offline.

``import textattack`` takes ~10 s and, as shipped, cannot run offline: on
first import it tries six ``nltk.download`` calls, and every import builds
``StopwordModification()``, which reads NLTK's ``stopwords`` corpus. So
textattack is imported only inside functions, through
:func:`import_textattack`, which first

1. creates the ``post_install_check_3`` marker in textattack's cache dir
   (``$TA_CACHE_DIR`` or ``~/.cache/textattack``), skipping the downloads;
2. if NLTK has no English stopwords, writes NLTK's 179-word English list
   (:data:`NLTK_ENGLISH_STOPWORDS`, shipped here) to
   ``<cache dir>/nltk_data/corpora/stopwords/english`` and appends that
   folder to ``nltk.data.path``. An installed NLTK corpus takes precedence.

Importing textattack also runs ``logging.config.dictConfig``, which disables
every logger created before it, and sets ``TOKENIZERS_PARALLELISM=True``;
:func:`import_textattack` undoes both.

TextAttack draws from the global ``random``, ``numpy`` and ``torch`` RNGs.
:func:`augment_with_textattack` and :func:`run_recipe` seed all three from
their ``seed`` argument and restore the previous global states afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import random
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from attacks import AttackUnavailableError
from pixar.config_io import atomic_write_text

__all__ = [
    "NLTK_ENGLISH_STOPWORDS", "TRANSFORMATIONS", "CallableModelWrapper", "augment_with_textattack",
    "import_textattack", "prepare_offline", "run_recipe", "seeded_global_rngs",
    "textattack_transformation",
]

#: NLTK's English stopword list (the 179-word version of the ``stopwords`` corpus).
NLTK_ENGLISH_STOPWORDS: list[str] = """
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be
been being have has had having do does did doing a an the and but if or because as until
while of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why
how all any both each few more most other some such no nor not only own same so than too
very s t can will just don don't should should've now d ll m o re ve y ain aren aren't
couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't
ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't
weren weren't won won't wouldn wouldn't
""".split()
assert len(NLTK_ENGLISH_STOPWORDS) == 179

#: Our attack name -> TextAttack transformation class name.
TRANSFORMATIONS = {
    "swap": "WordSwapNeighboringCharacterSwap",
    "delete": "WordSwapRandomCharacterDeletion",
    "insert": "WordSwapRandomCharacterInsertion",
    "substitute": "WordSwapRandomCharacterSubstitution",
    "qwerty": "WordSwapQWERTY",
    "homoglyph": "WordSwapHomoglyphSwap",
}

RECIPES = {"deepwordbug": "DeepWordBugGao2018", "pruthi": "Pruthi2019",
           "badchars-invisible": "BadCharacters2021", "badchars-reorderings": "BadCharacters2021",
           "badchars-deletions": "BadCharacters2021"}

#: Our BadCharacters recipe name -> BadCharacters2021's ``perturbation_type`` (Boucher et al. 2022). Its fourth
#: type, homoglyphs, needs ``shared/intentional_homoglyphs.txt``, which the 0.3.11 wheel does not ship.
BADCHARS_TYPES = {"badchars-invisible": "invisible", "badchars-reorderings": "reorderings",
                  "badchars-deletions": "deletions"}
#: The differential-evolution budget we run BadCharacters2021 with: the recipe's own defaults (one perturbation per
#: input, population 32 x the search dimensions as scipy counts it, 10 generations); TextAttack's goal function
#: caches model outputs, so repeated candidates (the search space is discrete) cost no query. Reported beside every result.
BADCHARS_SEARCH = {"perturbs": 1, "popsize": 32, "maxiter": 10}


def textattack_cache_dir() -> Path:
    """textattack's cache dir, computed as textattack does at import."""
    return Path(os.environ.get("TA_CACHE_DIR", os.path.expanduser("~/.cache/textattack")))


TEXTATTACK_MISSING = ("TextAttack is not installed (an optional extra): pip install 'pixar-harness[attacks]' "
                      "(or textattack==0.3.11 from requirements.txt)")


def prepare_offline() -> None:
    """Make ``import textattack`` work without network (idempotent)."""
    cache = textattack_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "post_install_check_3").touch()
    import nltk

    try:
        nltk.corpus.stopwords.words("english")
        return
    except LookupError:
        pass
    root = cache / "nltk_data"
    target = root / "corpora" / "stopwords" / "english"
    if not target.exists() or target.read_text(encoding="utf-8").split() != NLTK_ENGLISH_STOPWORDS:
        target.parent.mkdir(parents=True, exist_ok=True)

        atomic_write_text(target, "\n".join(NLTK_ENGLISH_STOPWORDS) + "\n")
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    nltk.corpus.stopwords.words("english")  # fails loudly here if the shim did not work


def import_textattack():
    """Import textattack offline and without its global side effects."""
    if "textattack" in sys.modules:
        return sys.modules["textattack"]
    if importlib.util.find_spec("textattack") is None:
        raise AttackUnavailableError(TEXTATTACK_MISSING)
    prepare_offline()
    parallelism = os.environ.get("TOKENIZERS_PARALLELISM")
    manager = logging.Logger.manager
    disabled = {n: lg.disabled for n, lg in manager.loggerDict.items()
                if isinstance(lg, logging.Logger)}
    try:
        import textattack
    finally:
        if parallelism is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallelism
        for name, was_disabled in disabled.items():
            logging.getLogger(name).disabled = was_disabled
    return textattack


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's global RNGs; restore them on exit."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    # Touch CUDA generators only if CUDA is already in use (never initialise it here).
    cuda = torch.cuda.is_initialized()
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        if cuda:
            torch.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@functools.cache
def _safe_homoglyph_class():
    ta = import_textattack()

    class SafeHomoglyphSwap(ta.transformations.WordSwapHomoglyphSwap):
        """``WordSwapHomoglyphSwap`` that tolerates the data file missing from
        the 0.3.11 wheel (``shared/intentional_homoglyphs.txt``). Only the
        word-swap path works then, not differential evolution."""

        def __init__(self, random_one: bool = False, **kwargs):
            try:
                super().__init__(random_one=random_one, **kwargs)
            except FileNotFoundError:  # self.homos is set before the file is read
                self.random_one = random_one
                self.homos_intentional = {}

    return SafeHomoglyphSwap


def textattack_transformation(name: str, **kwargs):
    """The TextAttack transformation mirrored by our attack ``name``.

    ``kwargs`` go to the constructor (``random_one``, ``skip_first_char``,
    ``skip_last_char``). ``homoglyph`` gives :class:`SafeHomoglyphSwap`.
    """
    if name not in TRANSFORMATIONS:
        raise ValueError(f"no TextAttack transformation for {name!r}; "
                         f"valid: {', '.join(TRANSFORMATIONS)}")
    if name == "homoglyph":
        return _safe_homoglyph_class()(**kwargs)
    ta = import_textattack()
    return getattr(ta.transformations, TRANSFORMATIONS[name])(**kwargs)


def augment_with_textattack(text: str, name: str, rate: float, seed: int) -> str:
    """Perturb ``text`` with TextAttack's own transformation, for cross-checks.

    Uses ``Augmenter(transformation, [RepeatModification()],
    pct_words_to_swap=rate, transformations_per_example=1)``. TextAttack
    swaps ``max(int(rate * n_words), 1)`` words (ours: ``ceil``) and splits
    words differently, so outputs are comparable in kind, not identical.
    ``rate == 0`` returns ``text``. Returns ``text`` if nothing was produced.
    """
    if rate == 0:
        return text
    ta = import_textattack()
    from textattack.constraints.pre_transformation import RepeatModification

    with seeded_global_rngs(seed):
        augmenter = ta.augmentation.Augmenter(
            transformation=textattack_transformation(name), constraints=[RepeatModification()],
            pct_words_to_swap=rate, transformations_per_example=1)
        out = augmenter.augment(text)
    return out[0] if out else text


@functools.cache
def _model_wrapper_class():
    ta = import_textattack()

    class CallableModelWrapper(ta.models.wrappers.ModelWrapper):
        """TextAttack ``ModelWrapper`` around ``predict_proba(list[str]) -> [N, C]``.

        Any scores work (probabilities or logits: TextAttack applies a softmax
        when rows do not sum to 1). Pair inputs arrive as tuples.
        """

        def __init__(self, predict_proba: Callable[[list], Any]):
            self.model = predict_proba  # TextAttack expects the attribute ``model``

        def __call__(self, text_input_list, **kwargs):
            scores = np.asarray(self.model(list(text_input_list)), dtype=np.float32)
            if scores.ndim != 2 or scores.shape[0] != len(text_input_list):
                raise ValueError(
                    f"predict_proba must return [N, C] scores, got shape {scores.shape}")
            return scores

    return CallableModelWrapper


def __getattr__(name: str):
    # ``CallableModelWrapper`` subclasses a textattack class, so it is built on
    # first access (importing textattack then) instead of at module import.
    if name == "CallableModelWrapper":
        return _model_wrapper_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _to_example(text: str | Sequence[str]):
    if isinstance(text, str):
        return text
    return OrderedDict((f"text_{chr(ord('a') + i)}", t) for i, t in enumerate(text))


def _result_record(index: int, label: int, result, ta) -> dict[str, Any]:
    results = ta.attack_results
    status = ("skipped" if isinstance(result, results.SkippedAttackResult) else
              "succeeded" if isinstance(result, results.SuccessfulAttackResult) else "failed")
    return {
        "index": index, "label": label, "status": status,
        "original": result.original_result.attacked_text.text,
        "perturbed": result.perturbed_result.attacked_text.text,
        "original_output": result.original_result.output,
        "perturbed_output": result.perturbed_result.output,
        "num_queries": int(result.perturbed_result.num_queries),
        "num_words": len(result.original_result.attacked_text.words),
        # TextAttack's WordsPerturbed metric: words that differ, position by position
        "num_words_perturbed": len(result.original_result.attacked_text.all_words_diff(
            result.perturbed_result.attacked_text)),
    }


def run_recipe(recipe: str, predict_proba: Callable[[list], Any],
               dataset: Sequence[tuple[Any, int]], seed: int = 0,
               query_budget: int | None = None) -> dict[str, Any]:
    """Run TextAttack's ``deepwordbug`` (DeepWordBugGao2018), ``pruthi``
    (Pruthi2019) or ``badchars-<type>`` (BadCharacters2021, :data:`BADCHARS_TYPES`,
    search budget :data:`BADCHARS_SEARCH`) adversarial search against ``predict_proba``.
    BadCharacters2021 is a targeted recipe: each example's target is the next
    class, (label + 1) mod C, which for a binary task is the untargeted goal.

    Args:
        recipe: ``"deepwordbug"`` or ``"pruthi"``.
        predict_proba: ``list[str] -> array [N, C]`` of class scores.
        dataset: ``(text, label)`` pairs; ``text`` may be a tuple for pair
            tasks (fields ``text_a``, ``text_b``).
        seed: seeds the global RNGs during the run (restored afterwards).
        query_budget: maximum model queries per example (``None``: no limit).

    Returns:
        A dict with ``attack_success_rate`` (succeeded / (succeeded + failed),
        NaN if none were attacked), ``num_attacked`` (= succeeded + failed),
        ``num_skipped`` (already misclassified), ``num_failed``,
        ``num_succeeded``, ``avg_num_queries`` (over attacked examples) and
        ``avg_words_perturbed`` / ``avg_perturbed_word_share`` (TextAttack's
        WordsPerturbed: over succeeded attacks) and ``records`` (one dict per example).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
    ta = import_textattack()
    records = []
    with seeded_global_rngs(seed):
        wrapper = _model_wrapper_class()(predict_proba)
        if recipe in BADCHARS_TYPES:
            attack = ta.attack_recipes.BadCharacters2021.build(
                wrapper, goal_function_type="targeted_classification", perturbation_type=BADCHARS_TYPES[recipe],
                allow_skip=True, target_class=0, **BADCHARS_SEARCH)
            n_classes = np.asarray(predict_proba([dataset[0][0]])).shape[1] if len(dataset) else 2
        else:
            attack = getattr(ta.attack_recipes, RECIPES[recipe]).build(wrapper)
        if query_budget is not None:
            attack.goal_function.query_budget = query_budget
        for i, (text, label) in enumerate(dataset):
            if recipe in BADCHARS_TYPES:
                attack.goal_function.target_class = (int(label) + 1) % n_classes
            result = attack.attack(_to_example(text), int(label))
            records.append(_result_record(i, int(label), result, ta))
    counts = {s: sum(r["status"] == s for r in records) for s in ("succeeded", "failed", "skipped")}
    attacked = [r for r in records if r["status"] != "skipped"]
    succeeded = [r for r in records if r["status"] == "succeeded"]
    nan = float("nan")
    return {
        "recipe": recipe,
        "attack_success_rate": counts["succeeded"] / len(attacked) if attacked else nan,
        "num_attacked": len(attacked),
        "num_skipped": counts["skipped"],
        "num_failed": counts["failed"],
        "num_succeeded": counts["succeeded"],
        "avg_num_queries": (float(np.mean([r["num_queries"] for r in attacked]))
                            if attacked else nan),
        "avg_words_perturbed": (float(np.mean([r["num_words_perturbed"] for r in succeeded]))
                                if succeeded else nan),
        "avg_perturbed_word_share": (float(np.mean([r["num_words_perturbed"] / max(r["num_words"], 1)
                                                    for r in succeeded])) if succeeded else nan),
        "records": records,
    }
