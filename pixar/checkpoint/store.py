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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pixar.config import PixarConfig
from pixar.config_io import ConfigError, atomic_write_text, from_dict, migrate_flat_optim
from pixar.errors import PixarError
from pixar.provenance import versions


class CheckpointError(PixarError, RuntimeError):
    """A missing, incomplete or corrupt checkpoint; the message names the path."""


MAX_JSON_BYTES = 1 << 30
"""config/meta/state JSON of a checkpoint stays far below this (state.json of a 1.5B model: a few MB)."""
LAST_POINTER = "last"  # a training run folder's JSON pointer to its newest step-XXXXXXX checkpoint
STEP_DIR = re.compile(r"^step-(\d{7,})$")


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The checkpoint that `<out_dir>/last` points to; None when there is no pointer."""
    pointer = Path(out_dir) / LAST_POINTER
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["path"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
        raise CheckpointError(f"{pointer}: corrupt checkpoint pointer ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise CheckpointError(f"{pointer}: points to {name!r}, outside its run folder (a pointer names a folder "
                              "inside it, e.g. step-0000100); refusing it")
    target = Path(out_dir) / name
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
    except SafetensorError as e:  # safetensors reports the OS error only in its message ("... code: 28 ...")
        text = str(e)
        what = "no space left on device" if "No space left" in text or "StorageFull" in text else \
            "disk quota exceeded" if "quota" in text.lower() else f"write failed ({text.splitlines()[0][:160]})"
        raise CheckpointError(f"{what} while writing {path}; {kept}") from e


def is_checkpoint_dir(path: Path) -> bool:
    """A folder a checkpoint save may replace: empty, or a single checkpoint (meta.json or model.safetensors)
    that is not a run folder (no `last` pointer, no step-XXXXXXX folders) nor a prepared dataset."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if not names:
        return True
    if LAST_POINTER in names or "manifest.json" in names or any(STEP_DIR.match(n) for n in names):
        return False
    return "meta.json" in names or "model.safetensors" in names


def refuse_unless_replaceable(path: Path, replaceable=is_checkpoint_dir) -> None:
    """CheckpointError (one line) when `path` exists and `replaceable(path)` does not accept it (a run folder,
    a dataset, a file, a symlink): what a publish would have destroyed."""
    if (path.exists() or path.is_symlink()) and (path.is_symlink() or not replaceable(path)):
        kind = "a symlink" if path.is_symlink() else "a file" if not path.is_dir() else "a folder that is not a checkpoint"
        raise CheckpointError(f"{path}: exists and is {kind}; refusing to replace it (choose another output)")


def publish_dir(tmp: Path, path: Path, replaceable=is_checkpoint_dir) -> None:
    """Put the complete folder `tmp` in place of `path` (the old one, if any, is moved aside first and removed
    last): readers see the old folder or the new one, never half of either. An existing `path` that
    `replaceable(path)` does not accept (a run folder, a dataset, a file) is never replaced: CheckpointError."""
    refuse_unless_replaceable(path, replaceable)
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove `<path>.tmp-PID` / `<path>.old-PID` folders left beside `path` by processes of this host that
    are dead (a SIGKILL mid-save); returns what was removed."""
    removed = []
    if not path.parent.is_dir():
        return removed
    pattern = re.compile(re.escape(path.name) + r"\.(?:tmp|old)-(\d+)$")
    for p in path.parent.iterdir():
        m = pattern.match(p.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextmanager
def atomic_dir(path: str | os.PathLike, replaceable=is_checkpoint_dir):
    """Yield a fresh temp folder beside `path`; on success it replaces `path` as a whole (the old folder is
    moved aside first and removed last), on any error it is deleted and `path` is left untouched. Only a
    folder `replaceable` accepts is replaced (default: a checkpoint; never a run folder or a dataset);
    temp folders of dead processes beside `path` are removed first."""
    path = Path(path)
    refuse_unless_replaceable(path, replaceable)  # before any work is done
    clean_stale_temps(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        publish_dir(tmp, path, replaceable)
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


def read_json(f: Path) -> Any:
    """A checkpoint's JSON file; binary, malformed, huge or absurdly nested content -> one-line CheckpointError."""
    if f.is_file() and f.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError(f"{f}: {f.stat().st_size:,} bytes, too large for a checkpoint's JSON (a corrupt file?)")
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{f}: corrupt JSON (not UTF-8 text)") from None
    except ValueError as e:
        raise CheckpointError(f"{f}: corrupt JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{f}: corrupt JSON (nested too deeply)") from None
    except OSError as e:
        raise CheckpointError(f"{f}: cannot read ({e.strerror or e})") from None


def load_meta(path: str | os.PathLike) -> dict:
    path = resolve_checkpoint(path)
    f = _require(Path(path), "meta.json")
    meta = read_json(f)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{f}: corrupt meta.json (expected a JSON object)")
    return meta


def load_config(path: str | os.PathLike) -> PixarConfig:
    path = resolve_checkpoint(path)
    f = _require(Path(path), "config.json")
    try:
        raw = read_json(f)
        return from_dict(PixarConfig, migrate_flat_optim(raw) if isinstance(raw, dict) else raw, where=str(f))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def weight_shapes(f: Path) -> dict[str, tuple[int, ...]]:
    """{name: shape} from a safetensors file's header only (nothing allocated); corrupt -> CheckpointError."""
    try:
        with safe_open(str(f), framework="pt") as st:
            return {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{f}: corrupt safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def check_model_shapes(model_cls, mcfg, f: Path) -> None:
    """The model `model_cls(mcfg)` describes has exactly the tensors of weights file `f` (names and shapes), checked
    from the file's header BEFORE the model is built: a config.json claiming 10M layers or a 1e9 hidden size
    is one line, not a huge allocation. (The weights file's own size bounds what is then allocated.)"""
    have = weight_shapes(f)
    layers = {int(m.group(1)) for k in have if (m := re.match(r"blocks\.(\d+)\.", k))}
    if len(layers) != mcfg.layers:
        raise CheckpointError(f"{f}: the weights have {len(layers)} layers, the config says model.layers={mcfg.layers}")
    emb = have.get("embed.weight")
    if emb != (mcfg.hidden, mcfg.pixels_per_position):
        raise CheckpointError(f"{f}: embed.weight is {list(emb) if emb else 'missing'}, the config says "
                              f"[{mcfg.hidden}, {mcfg.pixels_per_position}] (model.hidden x pixels per position)")
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in model_cls(mcfg).state_dict().items()}
    bad = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if bad:
        k = bad[0]
        raise CheckpointError(f"{f}: weights do not match the config ({len(bad)} tensor(s); {k}: file "
                              f"{list(have[k]) if k in have else 'missing'}, config {list(want[k]) if k in want else 'none'})")


def load_weights(module: torch.nn.Module, path: str | os.PathLike, name: str = "model.safetensors") -> None:
    path = resolve_checkpoint(path)
    f = _require(Path(path), name)
    weights = _load_tensors(f)
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{f}: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")


def build_model(model_cls, path: str | os.PathLike, device: str | torch.device = "cpu"):
    """-> (model_cls(cfg.model) holding the checkpoint's weights, in eval mode, its PixarConfig). The model
    class is passed in (the checkpoint format knows no model): pixar.model.transformer.load_model gives a Pixar."""
    path = resolve_checkpoint(path)
    cfg = load_config(path)
    check_model_shapes(model_cls, cfg.model, _require(Path(path), "model.safetensors"))
    model = model_cls(cfg.model)
    load_weights(model, path)
    return model.to(device).eval(), cfg


def load_state(path: str | os.PathLike) -> dict:
    path = resolve_checkpoint(path)
    f = _require(path, "state.json")
    tensors = _load_tensors(_require(path, "state.safetensors"))
    return unflatten_state(read_json(f), tensors)
