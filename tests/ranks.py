"""Run a command as N CPU ranks (gloo) with the environment torchrun would give them, for the distributed tests."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(cmd: list[str], world: int = 2) -> list[subprocess.Popen]:
    """Start `cmd` once per rank (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*; one thread each), as torchrun would."""
    env = {**os.environ, "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return [subprocess.Popen(cmd, cwd=REPO, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(world)]


def run_ranks(cmd: list[str], world: int = 2, timeout: float = 300,
              procs: list[subprocess.Popen] | None = None) -> list[tuple[str, str]]:
    """Start `cmd` once per rank (or take the started `procs`), wait for all, assert each exited 0 (showing the
    failing rank's stderr); -> [(stdout, stderr)] by rank."""
    procs = procs if procs is not None else start_ranks(cmd, world)
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, (_, err)) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {rank}: {err[-3000:]}"
    return outputs
