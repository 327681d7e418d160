"""Hold pixar.train.runlock.RunLock on a folder until a release file appears (tests/test_runlock.py).

    python tests/runlock_holder.py OUT RELEASE_FILE     prints "locked <pid>", exits 0 after release;
                                                        exits 3 with the one-line error if refused
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from pixar.train.runlock import RunLock, RunLockError

if __name__ == "__main__":
    out, release = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        lock = RunLock(out).acquire()
    except RunLockError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    try:
        print(f"locked {lock.record['pid']}", flush=True)
        while not release.exists():
            time.sleep(0.02)
    finally:
        lock.release()
