"""Baselines trained fairly: compute in named units (hand-computed on tiny configs), early stopping that stops on a
plateau and restores the best weights, an lr sweep that keeps the best dev score, the story-preserving dev split,
the corpus-restricted GPT-2 vocabulary (round trip, unseen ids, save/load), and the seed x example interval."""
import json

import numpy as np
import pytest
import torch

from harness.models.compute import (ComputeUnitError, ParamCounts, budget, gpt2_params, match_record, pixar_params,
                                    steps_for)
from harness.models.finetune import TaskFinetuneConfig, fit_to_plateau
from harness.models.plateau import EarlyStopping, FitResult, story_split, sweep_lrs
from harness.results.seeds import seed_example_bootstrap, seed_summary


# ---- compute units ------------------------------------------------------------------------------
def test_param_counts_of_tiny_models_by_hand():
    from pixar.config import ModelConfig
    from pixar.model.transformer import Pixar

    from harness.models.gpt2_pretrain import GPT2BaselineConfig, GPT2ModelConfig, build_gpt2

    # PIXAR hidden 8, 1 layer, ffn 12, 2x2 patches of length 2 -> 8 pixels per position
    # embed 8x8 + head 8x8 = 128; block: 2 RMSNorms 16 + q,k,v,o 4x64 + gate,up,down 3x96 = 560; final norm 8
    px = Pixar(ModelConfig(hidden=8, layers=1, heads=2, ffn=12, patch_size=2, patch_len=2, max_positions=8))
    assert pixar_params(px) == ParamCounts(non_embedding=568, matmul=696)
    # GPT-2 n_embd 8, 1 layer, n_inner 16, vocab 10, 16 positions: wte 80, wpe 128 (embedding);
    # block: ln 16 + c_attn 8x24+24 + c_proj 64+8 + ln 16 + fc 8x16+16 + proj 16x8+8 = 600; ln_f 16
    cfg = GPT2BaselineConfig(model=GPT2ModelConfig(n_embd=8, n_layer=1, n_head=2, n_inner=16, n_positions=16))
    g = build_gpt2(cfg, vocab_size=10, eos_id=9, seed=0)
    assert gpt2_params(g) == ParamCounts(non_embedding=616, matmul=616 + 80)  # + the tied output layer


def test_budget_units_and_matching_by_hand():
    pixar = budget(ParamCounts(568, 696), steps=10, batch=4, positions=10 * 4 * 8)  # 320 positions
    assert (pixar.examples, pixar.positions) == (40, 320)
    assert pixar.non_embedding_flops == 6 * 568 * 320 == 1_090_560
    assert pixar.total_flops == 6 * 696 * 320
    gparams = ParamCounts(616, 696)
    # non-embedding: 1,090,560 / (6 x 616 x 4 x 10.0 per step = 147,840) = 7.38 -> 7 steps
    assert steps_for(pixar.non_embedding_flops, "non_embedding_flops", gparams, 4, 10.0) == 7
    assert steps_for(pixar.total_flops, "total_flops", gparams, 4, 10.0) == 8  # 1,336,320 / 167,040 = 8.0
    assert steps_for(pixar.examples, "examples", gparams, 4, 10.0) == 10
    gpt = budget(gparams, 7, 4, 7 * 4 * 10)
    rec = match_record("fine-tuning", "non_embedding_flops", pixar, gpt)
    assert rec["unit"] == "non_embedding_flops" and set(rec["pixar"]) >= {"non_embedding_flops", "total_flops", "examples"}
    assert rec["ratio"]["non_embedding_flops"] == pytest.approx(6 * 616 * 280 / 1_090_560)
    assert rec["ratio"]["examples"] == pytest.approx(28 / 40)
    with pytest.raises(ComputeUnitError, match="unknown compute unit 'flops'"):
        steps_for(1.0, "flops", gparams, 4, 10.0)


def test_demo_matching_is_equal_in_the_named_unit_and_records_all_three(tmp_path):
    from harness.study.demo_setup import compute_matching

    class Words:  # whitespace "BPE" with a small vocabulary: the matching only needs lengths and the size
        eos_token_id = 3

        def __len__(self):
            return 4

        def __call__(self, texts):
            return {"input_ids": [[0] * len(t.split()) for t in texts]}

    rng = np.random.default_rng(0)
    texts = [" ".join(["w"] * int(n)) for n in rng.integers(20, 90, size=64)]
    m = compute_matching(texts, texts, Words(), seed=0)
    assert m["unit"] == "non_embedding_flops" and m["units"] == ["non_embedding_flops", "total_flops", "examples"]
    for phase in ("pretraining", "finetuning"):
        rec = m[phase]
        for side in ("pixar", "gpt2"):
            assert set(rec[side]) == {"steps", "examples", "positions", "non_embedding_flops", "total_flops"}
        # equal within one GPT-2 step; the flat keys the table reads carry the matched unit
        assert abs(rec["ratio"]["non_embedding_flops"] - 1) <= 1 / rec["gpt2_steps"]
        assert rec["pixar_flops"] == rec["pixar"]["non_embedding_flops"] and rec["gpt2_steps"] == rec["gpt2"]["steps"]
    # PIXAR's non-embedding parameters (2 blocks of 128) and GPT-2's (2 blocks of 128) are within 1%
    assert abs(m["finetuning"]["gpt2_params"]["non_embedding"] / m["pixar_params"]["non_embedding"] - 1) < 0.01


# ---- early stopping, the lr sweep, the dev split ---------------------------------------------------
def test_early_stopping_stops_on_a_plateau_and_restores_the_best_weights():
    model = torch.nn.Linear(1, 1, bias=False)
    stop = EarlyStopping(model, patience=2)
    scores = [3.0, 2.0, 1.0, 1.5, 1.2, 0.5]
    stopped_at = None
    for step, score in enumerate(scores, 1):
        with torch.no_grad():
            model.weight.fill_(float(step))
        if stop.update(step, score):
            stopped_at = step
            break
    assert stopped_at == 5 and stop.best_step == 3 and stop.best_score == 1.0  # two evaluations without improvement
    stop.restore()
    assert float(model.weight.detach()) == 3.0


def test_fit_to_plateau_stops_when_dev_turns_and_keeps_the_best_dev_weights():
    """Training pulls w to 2, dev wants w = 1: dev loss falls, then rises; the run stops and keeps w ~ 1."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    x = torch.linspace(-1, 1, 32).unsqueeze(1)

    def loss_fn(batch):
        return ((model(batch) - 2 * batch) ** 2).mean()

    def dev_loss():
        with torch.no_grad():
            return float(((model(x) - x) ** 2).mean())

    fc = TaskFinetuneConfig.of(steps=400, lr=0.05, batch_size=4, seed=0, dev_fraction=0.1, eval_every=5, patience=3,
                            dev_metric="loss")
    records, summary = fit_to_plateau(model, fc, 32, loss_fn, lambda ids: x[ids], lambda: {"loss": dev_loss()}, lambda b: 1,
                                      ParamCounts(1, 1), "test", progress=False)
    chosen = summary["chosen"]
    assert chosen["stopped_early"] and chosen["steps_run"] < 400
    assert chosen["steps_run"] == chosen["best_step"] + 3 * 5  # patience 3 evaluations of 5 steps after the best
    assert abs(float(model.weight.detach()) - 1) < 0.15 and dev_loss() == pytest.approx(chosen["best_dev"])
    best_seen = min(h["dev"] for h in chosen["dev_history"])
    assert chosen["best_dev"] == best_seen
    used = chosen["used_to_best"]
    assert used["steps"] == chosen["best_step"] and used["examples"] == 4 * chosen["best_step"]
    assert used["non_embedding_flops"] == 6 * 1 * 4 * chosen["best_step"]  # width 1, one parameter


def test_sweep_picks_the_lr_with_the_best_dev_score_and_keeps_its_weights():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(7.0)
    starts = []

    def fit(lr):
        starts.append(float(model.weight.detach()))  # every lr starts from the same weights
        with torch.no_grad():
            model.weight.fill_(lr * 1000)
        return FitResult(lr, {1e-3: 0.9, 3e-3: 0.4, 1e-2: 0.7}[lr], 10, 20, True, [])

    best, runs = sweep_lrs(model, [1e-3, 3e-3, 1e-2], fit)
    assert best.lr == 3e-3 and [r.lr for r in runs] == [1e-3, 3e-3, 1e-2]
    assert starts == [7.0, 7.0, 7.0] and float(model.weight.detach()) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="dev split"):
        TaskFinetuneConfig(lrs=[1e-3, 2e-3]).sweep()


def test_story_split_never_cuts_a_story():
    pairs = []
    for s in range(10):
        ctx = f"S{s}."
        for q in range(3):
            ctx = f"{ctx} Q{q}? |"
            pairs.append((ctx, f"a{s}{q}"))
            ctx = f"{ctx} a{s}{q}"
    train, dev = story_split(pairs, 0.2)
    assert len(train) + len(dev) == 30 and len(dev) == 6 and dev[0][0].startswith("S8.")
    assert not any(d[0].startswith(t[0]) for d in dev for t in train)


# ---- corpus-restricted GPT-2 vocabulary ----------------------------------------------------------------
@pytest.fixture(scope="module")
def base_tokenizer():
    from harness.models.gpt2_baselines import gpt2_tokenizer

    return gpt2_tokenizer()


def test_restricted_vocab_round_trip_and_unseen_tokens(base_tokenizer, tmp_path):
    from harness.models.gpt2_vocab import UNSEEN_TEXT, RestrictedTokenizer, load_restricted

    corpus = ["Mary went to the kitchen. Where is Mary? | kitchen", "John moved to the garden."]
    tok = RestrictedTokenizer.from_texts(base_tokenizer, corpus)
    base_ids = sorted({i for t in corpus for i in base_tokenizer(t)["input_ids"]} | {50256})
    assert tok.kept == base_ids and len(tok) == len(base_ids) + 1 and tok.unseen_id == len(base_ids)
    assert tok.eos_token_id == base_ids.index(50256)
    for text in corpus + ["John went to the kitchen."]:  # any text made of kept tokens decodes back exactly
        ids = tok(text)["input_ids"]
        assert max(ids) < tok.unseen_id and tok.decode(ids) == text
        assert tok.to_base(ids) == base_tokenizer(text)["input_ids"]  # tokenization unchanged
    ids = tok("Mary went to the zebra.")["input_ids"]
    k = sum(i == tok.unseen_id for i in ids)  # " zebra": BPE pieces none of which the corpus has
    assert k >= 1 and tok.decode(ids) == "Mary went to the" + UNSEEN_TEXT * k + "."
    assert tok.unseen_share(["Mary went to the zebra."]) == (sum(i == tok.unseen_id for i in ids), len(ids))
    tok.save_pretrained(tmp_path)
    back = load_restricted(tmp_path, base_tokenizer)
    assert back.kept == tok.kept and back("Mary went to the zebra.")["input_ids"] == ids
    assert load_restricted(tmp_path / "none", base_tokenizer) is None


def test_restricted_gpt2_saves_loads_and_generates(base_tokenizer, tmp_path):
    from harness.models.gpt2_baselines import greedy_continuations, load_gpt2
    from harness.models.gpt2_pretrain import GPT2BaselineConfig, GPT2ModelConfig, build_gpt2, save_gpt2
    from harness.models.gpt2_vocab import RestrictedTokenizer

    tok = RestrictedTokenizer.from_texts(base_tokenizer, ["Mary went to the kitchen. Where is Mary? | kitchen"])
    cfg = GPT2BaselineConfig(model=GPT2ModelConfig(n_embd=8, n_layer=1, n_head=2, n_inner=16, n_positions=32))
    model = build_gpt2(cfg, len(tok), tok.eos_token_id, seed=0)
    assert model.lm_head.weight.shape[0] == len(tok)
    save_gpt2(model, tok, tmp_path / "m", {"name": "tiny"})
    assert json.loads((tmp_path / "m" / "restricted_vocab.json").read_text())["unseen_id"] == tok.unseen_id
    loaded, ltok, _ = load_gpt2(str(tmp_path / "m"))
    assert isinstance(ltok, RestrictedTokenizer) and ltok.kept == tok.kept
    out = greedy_continuations(loaded, ltok, ["Where is Mary? |", "Mary went to the zebra."], 3, progress=False)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)


# ---- seeds -----------------------------------------------------------------------------------------------
def test_seed_example_bootstrap_covers_seed_spread():
    same = [[1, 0, 1, 0] * 10] * 3  # three identical seeds: only example variation
    apart = [[1] * 20 + [0] * 20, [1] * 8 + [0] * 32, [1] * 32 + [0] * 8]  # same mean 0.5, seeds far apart
    a, b = seed_example_bootstrap(same, seed=1), seed_example_bootstrap(apart, seed=1)
    assert a.estimate == b.estimate == 0.5 and "3 seeds" in a.method and a.n == 40
    assert (b.high - b.low) > (a.high - a.low)  # the spread over seeds widens the interval
    assert seed_example_bootstrap(apart, seed=1) == b  # seeded: the same interval again
    s = seed_summary(apart)
    assert s["per_seed"] == [0.5, 0.2, 0.8] and s["sd"] == pytest.approx(0.3) and s["seeds"] == 3
    assert seed_summary([[1, 0]])["sd"] is None
    with pytest.raises(ValueError, match="seeds x examples"):
        seed_example_bootstrap([])


def test_dev_score_is_accuracy_first_then_loss():
    from harness.models.finetune import dev_score

    one_example = 1 / 200
    assert dev_score({"accuracy": 0.0, "loss": 0.10}, "accuracy") < dev_score({"accuracy": 0.0, "loss": 0.12}, "accuracy")
    assert (dev_score({"accuracy": one_example, "loss": 9.0}, "accuracy")
            < dev_score({"accuracy": 0.0, "loss": 0.0}, "accuracy"))  # one more right answer beats any loss < 10
    assert dev_score({"accuracy": 0.5, "loss": 0.3}, "loss") == 0.3


def test_gpt2_finetune_with_dev_sweeps_and_reports_what_it_used(base_tokenizer):
    from harness.models.finetune import finetune_gpt2
    from harness.models.gpt2_pretrain import GPT2BaselineConfig, GPT2ModelConfig, build_gpt2
    from harness.models.gpt2_vocab import RestrictedTokenizer
    from harness.tasks import babi

    pairs = [(q.paper_prompt(), q.answer) for q in babi.generated_task1(40, seed=0)]  # small: a fast test
    tok = RestrictedTokenizer.from_texts(base_tokenizer, [f"{p} {a}" for p, a in pairs])
    cfg = GPT2BaselineConfig(model=GPT2ModelConfig(n_embd=16, n_layer=1, n_head=2, n_inner=32, n_positions=128))
    model = build_gpt2(cfg, len(tok), tok.eos_token_id, seed=0)
    fc = TaskFinetuneConfig(steps=12, batch_size=4, lrs=[1e-4, 3e-3, 3e-2], dev_fraction=0.2, eval_every=4,
                            patience=2)
    records, s = finetune_gpt2(model, tok, pairs, fc, progress=False)
    assert s["lr"] in fc.lrs and [r["lr"] for r in s["sweep"]] == fc.lrs
    assert s["chosen"]["best_dev"] == min(r["best_dev"] for r in s["sweep"])  # the sweep kept the best dev score
    assert 0 <= s["chosen"]["best_dev_accuracy"] <= 1 and "best_dev_loss" in s["chosen"]
    for r in s["sweep"]:
        assert r["best_step"] <= r["steps_run"] <= 12 and r["used_to_best"]["steps"] == r["best_step"]
        assert r["used_to_stop"]["examples"] == 4 * r["steps_run"]
        assert r["used_to_stop"]["non_embedding_flops"] == 6 * s["params"]["non_embedding"] * r["used_to_stop"]["positions"]
    assert s["used_sweep_total"]["steps"] == sum(r["steps_run"] for r in s["sweep"])
    assert any("dev_accuracy" in r for r in records)


def test_no_early_stop_before_min_steps_but_the_best_weights_are_kept():
    """A flat start (dev score never improves): patience is spent at step 4x5 = 20, but min_steps holds the run
    to 60; the weights of the first (best) evaluation come back."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    x = torch.ones(8, 1)
    first = {}

    def dev_eval():
        first.setdefault("w", float(model.weight.detach()))
        return {"loss": 1.0, "accuracy": 0.0}

    fc = TaskFinetuneConfig.of(steps=100, lr=0.01, batch_size=2, seed=0, dev_fraction=0.1, eval_every=5, patience=3,
                            min_steps=60)
    _, s = fit_to_plateau(model, fc, 8, lambda b: ((model(b) - 3) ** 2).mean(), lambda ids: x[ids], dev_eval,
                          lambda b: 1, ParamCounts(1, 1), "test", progress=False)
    assert s["chosen"]["steps_run"] == 60 and s["chosen"]["best_step"] == 5 and s["min_steps"] == 60
    assert float(model.weight.detach()) == pytest.approx(first["w"])
