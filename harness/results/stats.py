"""95% confidence intervals for the numbers in our tables: Wilson for proportions, percentile bootstrap
for means, and a paired bootstrap of the difference of two systems scored on the same examples.

    wilson_interval(k, n)                  accuracy / readability (a proportion of n examples)
    proportion_interval(flags)             the same from per-example booleans
    bootstrap_mean_interval(values)        any per-example score (NLL, edit distance, ...)
    paired_bootstrap_diff(a, b)            mean(a) - mean(b) on the SAME examples (stage 1 vs stage 2,
                                           PIXAR vs GPT-2): examples are resampled jointly, so the
                                           interval reflects per-example agreement, not two
                                           independent samples

Every bootstrap takes a seed (a fresh numpy Generator each call; no global RNG) and a number of
resamples; the same inputs and seed give the same interval. Percentile intervals use numpy's default
("linear") quantile method. `Interval.to_dict()` is what result files store.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
_CHUNK_CELLS = 2_000_000  # resample indices drawn per chunk: bounds memory at ~16 MB whatever n is


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    level: float
    method: str  # "wilson" | "bootstrap-percentile" | "paired-bootstrap-percentile"
    n: int
    resamples: int | None = None
    seed: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def format(self, digits: int = 3) -> str:
        """e.g. '0.185 [0.134, 0.250]'."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(k: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval for k successes in n trials (Wilson 1927; Newcombe 1998, method 3)."""
    if n <= 0:
        raise ValueError(f"a proportion needs n >= 1 examples, got n={n}")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {k}")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at k = 0 or k = n one bound is exactly 0 or 1; clip float rounding there
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Interval(p, low, high, level, "wilson", n)


def proportion_interval(flags: Sequence[bool], level: float = LEVEL) -> Interval:
    """Wilson interval of the fraction of True in per-example flags."""
    flags = list(flags)
    return wilson_interval(sum(bool(f) for f in flags), len(flags), level)


def _as_values(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: need a non-empty 1-D sequence of per-example values, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: values must be finite (found NaN or inf)")
    return arr


def _resampled_means(arr: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """[resamples] means of arr[idx] for idx drawn with replacement, in chunks (memory-bounded)."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = arr.shape[0]
    rows = max(1, _CHUNK_CELLS // n)
    out = np.empty(resamples)
    for start in range(0, resamples, rows):
        m = min(rows, resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        out[start: start + m] = arr[idx].mean(axis=1)
    return out


def _percentile(stats: np.ndarray, level: float) -> tuple[float, float]:
    _z(level)  # validates level
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_mean_interval(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                            level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of the mean of per-example values."""
    arr = _as_values(values, "bootstrap_mean_interval")
    lo, hi = _percentile(_resampled_means(arr, resamples, seed), level)
    return Interval(float(arr.mean()), lo, hi, level, "bootstrap-percentile", int(arr.size), resamples, seed)


def paired_bootstrap_diff(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                          level: float = LEVEL) -> Interval:
    """Interval of mean(a) - mean(b) for two systems scored on the same examples (a[i], b[i] belong to
    example i): the per-example differences are resampled, i.e. the examples jointly. An interval that
    excludes 0 is a difference at the 1 - level significance level (two-sided)."""
    xa, xb = _as_values(a, "paired_bootstrap_diff a"), _as_values(b, "paired_bootstrap_diff b")
    if xa.shape != xb.shape:
        raise ValueError(f"paired_bootstrap_diff: a and b must score the same examples "
                         f"(got {xa.size} and {xb.size} values)")
    d = xa - xb
    lo, hi = _percentile(_resampled_means(d, resamples, seed), level)
    return Interval(float(d.mean()), lo, hi, level, "paired-bootstrap-percentile", int(d.size), resamples, seed)
