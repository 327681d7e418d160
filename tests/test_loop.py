"""pixar.train.loop: the one schedule, the optimiser policy, the standard step (accumulation, clipping, NaN guard) and
run_loop's order of events (lr set before the step, hooks after, early stop)."""
import math

import pytest
import torch

from pixar.train.loop import (WARMUP_START_RATIO, NonFiniteLoss, Schedule, StandardStep, adamw, every, lr_at, run_loop,
                        set_lr)


def test_schedule_warms_up_from_the_official_start_then_cosines_to_the_floor():
    s = Schedule(lr=2.0, warmup_steps=4, total_steps=14, min_lr_ratio=0.25)
    assert s(0) == pytest.approx(2.0 * WARMUP_START_RATIO)
    assert s(2) == pytest.approx(2.0 * (WARMUP_START_RATIO + (1 - WARMUP_START_RATIO) * 0.5))
    assert s(4) == pytest.approx(2.0) and s(9) == pytest.approx(0.5 + 1.5 * 0.5)  # half-way down the cosine
    assert s(14) == pytest.approx(0.5) and s(1000) == pytest.approx(0.5)
    assert lr_at(3, 1.0, 0, 6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))


def test_adamw_decays_every_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    opt = adamw(model.parameters(), 1e-3, weight_decay=0.1)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.1
    assert sum(p.numel() for p in opt.param_groups[0]["params"]) == sum(p.numel() for p in model.parameters())
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5


def _regression(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(8, 3, generator=g), torch.randn(3, 1, generator=g)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=g))
        model.bias.zero_()
    return model, x, x @ w


def test_accumulated_micro_batches_equal_one_full_batch():
    results = []
    for parts in (1, 2, 4):
        model, x, y = _regression()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        size = len(x) // parts
        step = StandardStep(list(model.parameters()), lambda b: ((model(b[0]) - b[1]) ** 2).mean(), opt,
                            lambda s: [((x[i: i + size], y[i: i + size]), 1 / parts) for i in range(0, len(x), size)],
                            grad_clip=0)
        logged = [step(s)["loss"] for s in range(3)]
        results.append((logged, model.weight.detach().clone()))
    for logged, weight in results[1:]:
        assert logged == pytest.approx(results[0][0], rel=1e-6)
        torch.testing.assert_close(weight, results[0][1], rtol=1e-6, atol=1e-7)


def test_clipping_bounds_the_update_and_reports_the_pre_clip_norm():
    model, x, y = _regression()
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    m = StandardStep(list(model.parameters()), lambda b: 100 * ((model(x) - y) ** 2).mean(), opt,
                     lambda s: [(None, 1.0)], grad_clip=0.5)(0)
    moved = torch.cat([(model.weight.detach() - before).flatten(), model.bias.detach().flatten()]).norm()
    assert m["grad_norm"] > 0.5 and float(moved) == pytest.approx(0.5, rel=1e-5)


def test_non_finite_loss_raises_before_any_update():
    model, x, _ = _regression()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    step = StandardStep(list(model.parameters()), lambda b: model(x).mean() * float("nan"), opt, lambda s: [(None, 1.0)])
    with pytest.raises(NonFiniteLoss, match="non-finite loss .* at step 3"):
        step(2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_run_loop_sets_lr_before_each_step_calls_hooks_after_and_stops_on_request():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    sched = Schedule(lr=1.0, warmup_steps=2, total_steps=10)
    events = []

    def step_fn(step):
        events.append(("step", step, opt.param_groups[0]["lr"]))
        return {"loss": float(step)}

    def hook(done, m):
        events.append(("hook", done, m["loss"], m["lr"]))

    done = run_loop(step_fn, 3, 10, schedules=[(opt, sched)], hooks=[hook], progress=False,
                    should_stop=lambda: len(events) >= 4)
    assert done == 5
    assert events == [("step", 3, sched(3)), ("hook", 4, 3.0, sched(3)), ("step", 4, sched(4)), ("hook", 5, 4.0, sched(4))]


def test_run_loop_names_the_last_good_checkpoint_on_divergence():
    def step_fn(step):
        raise NonFiniteLoss(f"non-finite loss (nan) at step {step + 1}")

    with pytest.raises(NonFiniteLoss, match=r"at step 1; kept: step-0000000"):
        run_loop(step_fn, 0, 3, progress=False, on_error=lambda s, e: "kept: step-0000000")


def test_every_fires_on_multiples_and_the_last_step():
    assert [s for s in range(1, 11) if every(4, s, 10)] == [4, 8, 10]
    assert [s for s in range(1, 6) if every(0, s, 5)] == [5]
