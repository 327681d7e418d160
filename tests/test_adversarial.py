"""Stage 2 (adversarial training, pixar-paper.md §4): discriminator context, lambda_auto, the step, the run."""
from __future__ import annotations

import copy
import json
import math

import pytest
from helpers import need_data
import torch
import torch.nn.functional as F

from pixar.train.adversarial import (ADV_WEIGHT_EPS, LAMBDA_EPS, AdversarialError, AdversarialTrainer,
                               adversarial_forward, alpha_at, lambda_auto, sample_positions)
from pixar.train.stage2 import LOGGED_KEYS, train_stage2
from pixar.checkpoint.store import CheckpointError, load_state
from pixar.model.transformer import load_model
from pixar.checkpoint.store import save_step_checkpoint
from pixar.config import AdvConfig, ModelConfig, PixarConfig, RenderConfig, preset_path
from pixar.model.discriminator import Discriminator, PrefixKV, fake_attention_mask
from pixar.model.transformer import Pixar, patchify

T, D = 12, 128  # positions, pixels per position (8 x 16)


def tiny_cfg(**adv) -> PixarConfig:
    return PixarConfig(model=ModelConfig(hidden=32, layers=2, heads=4, ffn=64, max_positions=T),
                       render=RenderConfig(max_positions=T), adv=AdvConfig(**{"num_samples": 4, **adv}))


def tiny_models(seed: int = 0) -> tuple[Pixar, Discriminator, PixarConfig]:
    cfg = tiny_cfg()
    torch.manual_seed(seed)
    gen = Pixar(cfg.model)
    return gen, Discriminator.from_generator(gen, head_seed=seed + 1), cfg


def tiny_batch(seed: int = 0, B: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(B, 8, T * 16, generator=g) > 0.3).float()
    mask = torch.ones(B, T)
    mask[1, 7:] = 0  # a shorter row: padding after its EOS
    return pixels, mask


def const(lr: float):
    return lambda step: lr


# ---- the discriminator ----------------------------------------------------------------------
def test_discriminator_is_a_copied_backbone_with_two_way_head():
    gen, disc, cfg = tiny_models()
    g_state, d_state = gen.state_dict(), disc.state_dict()
    for k, v in g_state.items():
        if not k.startswith("head."):
            assert torch.equal(d_state[f"backbone.{k}"], v)
    assert not any(k.startswith("backbone.head") for k in d_state)
    assert disc.head.weight.shape == (2, cfg.model.hidden) and disc.head.bias.shape == (2,)
    with torch.no_grad():  # a deep copy: training D never touches G
        disc.backbone.embed.weight.add_(1.0)
    assert torch.equal(gen.embed.weight, g_state["embed.weight"])
    assert torch.equal(Discriminator.from_generator(gen, 7).head.weight, Discriminator.from_generator(gen, 7).head.weight)


def test_fake_attention_mask_layout():
    mask = fake_attention_mask(torch.tensor([0, 2]), prefix_len=4)
    expected = torch.tensor([[1, 0, 0, 0, 1, 0],
                             [1, 1, 1, 0, 0, 1]], dtype=torch.bool)
    assert mask.shape == (1, 1, 2, 6) and torch.equal(mask[0, 0], expected)


def test_fake_score_equals_full_recompute_of_real_prefix_plus_fake():
    _, disc, _ = tiny_models()
    real, _ = tiny_batch()
    real = patchify(real, 16)
    fake = torch.rand(3, 3, D, generator=torch.Generator().manual_seed(1))  # continuous probabilities
    pred_idx = torch.tensor([0, 5, 10])
    cache = PrefixKV(disc.cfg.layers)
    real_logits = disc.real_logits(real, cache)
    fake_logits = disc.fake_logits(fake, pred_idx, cache)
    assert real_logits.shape == (3, T, 2) and fake_logits.shape == (3, 3, 2)
    for s, t in enumerate(pred_idx.tolist()):
        recomputed = disc.real_logits(torch.cat([real[:, : t + 1], fake[:, s: s + 1]], 1))[:, -1]
        torch.testing.assert_close(fake_logits[:, s], recomputed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(real_logits, disc.real_logits(real), atol=1e-6, rtol=1e-6)  # cache is write-once


def test_fake_positions_see_only_real_context():
    _, disc, _ = tiny_models()
    real = patchify(tiny_batch()[0], 16)
    fake = torch.rand(3, 3, D, generator=torch.Generator().manual_seed(2))
    pred_idx = torch.tensor([1, 4, 8])

    def scores(real, fake):
        cache = PrefixKV(disc.cfg.layers)
        disc.real_logits(real, cache)
        return disc.fake_logits(fake, pred_idx, cache)

    base = scores(real, fake)
    later = real.clone()
    later[:, 5:] = 1 - later[:, 5:]  # real positions after t = 4 (including the one the fake replaces)
    others = fake.clone()
    others[:, [0, 2]] = torch.rand(3, 2, D)  # the other fake tokens
    torch.testing.assert_close(scores(later, others)[:, 1], base[:, 1], atol=1e-6, rtol=1e-6)
    earlier = real.clone()
    earlier[:, 3] = 1 - earlier[:, 3]
    assert not torch.allclose(scores(earlier, fake)[:, 1], base[:, 1])
    # and by gradients: fake 1 (t = 4) depends on real 0..4, itself, and nothing else
    real_g, fake_g = real.clone().requires_grad_(), fake.clone().requires_grad_()
    scores(real_g, fake_g)[:, 1].sum().backward()
    per_pos = real_g.grad.abs().sum((0, 2))
    assert (per_pos[5:] == 0).all() and (per_pos[:5] > 0).all()
    assert (fake_g.grad[:, [0, 2]] == 0).all() and (fake_g.grad[:, 1] != 0).any()


# ---- pure pieces -----------------------------------------------------------------------------
def test_alpha_warmup_and_position_sampling():
    assert [alpha_at(s, 10.0, 4) for s in (1, 2, 3, 5, 9)] == [0.0, 2.5, 5.0, 10.0, 10.0]
    assert alpha_at(1, 3.0, 0) == 3.0
    mask = torch.zeros(2, T)
    mask[0, :6], mask[1, :9] = 1, 1  # targets 1..8 attended somewhere -> prediction positions 0..7
    a = sample_positions(mask, 5, torch.Generator().manual_seed(0))
    b = sample_positions(mask, 5, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.numel() == 5 and torch.equal(a, a.sort().values) and a.unique().numel() == 5
    assert (mask[:, a + 1].sum(0) > 0).all()
    assert torch.equal(sample_positions(mask, 30, torch.Generator().manual_seed(1)), torch.arange(8))


def test_lambda_auto_hand_computed_one_parameter():
    # G: one weight w, logit z = w*h, BCE against y; D: logistic on the sigmoid output, L_adv = -log sigma(a*s + b)
    w = torch.tensor(0.7, requires_grad=True)
    h, y, a, b = 1.5, 1.0, 2.0, -0.5
    s = torch.sigmoid(w * h)
    bce = F.binary_cross_entropy_with_logits(w * h, torch.tensor(y))
    adv = -F.logsigmoid(a * s + b)
    g_bce, = torch.autograd.grad(bce, w, retain_graph=True)
    g_adv, = torch.autograd.grad(adv, w)
    sv = 1 / (1 + math.exp(-0.7 * h))
    hand_bce = (sv - y) * h  # d BCE / dw
    hand_adv = -(1 - 1 / (1 + math.exp(-(a * sv + b)))) * a * sv * (1 - sv) * h  # d L_adv / dw
    assert g_bce.item() == pytest.approx(hand_bce, rel=1e-5) and g_adv.item() == pytest.approx(hand_adv, rel=1e-5)
    assert lambda_auto(g_bce, g_adv) == pytest.approx(abs(hand_bce) / (abs(hand_adv) + LAMBDA_EPS), rel=1e-5)
    # L1 means over elements, not norms: mean|(1, -3)| / mean|(2, 2)| = 1
    assert lambda_auto(torch.tensor([1.0, -3.0]), torch.tensor([2.0, -2.0])) == pytest.approx(1.0, rel=1e-6)


def test_trainer_lambda_and_update_match_independent_autograd():
    gen, disc, cfg = tiny_models()
    pixels, mask = tiny_batch()
    trainer = AdversarialTrainer(gen, disc, cfg, const(1e-3), const(1e-3), seed=3)
    for step in (1, 2):
        g0, d0 = copy.deepcopy(gen), copy.deepcopy(disc)
        sampler = torch.Generator()
        sampler.set_state(trainer.sampler.get_state())
        pred_idx = sample_positions(mask, cfg.adv.num_samples, sampler)
        fw = adversarial_forward(g0, d0, patchify(pixels, 16), mask, pred_idx)
        params = list(g0.parameters())
        grad_bce = torch.autograd.grad(fw.bce, params, retain_graph=True)
        grad_adv = torch.autograd.grad(fw.adv, params)
        head = [n for n, _ in g0.named_parameters()].index("head.weight")
        expected_lambda = (grad_bce[head].abs().mean() / (grad_adv[head].abs().mean() + LAMBDA_EPS)).item()
        lambda_prev = trainer.lambda_prev
        m = trainer.step(step, pixels, mask)
        assert m["lambda_auto"] == pytest.approx(expected_lambda, rel=1e-4)
        if step == 2:  # the update uses the previous step's lambda and one combined backward
            weight = lambda_prev * alpha_at(2, cfg.adv.alpha, cfg.adv.alpha_warmup) + ADV_WEIGHT_EPS
            assert m["adv_weight"] == pytest.approx(weight, rel=1e-6)
            norm = torch.sqrt(sum(((a + weight * b) ** 2).sum() for a, b in zip(grad_bce, grad_adv)))
            assert m["g_grad_norm"] == pytest.approx(norm.item(), rel=1e-4)


def test_first_step_only_measures_then_generator_updates():
    gen, disc, cfg = tiny_models()
    pixels, mask = tiny_batch()
    trainer = AdversarialTrainer(gen, disc, cfg, const(1e-3), const(1e-3), seed=0)
    g_before, d_before = copy.deepcopy(gen.state_dict()), copy.deepcopy(disc.state_dict())
    m1 = trainer.step(1, pixels, mask)
    assert not m1["g_updated"] and m1["adv_weight"] == 0.0 and m1["alpha_t"] == 0.0
    assert all(torch.equal(v, gen.state_dict()[k]) for k, v in g_before.items())
    assert any(not torch.equal(v, disc.state_dict()[k]) for k, v in d_before.items())
    assert trainer.lambda_prev == m1["lambda_auto"] > 0
    m2 = trainer.step(2, pixels, mask)
    assert m2["g_updated"] and any(not torch.equal(v, gen.state_dict()[k]) for k, v in g_before.items())
    assert set(LOGGED_KEYS) <= set(m2)


def test_d_loss_decreases_training_d_alone_on_a_fixed_generator():
    gen, disc, cfg = tiny_models()
    pixels, mask = tiny_batch()
    trainer = AdversarialTrainer(gen, disc, cfg, const(0.0), const(2e-3), seed=0)  # lr_g = 0: G fixed
    g_before = copy.deepcopy(gen.state_dict())
    losses = [trainer.step(s, pixels, mask)["d_loss"] for s in range(1, 13)]
    assert losses[-1] < 0.6 * losses[0], losses
    assert all(torch.equal(v, gen.state_dict()[k]) for k, v in g_before.items())


def test_non_finite_loss_stops_before_any_update():
    gen, disc, cfg = tiny_models()
    with torch.no_grad():
        gen.head.weight[0, 0] = float("nan")
    d_before = copy.deepcopy(disc.state_dict())
    trainer = AdversarialTrainer(gen, disc, cfg, const(1e-3), const(1e-3))
    with pytest.raises(AdversarialError, match="non-finite"):
        trainer.step(1, *tiny_batch())
    assert all(torch.equal(v, disc.state_dict()[k]) for k, v in d_before.items())


# ---- the run ---------------------------------------------------------------------------------
SENTENCES = ("The quick brown fox jumps over the lazy dog. A small cat sat on the warm mat by the door. "
             "Rain fell softly on the old roof all night long. She opened the window and looked at the sea. ")


@pytest.fixture(scope="module")
def stage2_setup(tmp_path_factory):
    """A freshly saved micro stage-1 checkpoint and a small corpus file."""
    from pixar.paths import DataNotFound, find_font

    try:
        find_font("pixeloid")
    except DataNotFound:
        need_data("Pixeloid font not found (install pixar-render or set PIXAR_DATA)")
    root = tmp_path_factory.mktemp("stage2")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(SENTENCES * 3 for _ in range(20)))
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"), [f"train.data=[{corpus}]", "adv.batch_size=2",
                                                              "adv.save_every=2", "adv.sample_every=0"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Pixar(cfg.model)
    init = save_step_checkpoint(root / "stage1", 10, model, cfg, {"step": 10})
    return cfg, init, root


@pytest.fixture
def stage2(stage2_setup):
    """stage2_setup with a private copy of the config, so a test's changes never leak into the next test."""
    cfg, init, root = stage2_setup
    return copy.deepcopy(cfg), init, root


def read_metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_stage2_end_to_end_and_resume(stage2, tmp_path):
    cfg, init, _ = stage2
    cfg.adv.steps = 4
    final = train_stage2(cfg, str(init.parent), tmp_path / "full", device="cpu")  # a run folder: follows `last`
    gen, saved_cfg = load_model(final)  # the generator is a normal PIXAR checkpoint
    g_init, _ = load_model(init)
    assert saved_cfg.adv.steps == 4 and any(not torch.equal(a, b) for a, b in zip(gen.parameters(), g_init.parameters()))
    state = load_state(final)
    assert state["step"] == 4 and state["trainer"]["lambda_prev"] > 0
    assert {"opt_g", "opt_d"} <= set(state["trainer"]) and "backbone.embed.weight" in state["discriminator"]
    records = read_metrics(tmp_path / "full")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(set(LOGGED_KEYS) <= set(r) and all(math.isfinite(r[k]) for k in LOGGED_KEYS) for r in records)
    assert sorted(p.name for p in (tmp_path / "full" / "samples").iterdir()) == ["step-0000000.png", "step-0000004.png"]

    cfg.adv.steps = 2  # interrupted run, then resumed to 4 steps: identical metrics
    train_stage2(cfg, str(init), tmp_path / "split", device="cpu")
    cfg.adv.steps = 4
    train_stage2(cfg, None, tmp_path / "split", device="cpu", resume=True)
    split = read_metrics(tmp_path / "split")
    keys = ("d_loss", "g_bce", "g_adv", "lambda_auto")
    assert [r["step"] for r in split] == [1, 2, 3, 4]
    assert [r[k] for r in split for k in keys] == pytest.approx([r[k] for r in records for k in keys], rel=1e-5)


def test_missing_or_corrupt_init_gives_clear_error(stage2, tmp_path):
    cfg, init, root = stage2
    with pytest.raises(CheckpointError, match="does not exist"):
        train_stage2(cfg, str(root / "nope"), tmp_path / "a", device="cpu")
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in init.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt"):
        train_stage2(cfg, str(bad), tmp_path / "b", device="cpu")

    from click.testing import CliRunner

    from harness.app import main

    result = CliRunner().invoke(main, ["train", "--stage", "2", "--init", str(root / "nope"), "--config", "pixar-micro",
                                       "--out", str(tmp_path / "c"), "--device", "cpu"])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_nan_mid_run_stops_with_the_last_good_checkpoint_kept(stage2, tmp_path):
    cfg, init, _ = stage2
    cfg.adv.steps = 4

    def poison(step, trainer):
        if step == 2:
            with torch.no_grad():
                trainer.gen.head.weight.fill_(float("nan"))

    with pytest.raises(AdversarialError, match=r"step 3: non-finite.*last good checkpoint: .*step-0000002"):
        train_stage2(cfg, str(init), tmp_path / "nan", device="cpu", after_step=poison)
    gen, _ = load_model(tmp_path / "nan" / "step-0000002")  # saved before the hook poisoned the weights
    assert all(torch.isfinite(p).all() for p in gen.parameters())
    assert [r["step"] for r in read_metrics(tmp_path / "nan")] == [1, 2]


def test_stage2_continues_after_the_chunks_stage1_consumed(stage2, tmp_path, monkeypatch):
    import pixar.train.stage2 as stage2_module
    from pixar.data.stream import build_splits

    cfg, init, root = stage2
    cfg.adv.steps = 1
    n = len(build_splits(cfg.train).train)
    seen = []

    class Recording(stage2_module.ChunkStream):
        def __init__(self, chunks, *args, **kwargs):
            super().__init__(chunks, *args, **kwargs)
            seen.append(self.start)

    monkeypatch.setattr(stage2_module, "ChunkStream", Recording)
    # a stage-1 checkpoint that consumed 7 chunks of this very corpus: stage 2 starts at chunk 7
    ck = save_step_checkpoint(root / "consumed", 3, load_model(init)[0], cfg,
                                  {"step": 3, "consumed": 7, "num_train_chunks": n})
    train_stage2(cfg, str(ck), tmp_path / "after", device="cpu")
    # one made on another corpus (a different chunk count): the position means nothing here, start at 0
    other = save_step_checkpoint(root / "other", 3, load_model(init)[0], cfg,
                                     {"step": 3, "consumed": 7, "num_train_chunks": n + 1})
    train_stage2(cfg, str(other), tmp_path / "fresh", device="cpu")
    assert seen == [7, 0]


def test_stage2_step_curve_is_recorded_at_step_0_every_k_and_the_end(stage2, tmp_path):
    cfg, init, _ = stage2
    cfg.adv.steps, cfg.adv.eval_every = 5, 2
    calls = []

    def evaluate(gen):
        assert not gen.training  # evaluated in eval mode, on the live generator
        calls.append(float(gen.head.weight.detach().double().sum()))
        return {"head_sum": calls[-1], "call": len(calls)}

    train_stage2(cfg, str(init), tmp_path / "curve", device="cpu", evaluate=evaluate)
    records = read_metrics(tmp_path / "curve")
    curve = {r["step"]: r["curve_head_sum"] for r in records if "curve_head_sum" in r}
    assert sorted(curve) == [0, 2, 4, 5] and len(calls) == 4
    g0, _ = load_model(init)
    assert curve[0] == pytest.approx(float(g0.head.weight.detach().double().sum()))  # before any update
    assert len(set(curve.values())) == 4  # the generator moved between evaluations
    assert [r["step"] for r in records if "g_bce" in r] == [1, 2, 3, 4, 5]
