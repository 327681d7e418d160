"""GPT-2 pretraining through PIXAR's run machinery (pixar.train.run), as `pixar train --model gpt2` under 2 gloo ranks
with torchrun's environment: ONE model is trained (rank 0 alone logs and publishes final/; the losses equal one
process's), SIGTERM saves a step checkpoint and exits 0, the same command with --resume auto continues to the very
losses and weights of an uninterrupted run; the folder is locked while it runs (the CLI's one-line refusal is
tested on stage 1 in tests/test_cluster_runs.py: the same pixar.train.run lock); a finished run is neither redone
nor its final/ replaced silently.

Tolerance: 1e-5 absolute on losses of ~10.8 and on weights (rtol 1e-4) between the 2-rank run (stopped and resumed)
and one uninterrupted process: fp32 sums in another order; measured 1.4e-6 (losses) and 3.8e-6 (weights). The same
2-rank run resumed vs uninterrupted was measured bit-identical (0.0), as PIXAR's resume tests expect.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from harness.app import main
from harness.models.gpt2_pretrain import train_gpt2
from helpers import losses
from pixar.config import preset_path
from pixar.train.loop import TrainingError
from pixar.train.runlock import RunLock, RunLockError
from ranks import run_ranks, start_ranks

STEPS, TOL = 16, 1e-5
TEXT = ("Mary went to the kitchen. John moved to the garden. The cat sat on the mat by the door. "
        "Emma lit the lantern and the whale sang under a grey sky. ")


def gpt2_sets(corpus: Path) -> list[str]:
    """gpt2-micro shrunk to one 32-wide block and 64 positions (the 50257-token head dominates a step)."""
    sets = {"model.n_layer": 1, "model.n_embd": 32, "model.n_head": 2, "model.n_inner": 64, "train.data": f"[{corpus}]",
            "train.max_chars": 80, "train.min_chars": 20, "train.batch_size": 4, "train.threads": 1,
            "train.log_every": 1, "train.eval_every": 8, "train.eval_batches": 1, "train.save_every": 2,
            "train.steps": STEPS, "train.optim.warmup_steps": 3}
    return [f"{k}={v}" for k, v in sets.items()]


def train_args(out: Path, sets: list[str], *extra: str) -> list[str]:
    args = ["train", "--model", "gpt2", "--config", "gpt2-micro", "--out", str(out), "--device", "cpu", *extra]
    for s in sets:
        args += ["--set", s]
    return args


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_two_ranks_train_one_model_resume_after_sigterm_exactly_and_match_one_process(data_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 60)
    sets = gpt2_sets(corpus)
    cmd = [sys.executable, "-m", "harness.app", *train_args(tmp_path / "b", sets, "--resume", "auto")]
    out = tmp_path / "b"

    # the first job: SIGTERM (as SLURM sends it to every rank) once a checkpoint exists
    procs = start_ranks(cmd)
    try:
        _wait_for(lambda: (out / "last").is_file() or any(p.poll() is not None for p in procs), 120, "a checkpoint")
        with pytest.raises(RunLockError, match=f"in use by another run \\(pid {procs[0].pid} "):  # rank 0's lock
            RunLock(out).acquire()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=600) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs[0][1][-2000:] + outputs[1][1][-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    k = json.loads((out / "last").read_text())["step"]
    assert 2 <= k < STEPS and (out / f"step-{k:07d}").is_dir(), f"stopped at {k} of {STEPS}: {outputs[0][0][-500:]}"
    line = outputs[0][0].strip().splitlines()[-1]
    assert line.startswith(f"stopped by SIGTERM after step {k}; checkpoint ") and line.endswith("--resume auto")
    assert not (out / "final").exists() and not (out / ".lock").exists()

    # the requeued job: the very same command continues from step k to the end and publishes final/
    run_ranks(cmd)
    assert [r["step"] for r in records(out)] == list(range(STEPS + 1))  # rank 0 alone logged, each step once
    assert json.loads((out / "final" / "gpt2_config.json").read_text())["steps"] == STEPS
    assert not list(out.glob("*.tmp-*")) and not list(out.glob("*.old-*"))

    # the uninterrupted reference in one process, the same global batches: the interrupted + resumed 2-rank run is
    # the same training (a lost data position, RNG or optimizer state would differ by far more than 1e-5)
    single = tmp_path / "single"
    assert train_gpt2(str(preset_path("gpt2-micro")), sets, single, data_dir, device="cpu") == single / "final"
    a, c = losses(out), losses(single)
    assert sorted(a) == sorted(c) == list(range(1, STEPS + 1))
    print(f"\nGPT-2, {STEPS} steps, 2 ranks stopped at step {k} + resumed vs 1 process uninterrupted: "
          f"max |loss diff| {max(abs(a[s] - c[s]) for s in c):.2e}")
    assert max(abs(a[s] - c[s]) for s in c) < TOL
    assert c[STEPS] < c[1] - 0.1  # it learns: the comparison is not between constants
    assert abs(records(single)[-1]["val_loss"] - records(out)[-1]["val_loss"]) < TOL
    w_two, w_one = (load_file(str(r / "final" / "model.safetensors")) for r in (out, single))
    assert w_two.keys() == w_one.keys()
    for name in w_one:
        torch.testing.assert_close(w_two[name], w_one[name], rtol=1e-4, atol=TOL, msg=name)


def test_a_finished_run_is_not_redone_and_final_is_never_replaced_silently(data_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 20)
    sets = gpt2_sets(corpus) + ["train.steps=2", "train.save_every=2", "train.eval_every=0"]
    out = tmp_path / "run"
    final = train_gpt2(str(preset_path("gpt2-micro")), sets, out, data_dir, device="cpu")
    stamp = (final / "model.safetensors").stat().st_mtime_ns
    runner = CliRunner()
    fresh = runner.invoke(main, train_args(out, sets))  # a rerun without --resume
    assert fresh.exit_code == 1 and "already holds checkpoints" in fresh.output
    again = runner.invoke(main, train_args(out, sets, "--resume", "auto"))  # a requeued, finished job
    assert again.exit_code == 0, again.output
    assert f"gpt2 baseline: {final}" in again.output and (final / "model.safetensors").stat().st_mtime_ns == stamp
    assert [r["step"] for r in records(out)] == [0, 1, 2]  # nothing trained or logged again
    for step_dir in out.glob("step-*"):  # a folder holding only a published model (e.g. from an older version)
        for f in step_dir.iterdir():
            f.unlink()
        step_dir.rmdir()
    (out / "last").unlink()
    with pytest.raises(TrainingError, match="final already holds a trained GPT-2; choose another --out"):
        train_gpt2(str(preset_path("gpt2-micro")), sets, out, data_dir, device="cpu")
    assert (final / "model.safetensors").stat().st_mtime_ns == stamp
