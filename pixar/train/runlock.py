"""One run per output folder: `<out>/.lock`, created atomically (O_CREAT | O_EXCL).

    with RunLock(out_dir):            # RunLockError (one line naming pid and host) if a live run holds it
        train(...)                    # released on exit, also on exceptions; SIGKILL leaves a stale lock

The lock holds JSON {"pid", "host", "started" (UTC ISO time), "proc_start" (the process's start time in
clock ticks from /proc, so a reused pid is not mistaken for the holder), "argv"}. A lock whose pid is not
alive on this host is stale: it is taken over with a warning. A lock from another host cannot be checked
and is refused (delete the file once that run is known to be dead). Under torchrun only rank 0 locks.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pixar.errors import PixarError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class RunLockError(PixarError, RuntimeError):
    """The output folder is in use by another run (or its lock cannot be read/written)."""


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (Linux /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; fields after ")" start at field 3


def pid_alive(pid: int, proc_start: int | None = None) -> bool:
    """Is `pid` a live process on this host (and, when `proc_start` is known, the same process)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    if proc_start is not None:
        now = process_start_ticks(pid)
        if now is not None and now != proc_start:
            return False  # the pid was reused by another process
    return True


class RunLock:
    def __init__(self, out_dir: str | os.PathLike):
        self.out = Path(out_dir)
        self.path = self.out / LOCK_NAME
        self.record: dict | None = None

    def describe(self, info: dict) -> str:
        return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"

    def read(self) -> dict | None:
        """The current lock's record; {} for an unreadable/partial file; None when there is no lock."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            info = json.loads(text)
            return info if isinstance(info, dict) else {}
        except json.JSONDecodeError:
            return {}

    def acquire(self) -> "RunLock":
        self.out.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "proc_start": process_start_ticks(os.getpid()), "argv": sys.argv}
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            except OSError as e:
                raise RunLockError(f"{self.path}: cannot create the run lock ({e.strerror or e})") from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
                f.flush()
                os.fsync(f.fileno())
            self.record = me
            return self
        raise RunLockError(f"{self.path}: could not take the run lock (it keeps changing hands)")

    def _handle_existing(self) -> None:
        info = self.read()
        if info == {}:  # being written right now, or truncated by a crash: look again shortly
            time.sleep(0.2)
            info = self.read()
        if info is None:
            return  # released meanwhile: retry
        if info and info.get("host") != socket.gethostname():
            raise RunLockError(f"{self.out} is in use by another run ({self.describe(info)}); this host cannot "
                               f"check it: if that run is dead, delete {self.path}")
        if info and pid_alive(int(info.get("pid", -1)), info.get("proc_start")):
            raise RunLockError(f"{self.out} is in use by another run ({self.describe(info)}); wait for it to "
                               "finish or choose another --out")
        # stale: move it aside atomically (only one contender wins the rename), then check we moved that one
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except (json.JSONDecodeError, OSError):
            moved = {}
        if moved != info and moved:  # another process re-locked in between: give its lock back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        log.warning("%s: took over a stale run lock (%s is not running)", self.path,
                    self.describe(info) if info else "unreadable lock file")

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        if self.record is None:
            return
        info = self.read()
        if info and info.get("pid") == self.record["pid"] and info.get("started") == self.record["started"]:
            self.path.unlink(missing_ok=True)
        self.record = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class SiblingLock(RunLock):
    """`<DIR>.lock` beside folder DIR, for writers that replace DIR whole (a lock inside it would go with it):
    a second writer gets `error` (one line naming the holder); a dead holder's lock is taken over."""

    what = "another writer"
    error: type[Exception] = RunLockError

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        super().__init__(folder.parent)
        self.folder, self.path = folder, folder.parent / f"{folder.name}.lock"

    def acquire(self) -> "SiblingLock":
        try:
            return super().acquire()
        except RunLockError as e:
            info = self.read() or {}
            holder = self.describe(info) if info else str(e)
            raise self.error(f"{self.folder}: another {self.what} ({holder}) is writing it; wait for it or, if it is "
                             f"dead, delete {self.path}") from None
        except OSError as e:
            raise self.error(f"{self.folder}: cannot create {self.path} ({e.strerror or e})") from None
