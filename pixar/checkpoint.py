"""Checkpoints: a directory with safetensors weights + JSON, written atomically. Never pickle.

    <dir>/model.safetensors   model weights
    <dir>/config.json         the resolved PixarConfig (model, render, train, adv)
    <dir>/state.safetensors   optional: tensors of the training state (optimizer moments, RNG states, ...)
    <dir>/state.json          optional: the rest of that state, tensors replaced by {"__tensor__": key}
    <dir>/meta.json           kind (pixar | pixar-classifier | ...), step, library versions

A directory is first written as `<dir>.tmp-<pid>` and then renamed into place, so a crash leaves either
the old checkpoint or the new one, never a half-written one.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ConfigError, PixarConfig, from_dict


class CheckpointError(RuntimeError):
    """A missing, incomplete or corrupt checkpoint; the message names the path."""


LAST_POINTER = "last"  # a training run folder's JSON pointer to its newest step-XXXXXXX checkpoint


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
def _versions() -> dict[str, str]:
    import numpy
    import PIL

    return {"torch": torch.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__}


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
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, cfg: PixarConfig | None,
                    state: dict | None = None, meta: dict | None = None) -> Path:
    """Atomically write `model` (+ optional training `state`) to directory `path`."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        if cfg is not None:
            (tmp / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        if state is not None:
            skel, tensors = flatten_state(state)
            save_file(tensors, str(tmp / "state.safetensors"))
            (tmp / "state.json").write_text(json.dumps(skel))
        m = {"kind": "pixar", "versions": _versions(), **(meta or {})}
        (tmp / "meta.json").write_text(json.dumps(m, indent=2))
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
        return from_dict(PixarConfig, json.loads(f.read_text()), where=str(f))
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
    from .model import Pixar

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
