"""The machinery of the reliability probes (tests/probes.py holds the table): the Probe record, the world of
fixtures every probe runs in (a pixar-micro checkpoint and run folder, a prepared dataset, a data folder, a tiny
GPT-2, an official-layout backbone), the setups that damage a copy of it, and the runner that classifies what
a command did:

    clean      the expected exit code, one `Error: ...` line matching the probe's regex, no traceback
               (exit code 0 probes: no error line, the regex found in the output)
    traceback  an exception escaped the command (a traceback where one line is due)
    silent     exit 0 where a refusal was due (or the wrong exit code, or a temp folder left behind)
    loss       a file that existed before the command was changed or removed (or planted code ran)
    unclear    the right exit code but a message that does not match (or more than one error line)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CATEGORIES = ("bad input", "corruption", "faults", "security", "load/memory")
SENTENCES = ["The cat sat on the mat near the door.", "A quiet river ran past the old mill at dawn.",
             "She opened the window and looked at the hills.", "Nobody knew where the road would lead them.",
             "He wrote a long letter to his brother in the city.", "The children played in the garden until dark."]


@dataclass
class Probe:
    id: str
    category: str
    args: list[str]  # `{w}` = the probe's world folder
    message: str  # regex the error line must match (searched in the output)
    code: int = 1  # 1 = click.ClickException (one line), 2 = a usage error (click's own bounds), 0 = must work
    setup: Callable[[Path], None] | None = None
    patch: Callable[[object], None] | None = None  # gets pytest's monkeypatch-like object (see run_probe)


# ---- the world ---------------------------------------------------------------------------------------------
def build_world(root: Path) -> Path:
    """The shared fixtures, built once (copied for each probe so no probe sees another's leftovers)."""
    import torch

    from safetensors.torch import save_file

    from official_reference import pixar_to_official
    from pixar.checkpoint.store import save_checkpoint, save_step_checkpoint
    from pixar.config import PixarConfig, preset_path
    from pixar.data.prepare import packing_config, prepare
    from pixar.model.transformer import Pixar

    root.mkdir(parents=True, exist_ok=True)
    text = "\n".join(" ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(4)) for i in range(60))
    (root / "corpus.txt").write_text(text + "\n")
    (root / "empty.txt").write_text("")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 8)
    cfg = PixarConfig.from_yaml(preset_path("pixar-micro"), [f"train.data=[{root / 'corpus.txt'}]",
                                                             "train.steps=2", "train.save_every=1"])
    torch.manual_seed(0)
    model = Pixar(cfg.model)
    save_checkpoint(root / "ckpt", model, cfg, meta={"step": 0})
    for step in (1, 2):
        save_step_checkpoint(root / "run", step, model, cfg, state={"step": step}, meta={"kind": "pixar"})
    (root / "run" / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2)))
    (root / "run" / "config.yaml").write_text(cfg.to_yaml())
    prepare([str(root / "corpus.txt")], root / "prepared", packing_config(cfg.train))
    data = root / "data"
    (data / "lambada").mkdir(parents=True)
    (data / "lambada" / "lambada_test.jsonl").write_text(
        "".join(json.dumps({"text": s}) + "\n" for s in SENTENCES))
    (data / "lambada" / "lambada_test_plain_text.txt").write_text("\n".join(s.lower() for s in SENTENCES) + "\n")
    babi = data / "babi" / "tasks_1-20_v1-2" / "en"
    babi.mkdir(parents=True)
    story = "1 Mary went to the kitchen.\n2 John went to the garden.\n3 Where is Mary?\tkitchen\t1\n"
    for split in ("train", "test"):
        (babi / f"qa1_single-supporting-fact_{split}.txt").write_text(story * 3)
    _tiny_gpt2(root / "gpt2")
    official = root / "official"  # the same weights in the official april-tools/pixar layout
    official.mkdir()
    (official / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                                      "intermediate_size": 192}))
    save_file({k: v.contiguous() for k, v in pixar_to_official(model.state_dict(), cfg.model).items()},
              str(official / "model.safetensors"))
    return root


def _tiny_gpt2(folder: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(
        str(folder), safe_serialization=True)


# ---- setups ------------------------------------------------------------------------------------------------
def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    return setup


def truncate(rel: str, keep: int) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.write_bytes(p.read_bytes()[:keep])
    return setup


def edit_json(rel: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        d = json.loads(p.read_text())
        fn(d)
        p.write_text(json.dumps(d))
    return setup


def chain(*setups) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        for s in setups:
            s(w)
    return setup


def set_key(path: list[str], value) -> Callable[[dict], None]:
    def fn(d: dict) -> None:
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return fn


def flip_shard_bytes(w: Path) -> None:
    """Same-size edit of the first train shard (its size still matches the manifest)."""
    shard = next((w / "prepared" / "train").glob("data-*.arrow"))
    raw = bytearray(shard.read_bytes())
    i = raw.rfind(b"cat")
    raw[i:i + 3] = b"dog"
    shard.write_bytes(bytes(raw))


def ff_shard(w: Path) -> None:
    shard = next((w / "prepared" / "train").glob("data-*.arrow"))
    shard.write_bytes(b"\xff" * shard.stat().st_size)


def escape_shard(w: Path) -> None:
    other = w / "other"
    shutil.copytree(w / "prepared", other)
    m = json.loads((w / "prepared" / "manifest.json").read_text())
    m["splits"]["train"]["shards"][0]["file"] = "../other/" + m["splits"]["train"]["shards"][0]["file"]
    (w / "prepared" / "manifest.json").write_text(json.dumps(m))


def bin_only(w: Path) -> None:
    (w / "official" / "model.safetensors").unlink()


def no_last(w: Path) -> None:
    (w / "run" / "last").unlink()


def stale_last_pointer(w: Path) -> None:
    (w / "run" / "last").write_text(json.dumps({"step": 10, "path": "../base/step-0000010"}))
    shutil.copytree(w / "run", w / "base")


def nested_config(w: Path) -> None:
    (w / "ckpt" / "config.json").write_text("[" * 100000 + "]" * 100000)


def lock_prepare(w: Path) -> None:
    """Another live process (this test's parent, pid 1's stand-in: our own parent pid) holds the prepare lock."""
    lock = w / "prepared.lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename, "started": "2026-01-01T00:00:00Z",
                                "argv": ["pixar", "data", "prepare"]}))


def enospc_save(mp) -> None:
    """Disk full mid-checkpoint: safetensors' writer fails as it does on a full disk."""
    from safetensors import SafetensorError

    import pixar.checkpoint.store as store

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')
    mp.setattr(store, "save_file", full)


def enospc_shards(mp) -> None:
    """Disk full while a dataset's shards are written."""
    import errno

    import pixar.data.prepare as prep
    import pixar.data.units as units

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    mp.setattr(prep, "write_shard", full)  # the final shards
    mp.setattr(units, "write_shard", full)  # the packed parts, written first


def enospc_png(mp) -> None:
    """Disk full while a PNG is written (Pillow raises the OSError)."""
    import errno

    from PIL import Image

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    mp.setattr(Image.Image, "save", full)


def erofs_png(mp) -> None:
    """A read-only output folder (as root, chmod cannot make one): the temp file cannot be created."""
    import errno
    import tempfile

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")
    mp.setattr(tempfile, "mkstemp", ro)


# ---- running and classifying ------------------------------------------------------------------------------
def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    kind: str  # clean | traceback | silent | loss | unclear
    exit_code: int
    output: str
    detail: str = ""
    lost: list[str] = field(default_factory=list)


class _Patcher:
    """The part of pytest's monkeypatch the probes use (setattr, undone afterwards)."""

    def __init__(self):
        self._undo = []

    def setattr(self, obj, name, value):
        self._undo.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def undo(self):
        for obj, name, value in reversed(self._undo):
            setattr(obj, name, value)
        self._undo.clear()


def run_probe(probe: Probe, world: Path, workdir: Path) -> Outcome:
    """Copy `world` to `workdir`, apply the probe's setup, run the command there, classify the result."""
    import traceback

    from click.testing import CliRunner

    from harness.app import main

    shutil.copytree(world, workdir, symlinks=True)
    if probe.setup is not None:
        probe.setup(workdir)
    before = tree_digest(workdir)
    args = [a.replace("{w}", str(workdir)) for a in probe.args]
    patcher = _Patcher()
    if probe.patch is not None:
        probe.patch(patcher)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        result = CliRunner().invoke(main, args, env={"PIXAR_DATA": str(workdir / "data"),
                                                     "PIXAR_CACHE": str(workdir / ".cache")})
    finally:
        os.chdir(cwd)
        patcher.undo()
    out = result.output
    after = tree_digest(workdir)
    lost = sorted(k for k, v in before.items() if after.get(k) != v)
    if (workdir / "pwned").exists():
        lost.append("pwned (code was executed)")
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return Outcome("traceback", result.exit_code, out, tb[-3000:], lost)
    if lost:
        return Outcome("loss", result.exit_code, out, "", lost)
    if result.exit_code != probe.code:
        return Outcome("silent", result.exit_code, out, f"exit {result.exit_code}, expected {probe.code}")
    leftovers = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if re.search(r"\.(tmp|old)-\d+$", p.name))
    if leftovers:  # a failed write must clean up after itself
        return Outcome("silent", result.exit_code, out, f"left temp folders {leftovers}")
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    if len(errors) != (probe.code != 0) or not re.search(probe.message, out) or "Traceback" in out:
        return Outcome("unclear", result.exit_code, out, f"no single error line matching {probe.message!r}")
    return Outcome("clean", result.exit_code, out)


def count(world: Path, scratch: Path, probes: list[Probe]) -> dict[str, dict[str, int]]:
    table = {c: {k: 0 for k in ("probes", "clean", "traceback", "silent", "loss", "unclear")} for c in CATEGORIES}
    for i, probe in enumerate(probes):
        o = run_probe(probe, world, scratch / f"{i:03d}-{probe.id}")
        table[probe.category]["probes"] += 1
        table[probe.category][o.kind] += 1
        if o.kind != "clean":
            print(f"  {probe.id}: {o.kind} ({o.detail.strip().splitlines()[-1] if o.detail.strip() else o.output.strip()[-200:]})",
                  file=sys.stderr)
    return table


def markdown(table: dict[str, dict[str, int]]) -> str:
    cols = ("probes", "clean", "traceback", "silent", "loss", "unclear")
    lines = ["| category | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    total = {c: 0 for c in cols}
    for cat, row in table.items():
        lines.append(f"| {cat} | " + " | ".join(str(row[c]) for c in cols) + " |")
        for c in cols:
            total[c] += row[c]
    lines.append("| **all** | " + " | ".join(str(total[c]) for c in cols) + " |")
    return "\n".join(lines)


