"""pixar.train.runlock: one run per output folder, checked with real processes."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pixar.train.runlock import LOCK_NAME, RunLock, RunLockError, pid_alive

REPO = Path(__file__).resolve().parent.parent
HOLDER = [sys.executable, str(REPO / "tests" / "runlock_holder.py")]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def start_holder(out: Path, release: Path) -> subprocess.Popen:
    proc = subprocess.Popen(HOLDER + [str(out), str(release)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("locked "), proc.stderr.read()
    return proc


def test_second_process_is_refused_while_the_first_runs_then_lock_is_released(tmp_path):
    out, release = tmp_path / "run", tmp_path / "release"
    first = start_holder(out, release)
    try:
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == first.pid and info["host"] == socket.gethostname()
        second = subprocess.run(HOLDER + [str(out), str(release)], env=ENV, capture_output=True, text=True, timeout=60)
        assert second.returncode == 3
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and f"pid {first.pid} on {socket.gethostname()}" in err[0] and "in use" in err[0]
        with pytest.raises(RunLockError, match=f"pid {first.pid}"):
            RunLock(out).acquire()  # and in-process too
    finally:
        release.touch()
        first.wait(timeout=30)
    assert first.returncode == 0 and not (out / LOCK_NAME).exists()
    with RunLock(out) as lock:  # free again
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid() == lock.record["pid"]
    assert not (out / LOCK_NAME).exists()


def test_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    out, release = tmp_path / "run", tmp_path / "never"
    holder = start_holder(out, release)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (out / LOCK_NAME).exists() and not pid_alive(holder.pid)
    with caplog.at_level(logging.WARNING, logger="pixar.train.runlock"):
        with RunLock(out):
            assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"stale run lock (pid {holder.pid}" in caplog.text
    assert [p.name for p in out.iterdir()] == []


def test_reused_pid_and_foreign_host_and_release_only_own_lock(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    me = RunLock(out).acquire()
    record = dict(me.record)
    # a lock that names a live pid but another process start time (a reused pid) is stale
    (out / LOCK_NAME).write_text(json.dumps({**record, "pid": os.getpid(), "proc_start": -5, "started": "x"}))
    assert not pid_alive(os.getpid(), -5)
    me.release()  # not ours any more (different 'started'): left alone
    assert (out / LOCK_NAME).exists()
    with RunLock(out):
        pass
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "t"}))
    with pytest.raises(RunLockError, match="pid 1 on elsewhere.example.*cannot check it: if that run is dead, delete"):
        RunLock(out).acquire()
