"""pixar.train.parallel: FSDP2 == DDP == 1 process on CPU/gloo, sharded save at world size 2 -> resume at world
size 1, the stage-2 discriminator sharded too, consolidated export, failed sharded saves, compile,
activation checkpointing and the SDPA path.

Tolerance for the equality of losses across 1 process / DDP / FSDP: 1e-5 absolute on losses of ~0.7
(= rtol 1.4e-5); the measured differences are printed (pytest -s) and are ~1e-7 (fp32 reduction order).
"""
from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest
from ranks import run_ranks
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import parallel_loop  # noqa: E402  (the tests' minimal loop)

from pixar.checkpoint.store import CheckpointError, load_model  # noqa: E402
from pixar.model.discriminator import Discriminator  # noqa: E402
from pixar.model.transformer import Pixar  # noqa: E402
from pixar.train.parallel import (clip_grad_norm, consolidate, is_sharded, load_sharded, make_adamw,  # noqa: E402
                            prepare_model, resolve_compile, save_sharded)

REPO = Path(__file__).resolve().parent.parent
STEPS, SAVE_AT, TOL = 6, 3, 1e-5


def launch_two_ranks(parallel: str, out: Path, accum: int = 2) -> dict:
    """Two gloo ranks of tests/parallel_loop.py; -> rank 0's result.json."""
    out.mkdir(parents=True, exist_ok=True)
    run_ranks([sys.executable, str(REPO / "tests" / "parallel_loop.py"), parallel, str(out), str(STEPS), str(SAVE_AT),
               str(accum)])
    return json.loads((out / "result.json").read_text())


def max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread, restored after


@pytest.mark.slow
def test_fsdp_equals_ddp_equals_one_process_and_resumes_at_world_size_1(tmp_path):
    single = parallel_loop.run("fsdp", STEPS, tmp_path / "single", save_at=(SAVE_AT,))  # world size 1: no wrapping
    ddp = launch_two_ranks("ddp", tmp_path / "ddp")
    fsdp = launch_two_ranks("fsdp", tmp_path / "fsdp")
    d_ddp, d_fsdp, d_both = max_diff(ddp["losses"], single), max_diff(fsdp["losses"], single), \
        max_diff(fsdp["losses"], ddp["losses"])
    print(f"\nmax |loss diff| over {STEPS} steps: DDP-single {d_ddp:.2e}, FSDP-single {d_fsdp:.2e}, FSDP-DDP {d_both:.2e}")
    assert fsdp["world_size"] == ddp["world_size"] == 2
    assert fsdp["head_diff"] < 1e-6  # head(hidden_states(x)) called outside forward() works on FSDP shards
    assert single[-1] < single[0] - 0.05  # it does learn: the comparison is not between constants
    assert d_ddp < TOL and d_fsdp < TOL and d_both < TOL

    # saved by FSDP at world size 2 -> resumed in one process, no process group: the same next losses
    ckpt = tmp_path / "fsdp" / f"step-{SAVE_AT:07d}"
    assert is_sharded(ckpt) and len(list((ckpt / "sharded").glob("__*_0.distcp"))) == 2
    resumed = parallel_loop.run("fsdp", STEPS, resume=ckpt)
    d_resume = max_diff(resumed, fsdp["losses"][SAVE_AT:])
    print(f"resume at world size 1 from the world-size-2 FSDP checkpoint: max |diff| {d_resume:.2e}")
    assert d_resume < TOL

    # the consolidated weights (model.safetensors gathered on rank 0) = the DCP shards = the 1-process run's
    gathered, _ = load_model(ckpt)
    offline, _ = load_model(consolidate(ckpt, tmp_path / "consolidated"))
    one_proc, _ = load_model(tmp_path / "single" / f"step-{SAVE_AT:07d}")
    for (k, a), b, c in zip(gathered.state_dict().items(), offline.state_dict().values(), one_proc.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5, msg=k)

    # stage 2's second model: the sharded discriminator trains like the unsharded one and reshards to 1
    d_single = parallel_loop.discriminator_steps("fsdp", 2, tmp_path / "single")
    print(f"discriminator losses FSDP vs 1 process: max |diff| {max_diff(fsdp['d_losses'], d_single):.2e}")
    assert max_diff(fsdp["d_losses"], d_single) < TOL
    discs = []
    for run in ("fsdp", "single"):
        disc = Discriminator.from_config(parallel_loop.tiny_cfg().model)
        load_sharded(tmp_path / run / "stage2", {"discriminator": disc})
        discs.append(disc)
    for (k, a), b in zip(discs[0].state_dict().items(), discs[1].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)
    d_file, _ = load_model(consolidate(tmp_path / "fsdp" / "stage2", tmp_path / "gen"))  # "generator" by default
    assert d_file.num_params() == Pixar(parallel_loop.tiny_cfg().model).num_params()


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
