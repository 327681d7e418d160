"""Plain helpers shared by test modules (fixtures live in conftest.py): the data-skip rule and the micro
stage-1 run settings.

    need_data(reason)          skip a test that needs real data, a font or Tesseract; under PIXAR_REQUIRE_DATA=1
                               (CI with the data folder, .ci/run) the same call FAILS the test instead
    micro_overrides(corpus)    --set overrides shrinking pixar-micro to ~20k parameters and 32-position strips
    losses(out)                {step: loss} of a run folder's metrics.jsonl
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pixar.config import PixarConfig, preset_path


def require_data() -> bool:
    """PIXAR_REQUIRE_DATA=1: every data/font/Tesseract skip is a failure."""
    return os.environ.get("PIXAR_REQUIRE_DATA", "") == "1"


def need_data(reason: str) -> None:
    """Skip (no data, font or Tesseract here), or fail under PIXAR_REQUIRE_DATA=1. Never returns."""
    if require_data():
        pytest.fail(f"PIXAR_REQUIRE_DATA=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def micro_overrides(corpus: Path, **train) -> list[str]:
    """pixar-micro shrunk to ~20k parameters and 32-position strips: a step takes a few ms."""
    sets = {"model.hidden": 32, "model.layers": 1, "model.heads": 2, "model.ffn": 64, "model.max_positions": 32,
            "render.max_positions": 32, "train.data": f"[{corpus}]", "train.max_chars": 80, "train.min_chars": 20,
            "train.batch_size": 4, "train.threads": 1, "train.log_every": 1, "train.eval_every": 0,
            "train.eval_batches": 1, "train.sample_every": 0, "train.save_every": 0, "train.optim.warmup_steps": 3,
            **{(f"train.optim.{k}" if k in OPTIM_KEYS else f"train.{k}"): v for k, v in train.items()}}
    return [f"{k}={v}" for k, v in sets.items()]


OPTIM_KEYS = ("lr", "warmup_steps", "min_lr_ratio", "beta1", "beta2", "eps", "weight_decay", "grad_clip")


def micro_cfg(corpus: Path, **train) -> PixarConfig:
    return PixarConfig.from_yaml(preset_path("pixar-micro"), micro_overrides(corpus, **train))


def losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}
