"""pixar.train.stage1 / pixar train: schedule, optimisation, checkpoints, exact resume, NaN stop, CLI (DDP/FSDP:
tests/test_cluster_runs.py)."""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import losses, micro_cfg, micro_overrides
import torch
from click.testing import CliRunner

from pixar.checkpoint.store import load_state
from pixar.model.transformer import load_model
from pixar.config import OptimConfig, PixarConfig, TrainConfig, preset_path
from pixar.config_io import ConfigError
from pixar.checkpoint.store import latest_checkpoint
from pixar.train.loop import Schedule, TrainingError
from pixar.checkpoint.store import save_step_checkpoint
from pixar.train.run_state import capture_rng_state, resolve_precision, restore_rng_state
from pixar.train.stage1 import train_stage1

REPO = Path(__file__).resolve().parent.parent


def test_lr_schedule_key_steps():
    lr_at = Schedule.of(TrainConfig(optim=OptimConfig(lr=3e-4, warmup_steps=2000, min_lr_ratio=0.1), steps=1_000_000))
    assert lr_at(0) == pytest.approx(3e-4 * 1e-5)
    assert lr_at(1000) == pytest.approx(3e-4 * (1e-5 + (1 - 1e-5) * 0.5))
    assert lr_at(2000) == pytest.approx(3e-4)
    assert lr_at(2000 + 499_000) == pytest.approx(0.5 * (3e-4 + 3e-5))  # half-way down the cosine
    assert lr_at(1_000_000) == pytest.approx(3e-5) and lr_at(2_000_000) == pytest.approx(3e-5)
    values = [lr_at(s) for s in range(0, 1_000_001, 1000)]
    assert all(a <= b for a, b in zip(values[:2], values[1:3]))
    assert all(a >= b for a, b in zip(values[2:], values[3:]))
    # stage 2 reuses it with its own peak lr and cosine length
    assert Schedule.of(TrainConfig(optim=OptimConfig(warmup_steps=0)), lr=1.0, total_steps=10)(5) == pytest.approx(0.55)


def test_precision_rules():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_precision("bf16", cpu)


def test_checkpoint_round_trip_with_optimizer_and_rng(tmp_path):
    from pixar.model.transformer import Pixar

    cfg = micro_cfg(Path("unused"))
    model = Pixar(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 8, 32 * 16).round())[0].sum().backward()
    opt.step()
    rng = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    for step in (1, 2, 3):
        save_step_checkpoint(tmp_path, step, model, cfg, {"step": step, "optimizer": opt.state_dict(), "rng": rng},
                                 keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000002", "step-0000003"]
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.name == "step-0000003"
    loaded, cfg2 = load_model(ckpt)
    assert cfg2 == cfg
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    state = load_state(ckpt)
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    for p1, p2 in zip(model.parameters(), loaded.parameters()):
        s1, s2 = opt.state[p1], opt2.state[p2]
        assert torch.equal(s1["exp_avg"], s2["exp_avg"]) and torch.equal(s1["exp_avg_sq"], s2["exp_avg_sq"])
        assert float(s1["step"]) == float(s2["step"])
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    restore_rng_state(state["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_losses(corpus, tmp_path):
    steps = 80
    sets = micro_overrides(corpus, steps=steps, save_every=10, keep_last=2)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "harness.app", "train", "--stage", "1", "--config", "pixar-micro", "--out", str(killed)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (killed / "last").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped_at = json.loads((killed / "last").read_text())["step"]
    assert stopped_at < steps
    train_stage1(micro_cfg(corpus, steps=steps, save_every=10, keep_last=2), killed, device="cpu", resume=True)
    reference = tmp_path / "reference"
    train_stage1(micro_cfg(corpus, steps=steps, save_every=10, keep_last=2), reference, device="cpu")
    resumed, ref = losses(killed), losses(reference)
    assert sorted(resumed) == sorted(ref) == list(range(1, steps + 1))
    assert max(abs(resumed[s] - ref[s]) for s in ref) < 1e-6
    assert state_position(killed) == state_position(reference)


def state_position(out: Path) -> dict:
    return load_state(latest_checkpoint(out))["data"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(corpus, tmp_path):
    def poison(step, model):
        if step == 3:
            with torch.no_grad():
                model.head.weight.fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"non-finite loss .* at step 4.*step-0000002"):
        train_stage1(micro_cfg(corpus, steps=10, save_every=2), tmp_path, device="cpu", after_step=poison)
    assert latest_checkpoint(tmp_path).name == "step-0000002"
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000002"]
    model, _ = load_model(tmp_path / "step-0000002")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_stage1_end_to_end_and_errors(corpus, tmp_path, monkeypatch):
    from harness.app import main

    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "--stage", "1", "--config", "pixar-micro", "--out", str(out)]
    for s in micro_overrides(corpus, steps=6, eval_every=3, sample_every=3, save_every=3):
        args += ["--set", s]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "stage 1 finished" in res.output
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "grad_norm", "positions_per_s"} <= set(records[1])
    assert all("val_loss" in records[i] for i in (0, 3, 6))
    assert all(math.isfinite(r["loss"]) for r in records[1:])
    assert {p.name for p in (out / "samples").glob("*.png")} == {"step-0000000.png", "step-0000003.png", "step-0000006.png"}
    model, cfg = load_model(latest_checkpoint(out))
    assert cfg.model.hidden == 32 and (out / "config.yaml").exists()

    stage2 = runner.invoke(main, ["train", "--stage", "2", "--init", str(latest_checkpoint(out)), "--out",
                                  str(tmp_path / "s2"), "--set", "adv.steps=2", "--set", "adv.batch_size=4",
                                  "--set", "adv.num_samples=2"])  # dispatch to pixar.train.adversarial
    assert stage2.exit_code == 0, stage2.output
    assert load_model(latest_checkpoint(tmp_path / "s2"))[1].model.hidden == 32

    again = runner.invoke(main, args)  # an occupied --out without --resume
    assert again.exit_code == 1 and "already holds checkpoints" in again.output
    nothing = runner.invoke(main, ["train", "--config", "pixar-micro", "--out", str(tmp_path / "new"), "--resume"])
    assert nothing.exit_code == 1 and "nothing to resume" in nothing.output

    monkeypatch.delenv("PIXAR_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(main, ["train", "--stage", "1", "--config", "pixar-micro", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1
    assert "Error: corpus: no such file or folder" in missing.output and len(missing.output.strip().splitlines()) == 1
    bad = runner.invoke(main, ["train", "--config", "pixar-micro", "--set", "train.batch_size=0"])
    assert bad.exit_code == 1 and "batch_size" in bad.output
    no_dir = runner.invoke(main, ["train", "--config", "pixar-micro", "--data-dir", str(tmp_path / "nope")])
    assert no_dir.exit_code == 1 and "nope does not exist" in no_dir.output


def test_grad_accumulation_matches_the_full_batch(corpus, tmp_path):
    a, b = tmp_path / "accum", tmp_path / "full"
    train_stage1(micro_cfg(corpus, steps=4, batch_size=8, grad_accum=2), a, device="cpu")
    train_stage1(micro_cfg(corpus, steps=4, batch_size=8, grad_accum=1), b, device="cpu")
    la, lb = losses(a), losses(b)
    assert max(abs(la[s] - lb[s]) for s in lb) < 1e-5
    m1, m2 = load_model(latest_checkpoint(a))[0], load_model(latest_checkpoint(b))[0]
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2, atol=1e-5, rtol=1e-4)


def test_a_checkpoint_config_from_before_optim_loads_with_its_flat_keys_migrated(tmp_path):
    """config.json of checkpoints saved before OptimConfig: flat train.{lr, warmup_steps, ...} and adv.{lr_g,
    warmup_steps} load into train.optim / adv.optim (stage 2 then took its AdamW settings from train)."""
    from pixar.checkpoint.store import load_config
    from pixar.config import AdvConfig, OptimConfig

    old = {"name": "old", "model": {"hidden": 32, "layers": 1, "heads": 2, "ffn": 64, "max_positions": 32},
           "render": {"max_positions": 32},
           "train": {"steps": 9, "lr": 1e-3, "warmup_steps": 7, "min_lr_ratio": 0.2, "beta1": 0.8, "beta2": 0.99,
                     "eps": 1e-6, "weight_decay": 0.05, "grad_clip": 0.5},
           "adv": {"steps": 4, "lr_g": 2e-5, "lr_d": 4e-5, "warmup_steps": 3, "cosine_steps": 50}}
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = load_config(tmp_path)
    assert cfg.train.steps == 9 and cfg.train.optim == OptimConfig(lr=1e-3, warmup_steps=7, min_lr_ratio=0.2, beta1=0.8,
                                                                   beta2=0.99, eps=1e-6, weight_decay=0.05, grad_clip=0.5)
    assert cfg.adv.optim == OptimConfig(lr=2e-5, warmup_steps=3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05,
                                        grad_clip=0.5)
    assert (cfg.adv.lr_d, cfg.adv.cosine_steps, cfg.adv.steps) == (4e-5, 50, 4)
    assert Schedule.of(cfg.train)(7) == pytest.approx(1e-3)  # the schedule reads the migrated section
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))  # today's layout loads unchanged
    assert load_config(tmp_path) == cfg and AdvConfig().optim.lr == 3e-5
    with pytest.raises(ConfigError, match=r"unknown key.*\blr\b"):  # presets and --set: the new keys only
        PixarConfig.from_yaml(preset_path("pixar-micro"), ["train.lr=0.1"])
    with pytest.raises(ConfigError, match=r"optim\.lr must be"):
        PixarConfig.from_yaml(preset_path("pixar-micro"), ["train.optim.lr=nan"])
