"""Seeded application of the registered perturbations, one example at a time.

Every example is perturbed with its own ``random.Random(derive_seed(seed, attack, rate, example_id))``: a
SHA-256 of those values (never Python's salted ``hash()``), so a perturbation does not depend on the order of
attacks or rates, on the other examples, on the batch size or on the process.

    derive_seed(seed, attack, rate, index)  -> a stable 64-bit seed
    perturb_input(value, attack, rate, rng)  a text, or each text of an (a, b) pair with the same rng
    PixelAttack(name, rate, seed)            a pixel attack as a transform: (image [H, W], example_id) -> image
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from attacks import get_attack, perturb, perturb_image

Input = str | tuple[str, str]


def derive_seed(seed: int, attack: str, rate: float, index: int) -> int:
    """Stable 64-bit seed from (seed, attack, rate, example index)."""
    key = f"{int(seed)}|{attack}|{float(rate)!r}|{int(index)}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def perturb_input(value: Input, attack: str, rate: float, rng: random.Random) -> Input:
    """Perturb a text or each text of a pair with the same ``rng``."""
    if isinstance(value, str):
        return perturb(value, attack, rate, rng)
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        return tuple(perturb(v, attack, rate, rng) for v in value)
    raise TypeError(f"input must be str or a tuple of str, got {value!r}")


@dataclass(frozen=True)
class PixelAttack:
    """The pixel attack ``name`` at severity ``rate`` as a transform of one example's rendered image.

    ``attack(image, example_id)``: image ``[H, W]`` (1 = white, 0 = ink) -> a new perturbed image, drawn from
    ``random.Random(derive_seed(seed, name, rate, example_id))``: the same example always gets the same pixels."""

    name: str
    rate: float
    seed: int = 0

    def __post_init__(self):
        if get_attack(self.name).family != "pixel":
            raise TypeError(f"attack {self.name!r} works on text; PixelAttack takes a pixel attack")

    def rng(self, example_id: int) -> random.Random:
        return random.Random(derive_seed(self.seed, self.name, self.rate, example_id))

    def __call__(self, image: np.ndarray, example_id: int) -> np.ndarray:
        return perturb_image(image, self.name, self.rate, self.rng(example_id))
