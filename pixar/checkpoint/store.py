"""Checkpoints: a directory with safetensors weights + JSON, written atomically. Never pickle.

    <dir>/model.safetensors   model weights
    <dir>/config.json         the resolved PixarConfig (model, render, train, adv)
    <dir>/state.safetensors   optional: tensors of the training state (optimizer moments, RNG states, ...)
    <dir>/state.json          optional: the rest of that state, tensors replaced by {"__tensor__": key}
    <dir>/meta.json           kind (pixar | pixar-classifier | ...), step, library versions

A directory is first written as `<dir>.tmp-<pid>` and then renamed into place, so a crash leaves either
the old checkpoint or the new one, never a half-written one. A write that fails (disk full, quota, I/O
error) deletes the temp folder and raises one-line CheckpointError naming what was kept.

Training run folders (`save_step_checkpoint`): `<out>/step-XXXXXXX/` checkpoints plus `<out>/last`, a JSON
pointer {"step", "path"} to the newest one, replaced atomically only after its checkpoint is complete.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pixar.config import ConfigError, PixarConfig, atomic_write_text, from_dict, migrate_flat_optim


class CheckpointError(RuntimeError):
    """A missing, incomplete or corrupt checkpoint; the message names the path."""


LAST_POINTER = "last"  # a training run folder's JSON pointer to its newest step-XXXXXXX checkpoint
STEP_DIR = re.compile(r"^step-(\d{7,})$")


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The checkpoint that `<out_dir>/last` points to; None when there is no pointer."""
    pointer = Path(out_dir) / LAST_POINTER
    if not pointer.is_file():
        return None
    try:
        target = Path(out_dir) / json.loads(pointer.read_text())["path"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{pointer}: corrupt checkpoint pointer ({e})") from None
    if not target.is_dir():
        raise CheckpointError(f"{pointer}: points to {target}, which does not exist")
    return target


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder as given, or a training run folder's newest checkpoint (its `last` pointer)."""
    path = Path(path)
    if not (path / "model.safetensors").exists() and (path / LAST_POINTER).is_file():
        return latest_checkpoint(path)
    return path


# ---- nested state <-> (tensors, JSON) --------------------------------------------------------
def flatten_state(obj: Any, prefix: str = "", tensors: dict | None = None):
    """Split a nested dict/list structure into a flat {key: tensor} map and a JSON-able skeleton."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        key = prefix or "t"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}, tensors
    if isinstance(obj, dict):
        return {"__dict__": [[_key_json(k), flatten_state(v, f"{prefix}.{k}" if prefix else str(k), tensors)[0]]
                             for k, v in obj.items()]}, tensors
    if isinstance(obj, (list, tuple)):
        items = [flatten_state(v, f"{prefix}.{i}" if prefix else str(i), tensors)[0] for i, v in enumerate(obj)]
        return ({"__tuple__": items} if isinstance(obj, tuple) else items), tensors
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, tensors
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint state")


def _key_json(k):
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k
    raise TypeError(f"dict key {k!r} cannot be stored")


def unflatten_state(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__tuple__" in skel:
            return tuple(unflatten_state(v, tensors) for v in skel["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in skel["__dict__"]}
    if isinstance(skel, list):
        return [unflatten_state(v, tensors) for v in skel]
    return skel


# ---- writing ---------------------------------------------------------------------------------
@contextmanager
def write_errors(path: Path, kept: str):
    """Turn an OSError while writing `path` into a one-line CheckpointError saying what was `kept`."""
    try:
        yield
    except OSError as e:
        what = "no space left on device" if e.errno == errno.ENOSPC else \
            "disk quota exceeded" if e.errno == errno.EDQUOT else f"write failed ({e.strerror or e})"
        raise CheckpointError(f"{what} while writing {path}; {kept}") from e


def publish_dir(tmp: Path, path: Path) -> None:
    """Put the complete folder `tmp` in place of `path` (the old one, if any, is moved aside first and removed
    last): readers see the old folder or the new one, never half of either."""
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a fresh temp folder beside `path`; on success it replaces `path` as a whole (the old folder is
    moved aside first and removed last), on any error it is deleted and `path` is left untouched."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        publish_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, cfg: PixarConfig | None,
                    state: dict | None = None, meta: dict | None = None, extra_files: dict[str, str] | None = None,
                    kept: str | None = None) -> Path:
    """Atomically write `model` (+ optional training `state`, + `extra_files` {name: text}) to directory
    `path`. On a failed write: CheckpointError (`kept` says what survives; default: `path` as it was)."""
    return save_weights_checkpoint(path, model.state_dict(), cfg, state, meta, extra_files, kept)


def save_weights_checkpoint(path: str | os.PathLike, weights: dict[str, torch.Tensor], cfg: PixarConfig | None,
                            state: dict | None = None, meta: dict | None = None,
                            extra_files: dict[str, str] | None = None, kept: str | None = None) -> Path:
    """save_checkpoint from a state dict {name: tensor} (e.g. one gathered from FSDP shards)."""
    path = Path(path)
    kept = kept or (f"previous checkpoint {path} kept" if path.exists() else "nothing was written")
    with write_errors(path, kept), atomic_dir(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        write_checkpoint_files(tmp, cfg, state, meta, extra_files)
    return path


def write_checkpoint_files(folder: Path, cfg: PixarConfig | None, state: dict | None = None, meta: dict | None = None,
                           extra_files: dict[str, str] | None = None) -> None:
    """config.json, state.safetensors + state.json, meta.json and extra text files into `folder`."""
    if cfg is not None:
        (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    if state is not None:
        skel, tensors = flatten_state(state)
        save_file(tensors, str(folder / "state.safetensors"))
        (folder / "state.json").write_text(json.dumps(skel))
    from pixar.provenance import versions

    m = {"kind": "pixar", "versions": versions(), **(meta or {})}
    (folder / "meta.json").write_text(json.dumps(m, indent=2))
    for name, text in (extra_files or {}).items():
        (folder / name).write_text(text)


# ---- training run folders: step-XXXXXXX checkpoints + the `last` pointer ----------------------
def step_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The `step-XXXXXXX` checkpoints in `out_dir`, oldest first."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def step_path(out_dir: str | os.PathLike, step: int) -> Path:
    return Path(out_dir) / f"step-{step:07d}"


def write_last_pointer(out_dir: str | os.PathLike, step: int, path: str | os.PathLike) -> Path:
    """Atomically point `<out_dir>/last` at checkpoint `path` (a folder inside out_dir) of `step`. Call it
    only after the checkpoint is complete; a failed write keeps the old pointer (CheckpointError)."""
    out = Path(out_dir)
    pointer = out / LAST_POINTER
    previous = latest_checkpoint(out) if pointer.is_file() else None
    kept = f"previous pointer kept (-> {previous.name})" if previous is not None else "no pointer was written"
    with write_errors(pointer, kept):
        atomic_write_text(pointer, json.dumps({"step": int(step), "path": Path(path).name}))
    return pointer


def save_step_checkpoint(out_dir: str | os.PathLike, step: int, model: torch.nn.Module, cfg: PixarConfig,
                         state: dict | None = None, meta: dict | None = None, keep_last: int = 0,
                         weights: dict[str, torch.Tensor] | None = None) -> Path:
    """The whole save sequence of a training run: write `<out>/step-XXXXXXX` atomically, then repoint
    `<out>/last`, then keep only the newest `keep_last` step folders (0 = all). `weights` (a full state
    dict) replaces model.state_dict() when given. A failure at any point leaves the previous checkpoint
    and pointer intact and raises CheckpointError("no space left on device while writing ...; previous
    checkpoint ... kept")."""
    out = Path(out_dir)
    previous = latest_checkpoint(out)
    path = step_path(out, step)
    kept = f"previous checkpoint {previous} kept" if previous is not None else "no earlier checkpoint exists"
    save_weights_checkpoint(path, model.state_dict() if weights is None else weights, cfg, state,
                            {"step": step, **(meta or {})}, kept=kept)
    write_last_pointer(out, step, path)
    if keep_last > 0:
        for old in step_checkpoints(out)[:-keep_last]:
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
    return path


# ---- reading ---------------------------------------------------------------------------------
def _require(path: Path, name: str) -> Path:
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint directory does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a checkpoint is a directory (model.safetensors + config.json)")
    f = path / name
    if not f.is_file():
        raise CheckpointError(f"{path}: missing {name} (incomplete or not a PIXAR checkpoint)")
    return f


def _load_tensors(f: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{f}: corrupt safetensors file ({str(e).splitlines()[0]})") from None


def load_meta(path: str | os.PathLike) -> dict:
    path = resolve_checkpoint(path)
    f = _require(Path(path), "meta.json")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: corrupt JSON ({e})") from None


def load_config(path: str | os.PathLike) -> PixarConfig:
    path = resolve_checkpoint(path)
    f = _require(Path(path), "config.json")
    try:
        raw = json.loads(f.read_text())
        return from_dict(PixarConfig, migrate_flat_optim(raw) if isinstance(raw, dict) else raw, where=str(f))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: corrupt JSON ({e})") from None
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def load_weights(module: torch.nn.Module, path: str | os.PathLike, name: str = "model.safetensors") -> None:
    path = resolve_checkpoint(path)
    f = _require(Path(path), name)
    weights = _load_tensors(f)
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{f}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """-> (Pixar model in eval mode, PixarConfig)."""
    from pixar.model.transformer import Pixar

    path = resolve_checkpoint(path)
    cfg = load_config(path)
    model = Pixar(cfg.model)
    load_weights(model, path)
    return model.to(device).eval(), cfg


def load_state(path: str | os.PathLike) -> dict:
    path = resolve_checkpoint(path)
    f = _require(path, "state.json")
    tensors = _load_tensors(_require(path, "state.safetensors"))
    try:
        skel = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: corrupt JSON ({e})") from None
    return unflatten_state(skel, tensors)
