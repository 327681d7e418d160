"""PixarLM (over the PIXAR runner, `lm.runner`) against lm-eval's model contract: types, input order under
Collator reordering, empty context, rolling windows, `until` cutting, max_gen_toks budget, offline
simple_evaluate (PIXAR + GPT-2)."""
import math

import numpy as np
import pytest
import torch
from conftest import make_instance

from harness.models.lm_eval_adapter import PixarLM
from harness.models.layout import left_fit, positions_for_chars, window_plan


@pytest.fixture(scope="module")
def lm(micro_checkpoint):
    torch.set_num_threads(1)
    return PixarLM(checkpoint=str(micro_checkpoint), batch_size=2)


def ll_req(ctx, cont, i=0):
    return make_instance("loglikelihood", (ctx, cont), idx=i)


def gen_req(ctx, kw, i=0):
    return make_instance("generate_until", (ctx, kw), idx=i)


@pytest.mark.parametrize("n_prefix,n_target,P", [(1, 5, 48), (40, 5, 48), (1, 200, 48), (47, 1, 48), (3, 95, 8)])
def test_window_plan_scores_every_position_once(n_prefix, n_target, P):
    plans = window_plan(n_prefix, n_target, P)
    scored = [i for _, _, s, e in plans for i in range(s, e)]
    assert scored == list(range(n_prefix, n_prefix + n_target))
    for a, b, s, e in plans:
        assert b - a <= P and a < s  # each window fits and has context before its first scored position
        assert e == b  # scored positions are the window's last ones


def test_left_fit_keeps_a_word_suffix_that_fits(lm):
    text = " ".join(f"word{i}" for i in range(80))
    for budget in (1, 5, 20):
        fitted = left_fit(lm.runner.renderer, text, budget)
        assert text.endswith(fitted) and fitted
        assert int(lm.runner.renderer.render(fitted).eos_position[0]) <= budget
        if budget > 1:
            assert fitted.startswith("word")  # cut at a word start
    assert left_fit(lm.runner.renderer, "short text", 20) == "short text"


def test_loglikelihood_types_and_input_order(lm):
    reqs = [ll_req("The cat sat on the", " mat", 0), ll_req("a", " b", 1),
            ll_req("Mary went back to the kitchen and then to the", " garden", 2),
            ll_req("", " hello world", 3), ll_req("x y", " z", 4)]
    batched = lm.loglikelihood(reqs)
    assert len(batched) == len(reqs)
    for ll, greedy in batched:
        assert isinstance(ll, float) and isinstance(greedy, bool) and ll < 0 and math.isfinite(ll)
    single = [lm.loglikelihood([r])[0] for r in reqs]  # no reordering possible
    for (a, ga), (b, gb) in zip(batched, single):
        assert a == pytest.approx(b, rel=1e-4) and ga == gb
    # longer continuations cost more pixels
    assert lm.loglikelihood([ll_req("The", " cat")])[0][0] > lm.loglikelihood([ll_req("The", " catastrophically")])[0][0]


def test_empty_context_equals_rolling_and_empty_continuation(lm):
    (ll, _), = lm.loglikelihood([ll_req("", " hello world")])
    rolling = lm.loglikelihood_rolling([make_instance("loglikelihood_rolling", ("hello world",))])
    assert isinstance(rolling[0], float) and rolling[0] == pytest.approx(ll, rel=1e-5)
    assert lm.loglikelihood([ll_req("some context", " ")]) == [(0.0, True)]


def test_rolling_long_text_scores_each_position_once(lm):
    text = "the quick brown fox jumps over the lazy dog " * 12
    target = lm.runner.continuation_positions(text)
    assert target.shape[0] > 2 * lm.runner.P  # needs several windows
    prefix = lm.runner.context_positions([""], [1])[0]
    jobs = lm.runner.jobs(0, prefix, target)
    assert sum(e - s for _, _, s, e in jobs) == target.shape[0]
    assert all(seq.shape[0] <= lm.runner.P for _, seq, _, _ in jobs)
    ll = lm.loglikelihood_rolling([make_instance("loglikelihood_rolling", (text,))])[0]
    assert math.isfinite(ll) and ll < lm.loglikelihood_rolling([make_instance("loglikelihood_rolling", (text[:40],))])[0]


def test_compose_is_the_scoring_layout_plus_eos(lm):
    prompts, answers = ["Mary went to the kitchen. Where is Mary? |", "x " * 200], [" kitchen", " garden"]
    pos, mask = lm.runner.compose(prompts, answers)
    assert pos.shape == (2, lm.runner.P, lm.runner.H * lm.runner.pw) and mask.shape == (2, lm.runner.P)
    for i in range(2):
        t = lm.runner.continuation_positions(answers[i])
        c = lm.runner.context_positions([prompts[i]], [lm.runner.P - 1 - t.shape[0]])[0]
        n = c.shape[0] + t.shape[0]
        assert torch.equal(pos[i, : c.shape[0]], c.float()) and torch.equal(pos[i, c.shape[0]: n], t.float())
        assert (pos[i, n] == 0).all() and (pos[i, n + 1:] == 1).all()  # EOS block, then white padding
        assert int(mask[i].sum()) == n + 1
    # the long prompt was left-fitted: its context is the longest word-suffix whose rendering fits the budget
    run, k = lm.runner, lm.runner.continuation_positions(answers[1]).shape[0]
    fitted = left_fit(run.renderer, prompts[1], run.P - 1 - k)
    n_ctx = int(run.renderer.render(fitted).eos_position[0])
    assert n_ctx <= run.P - 1 - k < int(run.renderer.render("x " + fitted).eos_position[0])
    assert int(mask[1].sum()) == n_ctx + k + 1 <= run.P


def _clean_strip(lm, text):
    from pixar.model.transformer import unpatchify

    pos = lm.runner.continuation_positions(text)
    return unpatchify(pos[None], lm.runner.H)[0].numpy()  # uint8 [H, k*pw], 1 = white


def test_read_back_of_clean_continuation_positions(lm):
    assert lm.runner.read([_clean_strip(lm, " kitchen garden"), _clean_strip(lm, " Mary")]) == \
        {"glyph": ["kitchen garden", "Mary"]}


@pytest.mark.requires_tesseract
def test_union_reads_with_both_engines(lm):
    union = PixarLM(model=lm.runner.model, config=lm.runner.config, ocr="union")
    reads = union.runner.read([_clean_strip(lm, " kitchen")])
    assert set(reads) == {"glyph", "tesseract"} and reads["glyph"] == ["kitchen"]
    assert reads["tesseract"][0].strip() == "kitchen"


def test_is_greedy_reads_back_the_continuation(lm, monkeypatch):
    seen = []

    def fake_read(strips):
        seen.extend(s.shape for s in strips)
        return {"glyph": ["maq" for _ in strips]}  # g and q are one glyph: folded

    monkeypatch.setattr(lm.runner, "read", fake_read)
    out = lm.loglikelihood([ll_req("The cat sat on the", " mag"), ll_req("The cat sat on the", " rug")])
    assert [g for _, g in out] == [True, False]
    k = lm.runner.continuation_positions(" mag").shape[0]
    assert seen[0] == (lm.runner.H, k * lm.runner.pw)  # the greedy span has exactly the continuation's positions


def test_generate_until_cuts_at_until_and_char_budget(lm, monkeypatch):
    budgets = []
    real = lm.runner.generate_positions

    def spy(contexts, num_positions, **kw):
        budgets.extend(num_positions)
        return real(contexts, num_positions, **kw)

    monkeypatch.setattr(lm.runner, "generate_positions", spy)
    monkeypatch.setattr(lm.runner, "read", lambda strips: {"glyph": ["kitchen. Passage: Mary went" for _ in strips]})
    reqs = [gen_req("Where is Mary?", {"until": ["Passage:"], "max_gen_toks": 40}, 0),
            gen_req("Q", {"until": ["tch"], "max_gen_toks": 40}, 1),
            gen_req("Where is John?", {"until": "\n", "max_gen_toks": 3}, 2),
            gen_req("", {"until": [], "max_gen_toks": 100}, 3)]
    out = lm.generate_until(reqs)
    assert out == ["kitchen. ", "ki", "kit", "kitchen. Passage: Mary went"]
    assert sorted(set(budgets)) == sorted({positions_for_chars(n, lm.runner.P) for n in (40, 3, 100)})
    assert positions_for_chars(3, lm.runner.P) == math.ceil(3 / 3.3 * 1.25) + 1
    assert positions_for_chars(10_000, lm.runner.P) == lm.runner.P - 1  # capped to fit the strip


def test_generate_until_order_and_types_real_generation(lm):
    reqs = [gen_req("Mary went to the", {"until": ["\n"], "max_gen_toks": 8}, 0),
            gen_req("a", {"until": ["\n"], "max_gen_toks": 20}, 1),
            gen_req("John travelled to the office and then", {"until": ["\n"], "max_gen_toks": 8}, 2),
            gen_req("", {"until": ["\n"], "max_gen_toks": 20}, 3)]
    batched = lm.generate_until(reqs)
    assert all(isinstance(t, str) for t in batched)
    assert [len(t) <= kw for t, kw in zip(batched, (8, 20, 8, 20))] == [True] * 4
    assert batched == [lm.generate_until([r])[0] for r in reqs]


def test_registry_and_tokenizer_name(lm):
    from lm_eval.api.registry import get_model

    assert get_model("pixar") is PixarLM
    assert get_model("hf").__name__ == "HFLM"  # built-ins survive our registration
    assert lm.tokenizer_name == lm.runner.renderer.fingerprint() and lm.tokenizer_name.startswith("pixar-render-")
    with pytest.raises(ValueError, match="ocr"):
        PixarLM(model=lm.runner.model, config=lm.runner.config, ocr="paddle")


def _local_tasks(tmp_path, data_dir=None):
    import json

    from harness.tasks import babi_generator as babi_gen
    from harness.tasks import babi, lambada

    lam = tmp_path / "lambada_tiny.jsonl"
    lam.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                           ["the cat sat on the mat", "Mary went to the kitchen", "he opened the door"]))
    paths = babi_gen.write_task1(tmp_path / "babi", train=5, test=4, seed=1)
    return [lambada.lm_eval_task(lam, "lambada_tiny"), babi.lm_eval_task(1, paths["test"], "babi_tiny", max_gen_toks=8)]


def _evaluate(model, tasks):
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(model=model, tasks=tasks, task_manager=TaskManager(include_defaults=False),
                                   bootstrap_iters=0, log_samples=True)


def test_simple_evaluate_offline_with_pixar(lm, tmp_path):
    res = _evaluate(lm, _local_tasks(tmp_path))
    lam = res["results"]["lambada_tiny"]
    assert "babi_tiny" in res["results"]
    assert set(lam) >= {"acc,none", "nll,none", "perplexity,none"}
    assert lam["nll,none"] > 0  # pixel NLL in nats
    assert len(res["samples"]["lambada_tiny"]) == 3 and len(res["samples"]["babi_tiny"]) == 4
    nll = [s["nll"] for s in res["samples"]["lambada_tiny"]]
    assert lam["nll,none"] == pytest.approx(np.mean(nll))
    _check_samples_against_model(lm.runner, res)


def _check_samples_against_model(runner, res):
    """Every aggregate is the mean of its samples, and every sample is what the model itself returns."""
    lam, bab = res["results"]["lambada_tiny"], res["results"]["babi_tiny"]
    lam_s, bab_s = res["samples"]["lambada_tiny"], res["samples"]["babi_tiny"]
    assert lam["acc,none"] == pytest.approx(np.mean([s["acc"] for s in lam_s]))
    direct = runner.loglikelihood([tuple(s["arguments"][0][:2]) for s in lam_s])
    assert [float(s["acc"]) for s in lam_s] == [float(g) for _, g in direct]
    assert [s["resps"][0][0][0] for s in lam_s] == pytest.approx([ll for ll, _ in direct], rel=1e-4)
    assert bab["exact_match,first_word"] == pytest.approx(np.mean([s["exact_match"] for s in bab_s]))
    for s in bab_s:  # first word of the response vs the target, case/punctuation-insensitive
        said = s["filtered_resps"][0].strip().split()
        assert s["exact_match"] == float(bool(said) and said[0].strip(".,!?").lower() == str(s["target"]).lower())


def test_simple_evaluate_offline_with_random_gpt2(tmp_path, data_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    from harness.models.gpt2_baselines import gpt2_lm, gpt2_tokenizer

    tok = gpt2_tokenizer(data_dir)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=128)).eval()
    res = _evaluate(gpt2_lm(model, tok, batch_size=4), _local_tasks(tmp_path))
    lam = res["results"]["lambada_tiny"]
    assert lam["acc,none"] == 0.0 and lam["nll,none"] > 5  # a random 50k-way softmax: ~10.8 nats per token
    from harness.models import GPT2Runner

    _check_samples_against_model(GPT2Runner(model, tok, batch_size=4), res)
