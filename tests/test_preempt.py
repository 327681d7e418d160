"""pixar.train.preempt: a real subprocess gets SIGTERM mid-run, exits 0 with the resume line, and the resumed
run (--resume auto) reproduces the per-step losses of an uninterrupted one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixar.checkpoint.store import CheckpointError
from pixar.train.preempt import Preemption, resume_checkpoint, resume_command

REPO = Path(__file__).resolve().parent.parent
SCRIPT = str(REPO / "tests" / "preempt_run.py")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
STEPS = 20


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "losses.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_mid_run_saves_exits_0_and_resume_auto_reproduces_losses(tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, SCRIPT, "--out", str(out), "--steps", str(STEPS), "--save-every", "4", "--delay", "0.05",
           "--resume", "auto"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "losses.jsonl").exists() or len((out / "losses.jsonl").read_text().splitlines()) < 6:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.time() < deadline, "the run made no progress"
            time.sleep(0.01)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    stopped = json.loads((out / "last").read_text())["step"]
    assert 6 <= stopped < STEPS and (out / f"step-{stopped:07d}").is_dir()  # saved at the signal's step
    line = stdout.strip().splitlines()[-1]
    assert line.startswith(f"stopped by {signal.Signals(sig).name} after step {stopped}; checkpoint ")
    assert line.endswith("--resume auto") and "to resume run the same command with --resume auto" in line
    assert not (out / ".lock").exists()  # the run lock was released
    if sig != signal.SIGTERM:
        return  # the resume itself is checked once, after SIGTERM
    # the requeued job reruns the very same command
    resumed = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {out / f'step-{stopped:07d}'} at step {stopped}" in resumed.stdout
    reference = tmp_path / "reference"
    full = subprocess.run([sys.executable, SCRIPT, "--out", str(reference), "--steps", str(STEPS), "--save-every", "4"],
                          env=ENV, capture_output=True, text=True, timeout=120)
    assert full.returncode == 0, full.stderr[-2000:]
    a, b = losses(out), losses(reference)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    assert max(abs(a[s] - b[s]) for s in b) < 1e-6


def test_handlers_are_restored_and_flags(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    with Preemption() as pre:
        assert signal.getsignal(signal.SIGTERM) != previous and not pre.should_stop()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert pre.stop_requested and pre.should_stop() and pre.signal_name == "SIGUSR1"
    assert signal.getsignal(signal.SIGTERM) == previous


def test_resume_command_and_resume_modes(tmp_path):
    cli = str(REPO / "harness" / "app.py")
    assert resume_command([cli, "train", "--out", "r", "--resume", "true", "--stage", "1"]) == \
        "python -m harness.app train --out r --stage 1 --resume auto"
    assert resume_command(["/venv/bin/pixar", "train", "--resume=false", "--out", "my run"]) == \
        "pixar train --out 'my run' --resume auto"
    assert resume_checkpoint(tmp_path, "auto") is None and resume_checkpoint(tmp_path, False) is None
    with pytest.raises(CheckpointError, match="nothing to resume"):
        resume_checkpoint(tmp_path, "true")
    with pytest.raises(CheckpointError, match="--resume must be auto, true or false"):
        resume_checkpoint(tmp_path, "maybe")
