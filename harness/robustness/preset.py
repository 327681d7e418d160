"""The attack preset: `configs/attack/<name>.yaml` as a dataclass, loaded like every other preset (YAML + `--set`
overrides, unknown keys refused naming the file), then overridden by the options given to `pixar attack`.

    AttackConfig                 the settings of one attack run (defaults = `pixar attack` with no preset)
    load_attack_config(preset, overrides) -> (AttackConfig, path or None)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pixar.config import preset_dir
from pixar.config_io import ConfigError, apply_override, from_dict, read_yaml_mapping

PRESET_DIR = preset_dir("attack")
OCR_CHOICES = ("glyph", "tesseract", "union")
VARIANTS = ("en", "en-10k")


def csv_list(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


@dataclass
class AttackConfig:
    name: str = "default"
    description: str = ""
    type: str | list = "swap"
    """Comma list (or YAML list) of text/pixel attacks and TextAttack recipes; `all` = every available text attack."""
    task: str | list = "sst2"
    """Comma list (or YAML list) of tasks: sst2 ... wnli, babi, lambada."""
    rates: str | list = "0,0.05,0.1,0.2,0.4,0.6"
    """Severities in [0, 1]; 0 = clean."""
    seed: int = 0
    limit: int | None = None
    """Only the first N examples of the evaluation split (None = all)."""
    ocr: str = "glyph"
    """PIXAR read-back: glyph, tesseract or union (the paper's scoring)."""
    positions: int | None = None
    """Positions PIXAR generates (None = the protocol's: bAbI 5, LAMBADA 4)."""
    batch_size: int = 16
    babi_task: int = 1
    variant: str = "en"
    query_budget: int | None = None
    """TextAttack recipes: max queries per example (None = no cap)."""

    def __post_init__(self) -> None:
        for key in ("type", "task", "rates"):  # one form: comma strings
            setattr(self, key, csv_list(getattr(self, key)))
        if self.ocr not in OCR_CHOICES:
            raise ConfigError(f"ocr must be one of {', '.join(OCR_CHOICES)}, got {self.ocr!r}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        for key in ("limit", "positions", "query_budget"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{key} must be a positive integer or null, got {value!r}")
        if self.batch_size < 1 or not 1 <= self.babi_task <= 20:
            raise ConfigError("batch_size must be positive and babi_task in 1..20")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def preset_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") else PRESET_DIR / f"{name_or_path}.yaml"


def load_attack_config(preset: str | None = None, overrides: list[str] | None = None,
                       error: type[Exception] = ConfigError) -> tuple[AttackConfig, Path | None]:
    """AttackConfig from `configs/attack/<preset>.yaml` (or a YAML path; None = the defaults) plus `key=value`
    overrides; a missing file, bad YAML, unknown key or bad value -> one-line `error` naming the file."""
    path = preset_file(preset) if preset else None
    raw = read_yaml_mapping(path, "attack preset", error, PRESET_DIR) if path is not None else {}
    try:
        for item in overrides or []:
            apply_override(raw, item)
        return from_dict(AttackConfig, raw, where=str(path) if path else "--set"), path
    except ConfigError as e:
        raise error(str(e)) from None
