"""Stage 2 (pixar.train.adversarial.AdversarialTrainer) under torchrun with hand all-reduced gradients (stage 2's
train.parallel=ddp: unwrapped models), on CPU with 2 gloo processes: the same per-step metrics and trained weights
as one process on the same global batch; DDP-wrapped models are refused. Plus, in one process: the backward-based
gradients equal the autograd.grad formulas the trainer used before. (Stage 2 under FSDP, with its resharded
resume: tests/test_cluster_runs.py, through `pixar train --stage 2`.)

Tolerances: per-step metrics (d_loss, g_bce, g_adv, lambda_auto, gradient norms) 1e-5 absolute (values
0.01..3); weights rtol 1e-4 / atol 1e-5. Measured (pytest -s prints them): metrics <= 5e-7, weights <= 2e-6
(fp32 reduction order).

    python tests/test_adversarial_fsdp.py OUT      one rank of the 2-process run (torchrun-style env)
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import parallel_loop  # the tests' tiny config and stage-2 loop
import pytest
import torch
from ranks import run_ranks

from pixar.model.discriminator import Discriminator
from pixar.model.transformer import Pixar, patchify
from pixar.train.adversarial import ADV_WEIGHT_EPS, AdversarialTrainer, adversarial_forward, alpha_at, sample_positions
from pixar.train.loop import adamw

REPO = Path(__file__).resolve().parent.parent
STEPS, TOL = 4, 1e-5


def launch_two_ranks(out: Path) -> dict:
    """Two gloo ranks of this file's __main__ -> rank 0's result.json (+ weights-*.safetensors in out)."""
    out.mkdir(parents=True, exist_ok=True)
    run_ranks([sys.executable, str(Path(__file__).resolve()), str(out)])
    return json.loads((out / "result.json").read_text())


def metric_diff(a: list[dict], b: list[dict]) -> float:
    assert len(a) == len(b)
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in parallel_loop.ADVERSARIAL_KEYS)


def weight_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread, restored after


@pytest.mark.slow
def test_hand_allreduced_stage2_equals_one_process_and_ddp_wrapping_is_refused(tmp_path):
    from safetensors.torch import load_file

    single, w_single, sharded = parallel_loop.adversarial_steps("none", STEPS)  # world size 1: plain modules
    two = launch_two_ranks(tmp_path / "two")
    w_hand = load_file(str(tmp_path / "two" / "weights-none.safetensors"))
    assert two["world_size"] == 2 and not sharded
    assert "DistributedDataParallel" in two["ddp_error"]  # refused with one clear line

    # the comparison is between runs that learn: step 1 only measures, then G and D both move
    assert single[0]["g_grad_norm"] == 0.0 and all(r["g_grad_norm"] > 0 for r in single[1:])
    assert len({round(r["lambda_auto"], 6) for r in single}) == STEPS
    cfg = parallel_loop.adversarial_cfg()
    g0 = Pixar(cfg.model, generator=torch.Generator().manual_seed(0))
    d0 = Discriminator.from_generator(g0, head_seed=1)
    assert any(not torch.equal(w_single[f"g.{k}"], v) for k, v in g0.state_dict().items())
    assert any(not torch.equal(w_single[f"d.{k}"], v) for k, v in d0.state_dict().items())

    d_hand, dw_hand = metric_diff(two["none"], single), weight_diff(w_hand, w_single)
    print(f"\nstage 2, {STEPS} steps, world size 2 (hand all-reduce) vs 1 process: max |metric diff| {d_hand:.2e}, "
          f"max |weight diff| {dw_hand:.2e}")
    assert d_hand < TOL


def test_backward_gradients_equal_the_autograd_grad_formulas():
    """D: grad of L_D w.r.t. D's parameters only (fakes as constants); G: grad of L_bce + w * L_adv; the
    trainer's prebuilt optimisers are the ones stepped; state_dict(optimizers=False) is lambda + sampler."""
    cfg = parallel_loop.adversarial_cfg()
    cfg.adv.optim.grad_clip = 0.0  # compare raw gradients
    gen = Pixar(cfg.model, generator=torch.Generator().manual_seed(0))
    disc = Discriminator.from_generator(gen, head_seed=1)
    opt_g, opt_d = adamw(gen.parameters(), 1e-3), adamw(disc.parameters(), 1e-3)
    trainer = AdversarialTrainer(gen, disc, cfg, lambda s: 1e-3, lambda s: 1e-3, seed=3, optimizers=(opt_g, opt_d))
    seen: dict[str, list[torch.Tensor]] = {}
    opt_g.register_step_pre_hook(lambda opt, *_: seen.__setitem__("g", [p.grad.clone() for p in gen.parameters()]))
    opt_d.register_step_pre_hook(lambda opt, *_: seen.__setitem__("d", [p.grad.clone() for p in disc.parameters()]))
    for step in (1, 2):
        pixels, mask = parallel_loop.adversarial_batch(step, cfg)
        g0, d0 = copy.deepcopy(gen), copy.deepcopy(disc)
        sampler = torch.Generator()
        sampler.set_state(trainer.sampler.get_state())
        pred_idx = sample_positions(mask, cfg.adv.num_samples, sampler)
        fw = adversarial_forward(g0, d0, patchify(pixels, 16), mask, pred_idx)  # fakes attached to G
        want_d = torch.autograd.grad(fw.d_loss, list(d0.parameters()), retain_graph=True)
        weight = (trainer.lambda_prev or 0.0) * alpha_at(step, cfg.adv.alpha, cfg.adv.alpha_warmup) + ADV_WEIGHT_EPS
        want_g = torch.autograd.grad(fw.bce + weight * fw.adv, list(g0.parameters()))
        seen.clear()
        m = trainer.step(step, pixels, mask)
        assert set(seen) == ({"g", "d"} if step == 2 else {"d"})  # step 1: only D steps
        for got, want in zip(seen["d"], want_d):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        if step == 2:
            assert m["adv_weight"] == pytest.approx(weight, rel=1e-6) and weight > 1e-3
            for got, want in zip(seen["g"], want_g):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    state = trainer.state_dict(optimizers=False)
    assert set(state) == {"lambda_prev", "sampler"} and state["lambda_prev"] == m["lambda_auto"]
    fresh = AdversarialTrainer(copy.deepcopy(gen), copy.deepcopy(disc), cfg, lambda s: 1e-3, lambda s: 1e-3)
    fresh.load_state_dict(state)  # no optimiser entries: the optimisers keep their (empty) state
    assert fresh.lambda_prev == trainer.lambda_prev and torch.equal(fresh.sampler.get_state(), trainer.sampler.get_state())
    assert fresh.opt_g.state_dict()["state"] == {}


def main(out: Path) -> None:
    """One rank: a hand all-reduce stage-2 run of STEPS steps, the DDP refusal; rank 0 writes results."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from pixar.train.parallel import wrap

    dist.init_process_group("gloo")
    try:
        hand, w_hand, _ = parallel_loop.adversarial_steps("none", STEPS)
        cfg = parallel_loop.adversarial_cfg()
        gen = Pixar(cfg.model)
        try:
            AdversarialTrainer(wrap(gen, "ddp", parallel_loop.DEVICE), Discriminator.from_generator(gen), cfg,
                               lambda s: 1e-3, lambda s: 1e-3)
            ddp_error = ""
        except ValueError as e:
            ddp_error = str(e)
        if dist.get_rank() == 0:
            save_file(w_hand, str(out / "weights-none.safetensors"))
            (out / "result.json").write_text(json.dumps({"none": hand,
                                                         "ddp_error": ddp_error, "world_size": dist.get_world_size()}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
