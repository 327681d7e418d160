"""Preemption: stop cleanly on SLURM's warning signals and resume with the same command.

    with Preemption() as pre:                 # installs SIGTERM + SIGUSR1 handlers, restores the old ones
        for step in ...:
            train_step()
            if pre.should_stop():             # after each step; all ranks agree (one all-reduce)
                path = save_checkpoint(...)
                print(pre.resume_message(step, path))   # "... rerun the same command with --resume auto"
                return 0                      # exit 0: a requeued job simply reruns the command

    resume_checkpoint(out_dir, "auto")        # --resume auto: the newest checkpoint, or None (a fresh run)

SLURM: `#SBATCH --signal=USR1@120` sends SIGUSR1 120 s before the time limit; `scancel` and preemption
send SIGTERM (then SIGKILL after KillWait). A handler only sets a flag; the step in progress finishes.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

import torch
import torch.distributed as dist

from pixar.checkpoint.store import CheckpointError, latest_checkpoint, step_checkpoints

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
RESUME_CHOICES = ("auto", "true", "false")


class Preemption:
    """A context manager that turns SIGTERM/SIGUSR1 into `stop_requested` (no exception, no exit)."""

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS):
        self.signals = tuple(signals)
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Preemption":
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Preemption must be entered in the main thread (Python delivers signals there)")
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum
            print(f"received {signal.Signals(signum).name}: finishing the current step, then saving",
                  file=sys.stderr, flush=True)

    @property
    def stop_requested(self) -> bool:
        """True once a stop signal reached this process."""
        return self.received is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def should_stop(self) -> bool:
        """stop_requested on ANY rank (all-reduce MAX under a process group), so every rank saves at the
        same step; without a process group the local flag."""
        flag = self.stop_requested
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return flag
        on_cuda = dist.get_backend() == "nccl"
        t = torch.tensor([1 if flag else 0], dtype=torch.int32,
                         device=torch.device("cuda", torch.cuda.current_device()) if on_cuda else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if t.item() and self.received is None:
            self.received = signal.SIGTERM  # another rank was signalled
        return bool(t.item())

    def resume_message(self, step: int, checkpoint: str | os.PathLike, argv: list[str] | None = None) -> str:
        """One line: what happened, where the checkpoint is, and the command that resumes."""
        why = self.signal_name or "a stop request"
        return (f"stopped by {why} after step {step}; checkpoint {checkpoint}; to resume run the same command "
                f"with --resume auto: {resume_command(argv)}")


def resume_command(argv: list[str] | None = None) -> str:
    """`argv` (default sys.argv) as a shell command with `--resume auto` in place of any --resume value."""
    argv = list(sys.argv if argv is None else argv)
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--resume":
            i += 2 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1
            continue
        if a.startswith("--resume="):
            i += 1
            continue
        out.append(a)
        i += 1
    if out:
        prog = Path(out[0])
        if prog.name == "app.py" and prog.parent.name == "harness":  # python -m harness.app (torchrun -m ...)
            out = ["python", "-m", "harness.app"] + out[1:]
        elif prog.suffix == ".py":
            out = ["python", str(prog)] + out[1:]
        else:  # a console script such as `pixar`
            out = [prog.name] + out[1:]
    return shlex.join(out + ["--resume", "auto"])


COMPLETE = ("config.json", "meta.json", "state.json")
"""Files every step checkpoint holds (plus model.safetensors, or the shards of a sharded one)."""


def is_sharded_dir(path: Path) -> bool:
    return (path / "sharded" / ".metadata").is_file()  # pixar.train.parallel.is_sharded (not imported: no cycle)


def newest_complete_step(out_dir: str | os.PathLike) -> Path:
    """Without a `last` pointer: the newest step-XXXXXXX folder holding a whole checkpoint (config, meta and
    training state), with a warning; none complete -> CheckpointError saying so (not "pass --resume auto")."""
    steps = step_checkpoints(out_dir)
    for p in reversed(steps):
        if all((p / n).is_file() for n in COMPLETE) and ((p / "model.safetensors").is_file() or is_sharded_dir(p)):
            log.warning("%s: no 'last' pointer; resuming from the newest complete checkpoint %s", out_dir, p.name)
            return p
    raise CheckpointError(f"{out_dir}: no 'last' pointer and no complete step checkpoint ({len(steps)} step folder(s), "
                          f"none with {'/'.join(COMPLETE)} and weights); move them aside to start fresh")


def resume_checkpoint(out_dir: str | os.PathLike, resume: str | bool) -> Path | None:
    """The checkpoint a run starts from. resume: "auto" = the out dir's newest checkpoint if any (None =
    a fresh run: what a requeued job wants); True/"true" = it must exist; False/"false" = none (the loop
    refuses an out dir that already holds checkpoints)."""
    resume = str(resume).lower() if not isinstance(resume, str) else resume.lower()
    if resume not in RESUME_CHOICES:
        raise CheckpointError(f"--resume must be auto, true or false, got {resume!r}")
    if resume == "false":
        return None
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None and step_checkpoints(out_dir):  # a pointer lost (deleted, or a crash before the first one)
        ckpt = newest_complete_step(out_dir)
    if ckpt is None and resume == "true":
        raise CheckpointError(f"{out_dir}: nothing to resume (no 'last' checkpoint pointer); use --resume auto "
                              "to start fresh when there is none")
    return ckpt
