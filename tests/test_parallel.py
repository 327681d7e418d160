"""pixar.train.parallel in one process: failed sharded saves, compile, activation checkpointing, the SDPA path.

The distributed equivalences are tested once per layer: `pixar train` stage 1 under DDP and FSDP (+ consolidated
export, resharded resume) and stage 2 under FSDP in tests/test_cluster_runs.py, the stage-2 trainer's hand
all-reduce in tests/test_adversarial_fsdp.py, GPT-2 through the run machinery in tests/test_gpt2_runs.py.
"""
from __future__ import annotations

import errno

import parallel_loop  # the tests' tiny config and batches
import pytest
import torch

from pixar.checkpoint.store import CheckpointError
from pixar.model.transformer import Pixar
from pixar.train.parallel import clip_grad_norm, load_sharded, make_adamw, prepare_model, resolve_compile, save_sharded


def max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread, restored after


def test_sharded_save_that_fails_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = parallel_loop.tiny_cfg()
    model = Pixar(cfg.model, generator=torch.Generator().manual_seed(0))
    opt = make_adamw(model.parameters(), cfg.train.optim, torch.device("cpu"))
    path = save_sharded(tmp_path / "ckpt", {"model": model}, {"model": opt}, cfg, state={"step": 1})
    before = sorted(p.name for p in path.rglob("*"))

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pixar.train.parallel.dcp.save", full_disk)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match=r"no space left on device while writing .*ckpt; previous checkpoint .*ckpt kept"):
        save_sharded(path, {"model": model}, {"model": opt}, cfg, state={"step": 2})
    assert sorted(p.name for p in path.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # temp folder gone
    fresh = Pixar(cfg.model)
    load_sharded(path, {"model": fresh})
    torch.testing.assert_close(fresh.state_dict(), Pixar(cfg.model, generator=torch.Generator().manual_seed(0)).state_dict())
    with pytest.raises(CheckpointError, match="holds \\['model'\\], not \\['discriminator'\\]"):
        load_sharded(path, {"discriminator": fresh})


def _train_losses(model: Pixar, steps: int) -> tuple[list[float], dict]:
    cfg = parallel_loop.tiny_cfg()
    opt = make_adamw(model.parameters(), cfg.train.optim, torch.device("cpu"))
    out = []
    for step in range(steps):
        x = parallel_loop.global_batch(step, cfg)
        _, loss = model(x, None, x)
        loss.backward()
        clip_grad_norm(model, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append(float(loss.detach()))
    return out, model.state_dict()


def test_activation_checkpointing_gives_the_same_training():
    cfg = parallel_loop.tiny_cfg()
    plain, sd_plain = _train_losses(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), 3)
    cfg.train.activation_checkpointing = True
    model = prepare_model(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), cfg.train, torch.device("cpu"))
    assert model.activation_checkpointing
    ckpt, sd_ckpt = _train_losses(model, 3)
    assert max_diff(plain, ckpt) < 1e-6
    for k in sd_plain:
        torch.testing.assert_close(sd_plain[k], sd_ckpt[k], rtol=1e-5, atol=1e-6, msg=k)


def test_training_forward_takes_the_causal_sdpa_path(monkeypatch):
    """No explicit mask where causal suffices (flash / memory-efficient kernels on CUDA)."""
    import pixar.model.transformer as pm

    calls, real = [], pm.F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, is_causal=False, **kw):
        calls.append((attn_mask is None, is_causal))
        return real(q, k, v, attn_mask=attn_mask, is_causal=is_causal, **kw)

    monkeypatch.setattr(pm.F, "scaled_dot_product_attention", spy)
    cfg = parallel_loop.tiny_cfg()
    x = parallel_loop.global_batch(0, cfg)
    mask = torch.ones(x.shape[0], cfg.model.max_positions)
    mask[:, -3:] = 0  # padding positions only change the loss, never the attention
    Pixar(cfg.model)(x, mask, x)[1].backward()
    assert calls == [(True, True)] * cfg.model.layers


def test_compile_setting_and_fused_adamw_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile("auto", cpu) is False and resolve_compile("auto", cuda) is True
    assert resolve_compile(True, cpu) is True and resolve_compile(False, cuda) is False
    cfg = parallel_loop.tiny_cfg()
    opt = make_adamw(Pixar(cfg.model).parameters(), cfg.train.optim, cpu)
    assert opt.defaults["fused"] is False and opt.defaults["betas"] == (cfg.train.optim.beta1, cfg.train.optim.beta2)


@pytest.mark.slow
def test_compiled_blocks_match_eager():
    """torch.compile (inductor, CPU) of each block: same losses within 1e-5 over 3 AdamW steps, same names."""
    cfg = parallel_loop.tiny_cfg()
    cfg.model.layers = 1
    eager, _ = _train_losses(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), 3)
    cfg.train.compile = True
    model = prepare_model(Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), cfg.train, torch.device("cpu"))
    compiled, sd = _train_losses(model, 3)
    print(f"\ncompiled vs eager: max |loss diff| {max_diff(eager, compiled):.2e}")
    assert max_diff(eager, compiled) < 1e-5
    assert set(sd) == set(Pixar(cfg.model).state_dict())  # checkpoints of compiled models keep their keys
    Pixar(cfg.model).load_state_dict(sd)
