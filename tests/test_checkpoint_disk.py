"""pixar.checkpoint.store run-folder saves: a save that fails midway (disk full) keeps the previous checkpoint
and the `last` pointer, removes its temp folder and raises one line."""
from __future__ import annotations

import errno
import json

import pytest
import torch

import pixar.checkpoint.store as ckpt_mod
from pixar.checkpoint.store import (CheckpointError, latest_checkpoint, load_state, save_step_checkpoint,
                                    step_checkpoints, write_last_pointer)
from pixar.model.transformer import load_model
from pixar.config import PixarConfig
from pixar.config_io import from_dict
from pixar.model.transformer import Pixar


def tiny() -> tuple[Pixar, PixarConfig]:
    cfg = from_dict(PixarConfig, {"model": {"hidden": 16, "layers": 1, "heads": 2, "ffn": 32, "max_positions": 4},
                                  "render": {"max_positions": 4}})
    return Pixar(cfg.model, generator=torch.Generator().manual_seed(0)), cfg


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def snapshot(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["weights", "state", "json", "pointer"])
def test_disk_full_midway_keeps_previous_checkpoint_and_pointer(tmp_path, monkeypatch, where):
    out = tmp_path / "run"
    model, cfg = tiny()
    first = save_step_checkpoint(out, 10, model, cfg, {"step": 10, "moment": torch.arange(3.0)}, keep_last=1)
    assert latest_checkpoint(out) == first
    before = snapshot(out)
    with torch.no_grad():
        model.head.weight.add_(1.0)

    if where == "weights":  # the first file of the new folder
        monkeypatch.setattr(ckpt_mod, "save_file", no_space)
    elif where == "state":  # the second safetensors file (after model.safetensors was written)
        real, calls = ckpt_mod.save_file, []

        def second_fails(tensors, filename, *a, **k):
            calls.append(filename)
            if len(calls) == 2:
                no_space()
            return real(tensors, filename, *a, **k)

        monkeypatch.setattr(ckpt_mod, "save_file", second_fails)
    elif where == "json":  # meta.json, the last file
        real_write = type(first / "x").write_text

        def write_text(self, text, *a, **k):
            if self.name == "meta.json":
                no_space()
            return real_write(self, text, *a, **k)

        monkeypatch.setattr(type(first / "x"), "write_text", write_text)
    else:  # the checkpoint is complete, the pointer write fails
        monkeypatch.setattr(ckpt_mod, "atomic_write_text", lambda path, text: no_space())

    with pytest.raises(CheckpointError) as err:
        save_step_checkpoint(out, 20, model, cfg, {"step": 20, "moment": torch.arange(3.0)}, keep_last=1)
    message = str(err.value)
    assert "\n" not in message and message.startswith("no space left on device while writing ")
    monkeypatch.undo()
    if where == "pointer":
        assert message == f"no space left on device while writing {out / 'last'}; previous pointer kept (-> step-0000010)"
        assert {k: v for k, v in snapshot(out).items() if not k.startswith("step-0000020")} == before
    else:
        assert message == (f"no space left on device while writing {out / 'step-0000020'}; "
                           f"previous checkpoint {first} kept")
        assert snapshot(out) == before  # old checkpoint, pointer, no temp folder, nothing else
    assert [p.name for p in out.iterdir() if ".tmp" in p.name] == []
    assert latest_checkpoint(out) == first and json.loads((out / "last").read_text())["step"] == 10
    restored, _ = load_model(out)
    assert torch.equal(restored.head.weight, tiny()[0].head.weight)
    assert load_state(out)["step"] == 10
    # and the run goes on once there is space again
    assert save_step_checkpoint(out, 20, model, cfg, {"step": 20}, keep_last=1) == out / "step-0000020"
    assert step_checkpoints(out) == [out / "step-0000020"] and latest_checkpoint(out) == out / "step-0000020"


def test_write_last_pointer_round_trip(tmp_path):
    model, cfg = tiny()
    a = save_step_checkpoint(tmp_path, 1, model, cfg)
    b = save_step_checkpoint(tmp_path, 2, model, cfg)
    write_last_pointer(tmp_path, 1, a)  # e.g. roll back
    assert latest_checkpoint(tmp_path) == a and json.loads((tmp_path / "last").read_text()) == {"step": 1, "path": a.name}
    assert step_checkpoints(tmp_path) == [a, b]
