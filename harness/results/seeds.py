"""Results over training seeds: the mean, the per-seed values, their spread, and an interval that covers both
sources of variation (which seed was trained, which examples were drawn).

    seed_example_bootstrap(scores)   scores[s][i] = the score of training seed s on example i (the same examples for
                                     every seed). Each resample draws seeds with replacement AND examples with
                                     replacement (one draw of examples shared by the drawn seeds: they were scored on
                                     the same examples), and takes the mean; the percentile interval of those means.
                                     With one seed it reduces to the example bootstrap, and says so (seeds = 1).
    seed_summary(scores)             {mean, per_seed, sd (over seeds, ddof 1), seeds, n, interval}
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.results.stats import LEVEL, RESAMPLES, Interval, _percentile

METHOD = "seed-example-bootstrap-percentile"


def _matrix(scores: Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray([[float(v) for v in row] for row in scores], dtype=float)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError("seed_example_bootstrap: scores must be seeds x examples, at least 1 x 1")
    if not np.isfinite(arr).all():
        raise ValueError("seed_example_bootstrap: scores must be finite")
    return arr


def seed_example_bootstrap(scores: Sequence[Sequence[float]], resamples: int = RESAMPLES, seed: int = 0,
                           level: float = LEVEL) -> Interval:
    """Two-way percentile bootstrap of the mean over seeds and examples (see the module docstring). `n` of the
    result is the number of examples; the method name carries the number of seeds."""
    arr = _matrix(scores)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    k, n = arr.shape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for r in range(resamples):
        s = rng.integers(0, k, size=k)
        e = rng.integers(0, n, size=n)
        means[r] = arr[np.ix_(s, e)].mean()
    lo, hi = _percentile(means, level)
    return Interval(float(arr.mean()), lo, hi, level, f"{METHOD} ({k} seed{'s' * (k != 1)})", n, resamples, seed)


def seed_summary(scores: Sequence[Sequence[float]], resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Mean, per-seed means, their standard deviation (None with one seed) and the seed x example interval."""
    arr = _matrix(scores)
    per = arr.mean(axis=1)
    return {"mean": float(arr.mean()), "per_seed": [float(x) for x in per],
            "sd": float(per.std(ddof=1)) if len(per) > 1 else None, "seeds": int(arr.shape[0]),
            "n": int(arr.shape[1]), "interval": seed_example_bootstrap(arr, resamples, seed).to_dict()}
