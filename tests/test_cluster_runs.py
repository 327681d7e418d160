"""Cluster readiness through `pixar train` itself: stage 1 under FSDP == DDP == one process (+ consolidated export and
resharded resume), stage 2 under FSDP == one process, SIGTERM -> checkpoint + exit 0 + exact resume with
`--resume auto`, the run lock between two processes, a disk-full save. These are the stage-1 and stage-2 run
layers' distributed-equivalence tests (GPT-2's: tests/test_gpt2_runs.py)."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pixar.checkpoint.store import CheckpointError, latest_checkpoint, step_checkpoints, write_last_pointer
from pixar.model.transformer import load_model
from pixar.config import PixarConfig, preset_path
from pixar.train.loop import Preempted
from pixar.train.parallel import consolidate
from pixar.train.stage1 import train_stage1
from ranks import run_ranks
from helpers import losses, micro_overrides

REPO = Path(__file__).resolve().parent.parent
TOL = 1e-5  # fp32 on CPU: the same global batch through 1, 2 (DDP) or 2 (FSDP) ranks, summed in another order


def train_cmd(out: Path, sets: list[str], *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "harness.app", "train", "--stage", "1", "--config", "pixar-micro", "--out", str(out),
           "--device", "cpu", *extra]
    for s in sets:
        cmd += ["--set", s]
    return cmd


@pytest.mark.slow
def test_ddp_and_fsdp_match_one_process_and_fsdp_resumes_at_world_size_1(corpus, tmp_path):
    """The one stage-1 distributed equivalence: the same global batch (2 micro-batches per rank) through 1 process,
    2 DDP ranks and 2 FSDP ranks: the same losses, validation loss and weights; the FSDP checkpoint's DCP shards,
    its gathered weights and their offline consolidation agree; it resumes in one process."""
    sets = micro_overrides(corpus, steps=4, batch_size=8, save_every=2, grad_accum=2, eval_every=4, eval_batches=2)
    single = tmp_path / "single"
    train_stage1(PixarConfig.from_yaml(preset_path("pixar-micro"), sets), single, device="cpu")
    runs = {}
    for mode in ("ddp", "fsdp"):
        runs[mode] = tmp_path / mode
        run_ranks(train_cmd(runs[mode], sets + [f"train.parallel={mode}"]))
    ref = losses(single)

    def last_val(out: Path) -> float:
        return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][-1]["val_loss"]

    m_one, _ = load_model(latest_checkpoint(single))
    for mode, out in runs.items():
        got = losses(out)
        assert sorted(got) == [1, 2, 3, 4]  # rank 0 alone logged: one record per step
        assert max(abs(got[s] - ref[s]) for s in ref) < TOL, (mode, got, ref)
        m_run, _ = load_model(latest_checkpoint(out))  # FSDP: the weights gathered on rank 0
        for (k, a), (_, b) in zip(m_run.state_dict().items(), m_one.state_dict().items()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=f"{mode} {k}")
        assert last_val(out) == pytest.approx(last_val(single), abs=TOL)
    fsdp_ckpt = latest_checkpoint(runs["fsdp"])
    assert (fsdp_ckpt / "sharded" / ".metadata").is_file()  # a torch.distributed.checkpoint folder, one shard a rank
    assert len(list((fsdp_ckpt / "sharded").glob("__*_0.distcp"))) == 2
    gathered, _ = load_model(fsdp_ckpt)
    offline, _ = load_model(consolidate(fsdp_ckpt, tmp_path / "consolidated"))  # the DCP shards, read back offline
    for (k, a), b in zip(gathered.state_dict().items(), offline.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)

    # saved at world size 2 (step 2), resumed in one process: steps 3-4 reproduce the uninterrupted losses
    write_last_pointer(runs["fsdp"], 2, runs["fsdp"] / "step-0000002")
    shutil.rmtree(runs["fsdp"] / "step-0000004")
    train_stage1(PixarConfig.from_yaml(preset_path("pixar-micro"), sets + ["train.parallel=fsdp"]), runs["fsdp"],
                 device="cpu", resume="auto")
    resumed = losses(runs["fsdp"])
    assert sorted(resumed) == [1, 2, 3, 4] and max(abs(resumed[s] - ref[s]) for s in (3, 4)) < TOL


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _logged_steps(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def _stop_when(proc: subprocess.Popen, out: Path, steps: int) -> tuple[str, str]:
    """SIGTERM `proc` once `out/metrics.jsonl` holds `steps` records; -> its (stdout, stderr)."""
    try:
        _wait_for(lambda: _logged_steps(out) >= steps, 120, f"step {steps}")
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_sigterm_saves_exits_0_and_resume_auto_reproduces_the_losses_and_the_lock_refuses_a_second_run(corpus, tmp_path):
    steps = 100_000  # never reached: every run here ends on SIGTERM, the way a cluster job is preempted
    sets = micro_overrides(corpus, steps=steps, save_every=1000, log_every=1)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def start(*extra):
        return subprocess.Popen(train_cmd(out, sets, *extra), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    first = start()
    _wait_for(lambda: _logged_steps(out) >= 3, 120, "the first run's third step")
    # a second run on the same folder is refused with one line while the first runs
    second = subprocess.run(train_cmd(out, sets, "--resume", "auto"), cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode != 0
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and str(first.pid) in errors[0] and "Traceback" not in second.stderr
    stdout, stderr = _stop_when(first, out, 5)
    assert first.returncode == 0, stderr[-2000:]
    k = int(latest_checkpoint(out).name.split("-")[1])
    assert 5 <= k < steps and "--resume auto" in stdout and f"after step {k}" in stdout
    assert not (out / ".lock").exists()  # released on the clean exit

    # the requeued job: the same command with --resume auto continues exactly where the first stopped
    again = start("--resume", "auto")
    stdout, stderr = _stop_when(again, out, k + 10)
    assert again.returncode == 0, stderr[-2000:]
    k2 = int(latest_checkpoint(out).name.split("-")[1])
    assert k2 >= k + 10

    # the uninterrupted reference, stopped by the same signal at step k2
    def stop_at(step, model):
        if step == k2:
            os.kill(os.getpid(), signal.SIGTERM)

    reference = tmp_path / "reference"
    with pytest.raises(Preempted, match=f"after step {k2}"):
        train_stage1(PixarConfig.from_yaml(preset_path("pixar-micro"), sets), reference, device="cpu",
                     after_step=stop_at)
    a, b = losses(out), losses(reference)
    assert sorted(a) == sorted(b) == list(range(1, k2 + 1))
    assert max(abs(a[s] - b[s]) for s in a) < 1e-6


def test_disk_full_during_a_save_keeps_the_previous_checkpoint_and_stops_with_one_line(corpus, tmp_path, monkeypatch):
    import pixar.checkpoint.store as ck

    real, calls = ck.save_file, []

    def full_disk(tensors, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) >= 3:  # step 2: model + state written; step 4: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(ck, "save_file", full_disk)
    out = tmp_path / "run"
    with pytest.raises(CheckpointError, match=r"no space left on device while writing .*step-0000004; previous "
                                              r"checkpoint .*step-0000002 kept"):
        train_stage1(PixarConfig.from_yaml(preset_path("pixar-micro"), micro_overrides(corpus, steps=4, save_every=2)),
                     out, device="cpu")
    assert latest_checkpoint(out).name == "step-0000002"
    assert [p.name for p in step_checkpoints(out)] == ["step-0000002"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("step-")) == ["step-0000002"]  # no temp folder
    assert json.loads((out / "last").read_text())["step"] == 2
    model, _ = load_model(out / "step-0000002")
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_stage2_under_fsdp_matches_one_process_and_resumes_at_world_size_1(corpus, tmp_path):
    from pixar.checkpoint.store import load_state, save_checkpoint
    from pixar.model.discriminator import Discriminator
    from pixar.model.transformer import Pixar
    from pixar.train.parallel import load_sharded
    from pixar.train.stage2 import train_stage2

    # chunks longer than the 32-position strip: every row is full, so the per-rank masked means average to the
    # global one (with ragged rows they weight ranks differently, under DDP as under FSDP)
    sets = micro_overrides(corpus, max_chars=200, min_chars=120) + ["adv.steps=4", "adv.batch_size=4", "adv.save_every=2", "adv.sample_every=0",
                                      "adv.num_samples=4", "adv.optim.warmup_steps=1", "adv.alpha_warmup=1"]
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"), sets)
    init = save_checkpoint(tmp_path / "init", Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), cfg,
                           meta={"step": 0})
    single = tmp_path / "single"
    train_stage2(cfg, str(init), single, device="cpu")
    fsdp = tmp_path / "fsdp"
    cmd = train_cmd(fsdp, sets + ["train.parallel=fsdp"], "--init", str(init))
    cmd[cmd.index("--stage") + 1] = "2"
    run_ranks(cmd)

    def metrics(out):
        return {r["step"]: r for r in (json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines())}

    a, b = metrics(fsdp), metrics(single)
    keys = ("d_loss", "g_bce", "g_adv", "lambda_auto", "d_grad_norm", "g_grad_norm")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    assert b[1]["g_grad_norm"] == 0.0 and all(b[s]["g_grad_norm"] > 0 for s in (2, 3, 4))  # G and D both learn
    assert max(abs(a[s][k] - b[s][k]) for s in a for k in keys) < TOL
    assert (latest_checkpoint(fsdp) / "sharded" / ".metadata").is_file()
    g_fsdp, _ = load_model(latest_checkpoint(fsdp))
    g_one, _ = load_model(latest_checkpoint(single))
    for (k, x), (_, y) in zip(g_fsdp.state_dict().items(), g_one.state_dict().items()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=k)
    d_fsdp = Discriminator.from_config(cfg.model)  # the sharded discriminator, resharded to one process
    load_sharded(latest_checkpoint(fsdp), {"discriminator": d_fsdp})
    d_one = load_state(latest_checkpoint(single))["discriminator"]
    for k, x in d_fsdp.state_dict().items():
        torch.testing.assert_close(x, d_one[k], atol=1e-5, rtol=1e-4, msg=k)

    # the sharded step-2 checkpoint (world size 2) resumed in one process: steps 3-4 as uninterrupted
    write_last_pointer(fsdp, 2, fsdp / "step-0000002")
    shutil.rmtree(fsdp / "step-0000004")
    train_stage2(PixarConfig.from_yaml(preset_path("pixar-micro"), sets + ["train.parallel=fsdp"]), None, fsdp,
                 device="cpu", resume="auto")
    c = metrics(fsdp)
    assert sorted(c) == [1, 2, 3, 4] and max(abs(c[s][k] - b[s][k]) for s in (3, 4) for k in keys) < TOL
