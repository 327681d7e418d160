"""Bounds on every number a user can type into a config (`--set`, a YAML preset, a checkpoint's config.json):
each `name: (low, high, low inclusive)`. Sizes far beyond any real model or run are typos that would otherwise
allocate gigabytes or loop forever (`max_chars=0`), and NaN/inf/1e300 learning rates train nothing; both are
refused with one line by pixar.config's dataclasses before anything is built.
"""
from __future__ import annotations

import math

MAX_POSITIONS = 1 << 16
"""The most positions a strip may have (a 1M-px strip; the paper uses 360): a typo cannot allocate gigabytes."""
RENDER_BOUNDS = {"font_size": (1, 256, True), "patch_size": (1, 256, True), "patch_len": (1, 64, True),
                 "max_positions": (2, MAX_POSITIONS, True), "text_x": (-256, 256, True), "text_y": (-256, 256, True),
                 "eos_gap": (0, 256, True)}
MODEL_BOUNDS = {"hidden": (1, 1 << 16, True), "layers": (1, 1024, True), "heads": (1, 1024, True),
                "ffn": (1, 1 << 18, True), "patch_size": (1, 256, True), "patch_len": (1, 64, True),
                "max_positions": (2, MAX_POSITIONS, True), "rope_theta": (0, 1e12, False), "norm_eps": (0, 1, False),
                "init_std": (0, 10, False)}
"""Model sizes far beyond the 1.5B preset (hidden 1600, 48 layers) are typos; checked before anything is built."""


MAX_LR = 10.0
"""No optimiser in this project trains at a learning rate above this (AdamW's paper setting is 3e-4)."""


def out_of_bounds(section: str, obj, bounds: dict) -> str | None:
    """The first `name: (low, high, low_inclusive)` of `bounds` that `obj` breaks, as one line naming
    `section.name` (NaN, inf, 1e300 and negatives typed by a user stop here); None when all are in range."""
    for name, (low, high, inclusive) in bounds.items():
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{section}.{name} must be a number, got {v!r}"
        if not (math.isfinite(v) and (v >= low if inclusive else v > low) and v <= high):
            return f"{section}.{name} must be a finite number in {'[' if inclusive else '('}{low}, {high}], got {v!r}"
    return None


_BIG = 1 << 40
OPTIM_BOUNDS = {"lr": (0, MAX_LR, False), "warmup_steps": (0, _BIG, True), "min_lr_ratio": (0, 1, True),
                "beta1": (0, 1, True), "beta2": (0, 1, True), "eps": (0, 1, False), "weight_decay": (0, 1e3, True),
                "grad_clip": (0, 1e12, True)}
"""optim.* (pixar.config.OptimConfig, in every training config): (low, high, low inclusive); grad_clip 0 = off."""
TRAIN_BOUNDS = {"max_chars": (1, 1 << 24, True), "min_chars": (0, 1 << 24, True), "num_workers": (0, 1024, True), "log_every": (0, _BIG, True),
                "eval_every": (0, _BIG, True), "eval_batches": (0, _BIG, True), "sample_every": (0, _BIG, True),
                "save_every": (0, _BIG, True), "keep_last": (0, _BIG, True), "threads": (0, 4096, True),
                "steps": (0, _BIG, True), "batch_size": (1, 1 << 24, True), "grad_accum": (1, 1 << 24, True)}
"""train.* numbers a user can type: (low, high, low inclusive); grad_clip 0 = off."""
ADV_BOUNDS = {"steps": (0, _BIG, True), "batch_size": (1, 1 << 24, True), "lr_d": (0, MAX_LR, False),
              "cosine_steps": (0, _BIG, True),
              "alpha": (0, 1e6, True), "alpha_warmup": (0, _BIG, True), "save_every": (0, _BIG, True),
              "sample_every": (0, _BIG, True)}
