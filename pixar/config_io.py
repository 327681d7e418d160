"""The generic YAML <-> dataclass machinery under pixar.config (it knows no particular dataclass, so any
preset dataclass, PixarConfig or harness's, loads through it), plus the atomic file writes everything uses.

    ConfigError          a bad config value or key; the message names the file/key
    read_yaml_mapping    a YAML file's top-level mapping, with size and nesting guards (one line naming the file)
    dataclass_from_yaml  a dataclass from a YAML file plus `--set a.b=value` overrides
    check_override_key   an unknown `--set` key -> one line with did-you-mean (difflib over every dotted key)
    apply_override       one `a.b.c=value` override, the value parsed as a YAML scalar
    from_dict            a (nested) dataclass from a dict: unknown keys and wrong scalar types rejected
    migrate_flat_optim   a pre-OptimConfig saved config in today's layout
    atomic_write(_text)  write to a temp file in the folder, then os.replace: readers never see half a file

Loading rejects unknown keys (naming the file and the key); missing keys take defaults.
"""
from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from pixar.errors import PixarError


class ConfigError(PixarError, ValueError):
    """A bad config value or key; the message names the file/key."""


OPTIM_FIELDS = ("lr", "warmup_steps", "min_lr_ratio", "beta1", "beta2", "eps", "weight_decay", "grad_clip")
"""OptimConfig's fields: flat keys of this name in a section are what configs held before `optim` existed."""


def migrate_flat_optim(raw: dict) -> dict:
    """A saved config (a checkpoint's config.json) from before OptimConfig, in today's layout: flat
    train.{lr, warmup_steps, ...} move into train.optim; adv.{lr_g, warmup_steps} into adv.optim.{lr,
    warmup_steps}, with the AdamW settings stage 2 then took from `train`. Current layouts pass unchanged."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    train = raw.get("train")
    flat_train = {}
    if isinstance(train, dict):
        flat_train = {k: train.pop(k) for k in OPTIM_FIELDS if k in train}
        if flat_train:
            train["optim"] = {**flat_train, **(train.get("optim") or {})}
    adv = raw.get("adv")
    if isinstance(adv, dict) and ("lr_g" in adv or "warmup_steps" in adv):
        moved = {k: v for k, v in flat_train.items() if k in ("beta1", "beta2", "eps", "weight_decay", "grad_clip")}
        if "lr_g" in adv:
            moved["lr"] = adv.pop("lr_g")
        if "warmup_steps" in adv:
            moved["warmup_steps"] = adv.pop("warmup_steps")
        adv["optim"] = {**moved, **(adv.get("optim") or {})}
    return raw


MAX_CONFIG_BYTES = 1 << 20
"""A YAML config is a few KB; a larger file is not one (and is not read whole)."""


def read_yaml_mapping(path: str | os.PathLike, what: str = "config file", error=ConfigError,
                      known_dir: Path | None = None) -> dict:
    """A YAML file's top-level mapping; a missing file, bad YAML or a non-mapping -> one-line `error`
    naming the file (and, with `known_dir`, the presets that do exist)."""
    path = Path(path)
    if path.exists() and not path.is_dir() and (not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES):
        kind = "not a regular file (a device or pipe?)" if not path.is_file() else \
            f"{path.stat().st_size:,} bytes, more than any {what} ({MAX_CONFIG_BYTES:,})"
        raise error(f"{path}: {what} is {kind}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = f" (known: {', '.join(sorted(p.stem for p in known_dir.glob('*.yaml')))})" if known_dir else ""
        raise error(f"{path}: {what} not found{known}") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} is a folder, expected a YAML file") from None
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}".replace("\n", " ")) from None
    except RecursionError:
        raise error(f"{path}: invalid YAML: nested too deeply") from None
    if raw is None:
        raise error(f"{path}: empty {what} (expected a YAML mapping of settings)")
    if not isinstance(raw, dict):
        raise error(f"{path}: top level must be a mapping, got {type(raw).__name__} (not a {what}?)")
    return raw


def dataclass_from_yaml(cls: type, path: str | os.PathLike, overrides: list[str] | None = None):
    """Dataclass `cls` from a YAML file plus `a.b=value` overrides; unknown keys rejected."""
    raw = read_yaml_mapping(path)
    for item in overrides or []:
        check_override_key(cls, item)
        apply_override(raw, item)
    return from_dict(cls, raw, where=str(path))


def config_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of dataclass `cls` (sections and leaves, nested dataclasses followed), e.g. train.steps."""
    keys = []
    for name, typ in get_type_hints(cls).items():
        if name not in {f.name for f in fields(cls)}:
            continue
        keys.append(prefix + name)
        if is_dataclass(typ):
            keys += config_keys(typ, f"{prefix}{name}.")
    return keys


def check_override_key(cls: type, item: str) -> None:
    """A `--set key=value` whose key is not a field of `cls` -> one line naming the key, with the closest
    known keys (difflib over every dotted key, so it follows however the dataclasses nest)."""
    key = item.split("=", 1)[0].strip()
    if "=" not in item or not key:
        return  # apply_override names the malformed item
    keys = config_keys(cls)
    sections = {k.rsplit(".", 1)[0] for k in keys if "." in k}
    parts = key.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
    if key in keys or any(p in keys and p not in sections for p in prefixes):
        return  # a known key, or inside a mapping-valued field (from_dict checks the value)
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"--set {item}: unknown key {key!r}{hint}")


def apply_override(raw: dict, item: str) -> None:
    """Apply one `a.b.c=value` override (value parsed as a YAML scalar) to a nested dict."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value")
    key, value = item.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: invalid YAML value ({str(e).splitlines()[0]})") from None


def from_dict(cls: type, raw: dict, where: str = "<dict>"):
    """Build dataclass `cls` from a nested dict, rejecting unknown keys and wrong scalar types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: unknown key(s) {unknown} in {cls.__name__}{hint} (known: {sorted(known)})")
    kwargs = {}
    for name, value in raw.items():
        typ = hints[name]
        if is_dataclass(typ):
            kwargs[name] = from_dict(typ, value, where=f"{where}:{name}")
        else:
            kwargs[name] = _coerce(value, typ, f"{where}:{name}")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _coerce(value: Any, typ: Any, where: str) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float) and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return typ(value)
        except ValueError:
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
    if typ in (int, float, str, bool):
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` on a temp file in `path`'s folder, then os.replace it onto `path`, so readers
    never see half a file and a crash leaves the old one. The file gets the usual (umask) permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
