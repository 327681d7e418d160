"""Studies as lists of ordinary `pixar` commands: each is run in process, recorded with its exact command line
and wall-clock time (`<out>/steps.json`); a step whose output already exists is skipped, so an interrupted
study resumes where it stopped (`--force` reruns everything). Used by `pixar demo` (harness.study.demo) and
`pixar reproduce` (harness.study.reproduce)."""
from __future__ import annotations

import json
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click

from pixar.config_io import atomic_write_text

from harness.app import main as pixar_main


@dataclass
class Step:
    name: str
    args: list[str]
    done: str  # a path (relative to the run folder or absolute) that exists once the step has finished
    note: str = ""
    kw: dict = field(default_factory=dict)


@contextmanager
def record_lock(path: Path):
    """An exclusive advisory lock (fcntl) on `<path>.lock` for a read-modify-write of `path`."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_records(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def run_steps(steps: list[Step], out: Path, force: bool = False, only: list[str] | None = None) -> list[dict]:
    """Run `pixar <args>` for each step in process; record command, seconds and status in steps.json.
    `only`: names of the steps to consider (several processes may run disjoint subsets side by side)."""
    log_path = out / "steps.json"
    for st in steps:
        if only and st.name not in only:
            continue
        done = Path(st.done)
        if done.exists() and not force:
            click.echo(f"[skip] {st.name}: {done} exists")
            continue
        cmd = "pixar " + " ".join(shlex.quote(a) for a in st.args)
        click.echo(f"\n[run] {st.name}: {cmd}")
        t0 = time.time()
        try:
            pixar_main.main(st.args, standalone_mode=False)
        except click.ClickException as e:
            raise click.ClickException(f"step {st.name!r} failed: {e.format_message()}") from None
        rec = {"name": st.name, "command": cmd, "seconds": round(time.time() - t0, 1), "note": st.note,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with record_lock(log_path):  # parallel subsets share the file: re-read and write under one lock
            known = {r["name"]: r for r in read_records(log_path)}
            known[st.name] = rec
            atomic_write_text(log_path, json.dumps(list(known.values()), indent=2))
    return read_records(log_path)
