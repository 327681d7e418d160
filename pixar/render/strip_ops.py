"""Operations on rendered strips: PIXAR's text spacing, viewing, cropping (re-exported by pixar.render.renderer)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image


def space_text(pixels: np.ndarray, eos_position: np.ndarray, position_width: int, gap: int = 3) -> np.ndarray:
    """PIXAR's `_spacing_text(gap)`: shift each prompt's ink right so exactly `gap` white columns sit
    between the last ink column and the EOS block. pixels uint8 [B, H, W] -> a new array."""
    out = pixels.copy()
    for i, e in enumerate(np.asarray(eos_position)):
        eos_col = int(e) * position_width
        region = out[i, :, :eos_col]
        cols = np.flatnonzero((region == 0).any(axis=0))
        if cols.size == 0:
            continue
        shift = (eos_col - gap - 1) - int(cols[-1])
        shift = max(shift, -int(cols[0]))  # never push ink off the left edge
        if shift > 0:
            region[:, shift:] = region[:, :-shift].copy()
            region[:, :shift] = 1
        elif shift < 0:
            region[:, :shift] = region[:, -shift:].copy()
            region[:, shift:] = 1
    return out


def to_image(pixels: np.ndarray, scale: int = 1, rows: int | None = None) -> Image.Image:
    """A viewable PIL image of one strip [H, W] (values in [0, 1]); optionally wrapped onto rows."""
    arr = np.asarray(pixels, dtype=np.float32)
    if rows and rows > 1:
        H, W = arr.shape
        per = int(math.ceil(W / rows))
        arr = np.pad(arr, ((0, 0), (0, per * rows - W)), constant_values=1.0)
        gap = np.full((2, per), 0.75, dtype=np.float32)
        arr = np.concatenate([np.concatenate([arr[:, r * per:(r + 1) * per], gap]) for r in range(rows)])
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def trim_to_mask(pixels: np.ndarray, num_positions: int, position_width: int) -> np.ndarray:
    """Crop a strip [H, W] to its attended positions (for display)."""
    return pixels[:, : int(num_positions) * position_width]

