"""The official protocol pieces (harness.eval.official_scorers, harness.eval.protocols) against hand-worked cases
from april-tools/pixar's notebooks and LatentPixel/utils.py."""
import dataclasses
import re

import pytest

from harness.tasks import babi_generator as babi_gen

from harness.eval import protocols as pp
from harness.results import stats

from harness.eval import official_scorers as ps
from harness.tasks import babi


# ---- process_lambda ------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, out", [
    # lambada_test_plain_text.txt line 1 (tail): quotes, spaces before punctuation, contractions
    ("a guardian angel . `` figured if you 're going to be out at night getting hit by cars , you might as "
     "well have some backup . '' i look at him",
     'a guardian angel. "figured if you\'re going to be out at night getting hit by cars, you might as '
     'well have some backup." i look at him'),
    ("i do n't know , he 's here and i 'm there", "i don't know, he's here and i'm there"),
    ("they 're sure we 'll go , you 'd see", "they're sure we'll go, you'd see"),
    ("wait ! yes ; no : maybe", "wait ! yes ; no : maybe"),  # ! ; : keep their space (quirk)
    ("a ( b ) c", "a( b) c"),  # the space BEFORE ( is dropped, the one after it kept (quirk)
    ("x < y > z { w }", "x< y> z{ w}"),
    ("gon na wan na", "gon na wan na"),  # only n't/'re/'d/'s/'m and the listed marks join
    ("she said `` no '' .", 'she said "no".'),  # '`` ' -> '"', " ''" -> '"', then ' .' -> '.'
    ("``hi''", '"hi"'),  # bare `` and '' too
    ("end .", "end."),  # the last character is appended after the loop
    ("the dogs '", "the dogs'"),  # a space before the final quote is dropped by the first rule
    ("a", "a"),
])
def test_process_lambda_hand_worked(raw, out):
    assert ps.process_lambda(raw) == out


def test_process_lambda_official_crash_cases_are_clear_errors():
    with pytest.raises(ValueError, match="IndexError"):
        ps.process_lambda("the dogs'")  # official: raw[idx+2] out of range
    with pytest.raises(ValueError, match="empty"):
        ps.process_lambda("")


def test_lambada_paper_examples_match_the_notebook(data_dir):
    spec = pp.get_protocol("lambada", "paper")
    ex = pp.load_examples(spec, data_dir)
    assert len(ex) == 5153
    # lambada.ipynb: cell 12 `target` -> 'tabitha' (idx 1106), cell 16 -> 'bastian' (idx 2300), cell 78
    # generated[0][1] -> 'signs'
    assert (ex[1106]["target"], ex[2300]["target"], ex[0]["target"]) == ("tabitha", "bastian", "signs")
    assert ex[0]["prompt"].startswith("in my palm is a clear stone, and inside it is a small ivory statuette. "
                                      'a guardian angel. "figured if you\'re going to be out at night')
    assert ex[0]["prompt"].endswith("i don't care about") and ex[0]["source"].endswith("plain_text.txt:1")
    assert not any(re.search(r"[A-Z]", e["target"]) for e in ex)  # the original set is lower-cased
    cased = pp.load_examples(pp.get_protocol("lambada", "paper-openai-cased"), data_dir)
    assert cased[0]["prompt"].endswith("I don't care about") and cased[0]["target"] == "signs"


# ---- scorers -------------------------------------------------------------------------------------
VOCAB = frozenset({"kitchen", "going", "bastian", "home"})


@pytest.mark.parametrize("text, target, ok", [
    ("qoinq home", "going", True), ("going.", "going", True),  # g -> q on both sides
    (" going", "going", False), ('"going', "going", False),  # ^([a-zA-Z]*) on the raw text: '' here
    ("Going", "going", False),  # case-sensitive; capital G is not folded
    ("goingto", "going", False), ("", "going", False), ("kitchen\n", "kitchen", True),
    ("Kitchen", "Kitchen", True),  # bAbI answers are lower-case, but the rule itself is symmetric
])
def test_notebook_scorer(text, target, ok):
    assert ps.notebook_correct(text, target) is ok


def test_notebook_readability_first_token_punctuation_kept():
    assert ps.notebook_readable("Kitchen is", VOCAB) and ps.notebook_readable("  home\n", VOCAB)
    assert not ps.notebook_readable("kitchen. is", VOCAB) and not ps.notebook_readable("", VOCAB)


@pytest.mark.parametrize("text, target, ok", [
    ("going", "going", False),  # the prediction's fold is discarded: raw 'going' != folded 'qoinq'
    ("qoinq", "going", True), ("qoinq!", "going", True),
    ("bastian", "bastian", True), ("Bastian", "bastian", False),  # raw prediction, target lower-cased
    ("bastian", "Bastian", True),  # t.replace('g', 'q').lower()
    (" bastian", "bastian", False),  # re.match: no letter at position 0
])
def test_evluate_scorer(text, target, ok):
    assert ps.evluate_correct(text, target) is ok


def test_evluate_readability_uses_the_alphabetic_run():
    assert ps.evluate_readable("kitchen.", VOCAB) and ps.evluate_readable("Kitchen!!", VOCAB)
    assert not ps.notebook_readable("kitchen.", VOCAB)  # the two notebooks' rules differ here
    assert not ps.evluate_readable("'kitchen", VOCAB)


def test_scorer_union_and_harness_rule():
    nb = ps.get_scorer("notebook")
    res = nb.score({"glyph": "qarden", "tesseract": "xx"}, "garden", VOCAB)
    assert res == {"prediction": {"glyph": "qarden", "tesseract": "xx"}, "correct": {"glyph": True, "tesseract": False},
                   "correct_union": True, "readable": False}
    assert nb.score({"glyph": "home"}, "x", None)["readable"] is None
    harness = ps.get_scorer("harness")
    assert harness.correct(' "kitchen."', "kitchen") and not nb.correct(' "kitchen."', "kitchen")
    with pytest.raises(ValueError, match="unknown scorer"):
        ps.get_scorer("paddle")
    with pytest.raises(ValueError, match="no OCR readings"):
        nb.score({}, "x", None)


# ---- bAbI sample construction --------------------------------------------------------------------
LUA_TWO_STORIES = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary?\tbathroom\t1
4 Daniel went to the office.
5 John journeyed to the garden.
6 Where is John?\tgarden\t5
1 Sandra travelled to the kitchen.
2 Sandra moved to the office.
3 Where is Sandra?\toffice\t2"""


def test_gen_babi_port_hand_worked():
    assert ps.gen_babi_samples(LUA_TWO_STORIES, "|", "") == [
        ("Mary moved to the bathroom. John went to the hallway. Where is Mary? | bathroom Daniel went to the "
         "office. John journeyed to the garden. Where is John? |", "garden"),
        ("Sandra travelled to the kitchen. Sandra moved to the office. Where is Sandra? |", "office"),
    ]
    assert ps.gen_babi_samples(LUA_TWO_STORIES, "Answer:", "")[1][0].endswith("Where is Sandra? Answer:")
    with pytest.raises(ValueError, match="line 2"):
        ps.gen_babi_samples("1 Mary moved.\nno number")


def test_one_sample_per_story_last_question_matches_the_port():
    stories = babi_gen.generate_stories(40, seed=5)  # Lua style, what babi-tasks writes
    text = babi_gen.format_stories(stories)
    official = ps.gen_babi_samples(text, "|", "")
    ours = babi.last_question_per_story(babi.parse_babi_lines(text.splitlines(), 1))
    assert len(official) == len(ours) == 40
    assert [(q.paper_prompt(), q.answer) for q in ours] == official
    for q in ours:  # the 5th question, the 4 earlier answered in context
        assert len(q.context) == 14 and q.paper_prompt().count(" | ") == 4 and q.paper_prompt().endswith("? |")
        assert q.answer in babi_gen.LOCATIONS
    spec = dataclasses.replace(pp.get_protocol("babi", "paper"), babi_stories=40)
    ex = pp.load_examples(spec, seed=5)
    assert [(e["prompt"], e["target"]) for e in ex] == official and ex[3]["idx"] == 3


def test_gen_babi_on_the_released_format_keeps_a_double_space():
    # the released files have "? \t": the official regex keeps that space, so " |" follows two spaces
    released = babi_gen.format_stories(babi_gen.generate_stories(2, seed=0, style="released"))
    assert "?  |" in ps.gen_babi_samples(released)[0][0]


def test_babi_paper_on_qa1_test(data_dir):
    ex = pp.load_examples(pp.get_protocol("babi", "paper-qa1-last"), data_dir)
    assert len(ex) == 200 and ex[0]["target"] == "kitchen"  # line 15 of qa1 test: "Where is Sandra? \tkitchen"
    assert ex[0]["prompt"].endswith("Sandra moved to the kitchen. Where is Sandra? |")
    assert ex[0]["source"].endswith("qa1_single-supporting-fact_test.txt:15")
    assert len(pp.load_examples(pp.get_protocol("babi", "paper-all-questions"), data_dir)) == 1000


# ---- registry, strip, crop, cap ------------------------------------------------------------------
def test_registry():
    assert pp.protocol_names("lambada") == ["paper", "paper-evluate", "paper-openai-cased", "paper-gpt2-official"]
    assert pp.protocol_names("babi") == ["paper", "paper-qa1-last", "paper-all-questions", "paper-gpt2-official"]
    for task in ("lambada", "babi"):  # GPT-2's official rules: text models only, 1 new token (max_length=5 total)
        off = pp.get_protocol(task, "paper-gpt2-official")
        assert off.text_only and off.engines == ("text",) and off.scorer == "gpt2-official"
        assert off.text_decoding.startswith("hf-max-length-5-") and "max_length=5" in off.official
    assert pp.get_protocol("lambada", "paper").text_decoding == "greedy-5-new"
    lam, bab = pp.get_protocol("lambada", "paper"), pp.get_protocol("babi", "paper")
    assert (lam.positions, lam.strip_positions, lam.scorer, lam.data) == (4, 360, "notebook", "lambada-original")
    assert (bab.positions, bab.strip_positions, bab.babi_stories, bab.prompt_prep) == (5, 400, 10000, "last-question")
    for spec in (lam, bab):
        assert spec.engines == ("glyph", "tesseract") and spec.stop_at_eos is False and spec.spacing_px == 3
        assert spec.vocabulary == "paper-official"
    assert lam.vocab_eval_words is False and bab.vocab_eval_words is True  # lambada.ipynb `for a, b in data`
    assert pp.get_protocol("babi", "paper-all-questions").scorer == "harness"
    assert lam.to_dict()["label"] == "lambada:paper" and lam.to_dict()["engines"] == ["glyph", "tesseract"]
    with pytest.raises(ValueError, match="known: paper, paper-qa1-last"):
        pp.get_protocol("babi", "official")
    with pytest.raises(ValueError, match="unknown data"):
        dataclasses.replace(lam, data="cbt")


def test_context_budget_and_cap():
    lam, bab = pp.get_protocol("lambada", "paper"), pp.get_protocol("babi", "paper")
    assert pp.context_budget(lam, 360) == 356 and pp.context_budget(lam, 96) == 92
    assert pp.context_budget(bab, 1000) == 395 and pp.context_budget(bab, 360) == 355
    assert pp.context_budget(pp.get_protocol("lambada", "paper-openai-cased"), 96) == 92
    capped = pp.with_context_cap(lam, 40)
    assert pp.context_budget(capped, 96) == 40 and capped.label == "lambada:paper+cap40" and lam.context_cap is None
    with pytest.raises(ValueError, match="no room"):
        pp.context_budget(bab, 5)
    # rows of 10, 20, 30, 40 positions: c + 4 <= 30 for half of them -> cap 26; all of them reach 10 -> 6
    assert pp.cap_for_training_lengths([40, 10, 30, 20], 4, coverage=0.5) == 26
    assert pp.cap_for_training_lengths([40, 10, 30, 20], 4, coverage=1.0) == 6
    with pytest.raises(ValueError, match="too short"):
        pp.cap_for_training_lengths([3, 4], 4)


def test_score_rows_summarise_and_paired_difference():
    spec = pp.get_protocol("babi", "paper")
    examples = [{"idx": i, "prompt": "p", "target": t} for i, t in enumerate(["garden", "kitchen", "office", "office"])]
    reads = {"glyph": ["qarden", "kitchen.", "x", "office"], "tesseract": ["", "kitchen", "office", "offce"]}
    rows = pp.score_rows(spec, examples, reads, VOCAB)
    assert [r["correct_union"] for r in rows] == [True, True, True, True]
    assert [r["correct"]["tesseract"] for r in rows] == [False, True, True, False]
    assert [r["readable"] for r in rows] == [False, True, False, False]
    m = pp.summarise(spec, rows)
    assert m["protocol"] == "babi:paper" and m["n"] == 4
    assert m["acc_union"]["estimate"] == 1.0 and m["acc_union"]["low"] == pytest.approx(0.5101, abs=1e-4)
    assert m["acc_tesseract"]["estimate"] == 0.5 and m["readability"]["method"] == "wilson"
    with pytest.raises(ValueError, match="tesseract"):
        pp.score_rows(spec, examples, {"glyph": reads["glyph"]}, VOCAB)
    worse = pp.score_rows(spec, examples, {"glyph": ["x"] * 4, "tesseract": ["", "kitchen", "", ""]}, VOCAB)
    d = pp.paired_difference(rows, worse, resamples=500)
    assert d.estimate == 0.75 and d.method == "newcombe-paired"  # 0/1 flags: Newcombe's paired interval
    assert d == stats.paired_proportion_diff([1, 1, 1, 1], [0, 1, 0, 0]) and 0.0 < d.low < 0.75 < d.high < 1.0
    t = pp.paired_difference(rows, worse, metric="correct", engine="tesseract", resamples=500)
    assert t.estimate == 0.25
    with pytest.raises(ValueError, match="different examples"):
        pp.paired_difference(rows, worse[:3])
    sub = pp.paired_difference(rows, worse[:2], resamples=500, common=True)  # a run on a subset: paired on it
    assert sub.n == 2 and sub.estimate == 0.5
    with pytest.raises(ValueError, match="no example in common"):
        pp.paired_difference(rows[:2], worse[2:], common=True)


def test_fit_labels_count_cut_prompts():
    """A run that cut prompts is labelled +fit<N> with the count and share; one that cut nothing keeps its label."""
    from pixar.config import RenderConfig
    from pixar.render.renderer import Renderer

    assert pp.fit_label("lambada:paper", 91, 0) == "lambada:paper" and pp.fit_label("babi:paper", 91, 3) == "babi:paper+fit91"
    rec = pp.fit_record("babi:paper", 91, "positions", [True, False, True, True])
    assert rec == {"protocol": "babi:paper", "label": "babi:paper+fit91", "budget": 91, "unit": "positions", "cut": 3,
                   "n": 4, "share": 0.75}
    renderer = Renderer(RenderConfig(max_positions=32))
    spec = pp.get_protocol("babi", "paper")
    budget, cuts = pp.count_pixel_cuts(renderer, spec, 32, ["Mary went to the kitchen. Where is Mary? |" * 3,
                                                             "Where is Mary? |"])
    assert budget == pp.context_budget(spec, 32) == 27 and cuts == [True, False]
