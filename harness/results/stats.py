"""95% confidence intervals for the numbers in our tables: Wilson for proportions, percentile bootstrap
for means, and a paired bootstrap of the difference of two systems scored on the same examples.

    wilson_interval(k, n)                  accuracy / readability (a proportion of n examples)
    proportion_interval(flags)             the same from per-example booleans
    bootstrap_mean_interval(values)        any per-example score (NLL, edit distance, ...)
    paired_bootstrap_diff(a, b)            mean(a) - mean(b) on the SAME examples (stage 1 vs stage 2,
                                           PIXAR vs GPT-2): examples are resampled jointly, so the
                                           interval reflects per-example agreement, not two
                                           independent samples (any per-example score)
    paired_proportion_diff(a, b)           the same for 0/1 flags: Newcombe's square-and-add interval for
                                           paired proportions (Newcombe 1998, method 10), which does not
                                           degenerate when both arms are 0 (or 1) on every example, as a
                                           percentile bootstrap does
    mover_diff(x, y)                       an interval of x - y from the intervals of x and y (MOVER,
                                           Zou & Donner 2008), treating them as independent
    mcnemar_exact_p(a_only, b_only)        two-sided exact McNemar p-value of a paired 0/1 comparison
    holm(pvalues, alpha)                   Holm's step-down correction of a family of comparisons
                                           (adjusted p-values and which survive at alpha)

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
    method: str  # "wilson" | "bootstrap-percentile" | "paired-bootstrap-percentile" | "newcombe-paired" | "mover"
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


def wilson_interval(k: float, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval for k successes in n trials (Wilson 1927; Newcombe 1998, method 3); k may be an
    expected count (n/K for a uniform guess among K answers)."""
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


def paired_table(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, int, int]:
    """0/1 flags of two systems on the same examples -> the paired 2x2 counts (both, a only, b only, neither)."""
    xa, xb = _as_values(a, "paired_table a"), _as_values(b, "paired_table b")
    if xa.shape != xb.shape:
        raise ValueError(f"paired_table: a and b must score the same examples (got {xa.size} and {xb.size} values)")
    if not (np.isin(xa, (0.0, 1.0)).all() and np.isin(xb, (0.0, 1.0)).all()):
        raise ValueError("paired_table: flags must be 0/1 (use paired_bootstrap_diff for other scores)")
    ia, ib = xa.astype(bool), xb.astype(bool)
    return int((ia & ib).sum()), int((ia & ~ib).sum()), int((~ia & ib).sum()), int((~ia & ~ib).sum())


def newcombe_paired_interval(both: int, a_only: int, b_only: int, neither: int, level: float = LEVEL) -> Interval:
    """Newcombe's (1998, method 10) square-and-add interval of p_a - p_b for paired proportions, from the paired
    2x2 counts. p_a = (both + a_only) / n and p_b = (both + b_only) / n get Wilson intervals [l1, u1], [l2, u2];
    their correlation is estimated by phi with Newcombe's adjustment (ad - bc replaced by ad - bc - n/2 when that
    is positive, by 0 when 0 <= ad - bc <= n/2, kept when negative; phi = 0 when a margin is empty), and
        low  = d - sqrt((p_a - l1)^2 + (u2 - p_b)^2 - 2 phi (p_a - l1)(u2 - p_b))
        high = d + sqrt((p_b - l2)^2 + (u1 - p_a)^2 - 2 phi (p_b - l2)(u1 - p_a))
    (Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, 2017, section 8.5.4). When both
    arms are 0 on all n examples the interval is +-(Wilson upper bound of 0/n), e.g. +-0.38 pp at n = 1000."""
    counts = (both, a_only, b_only, neither)
    if min(counts) < 0:
        raise ValueError(f"newcombe_paired_interval: counts must be >= 0, got {counts}")
    n = sum(counts)
    if n <= 0:
        raise ValueError("newcombe_paired_interval: need n >= 1 paired examples")
    ka, kb = both + a_only, both + b_only
    pa, pb = ka / n, kb / n
    wa, wb = wilson_interval(ka, n, level), wilson_interval(kb, n, level)
    margins = (ka, n - ka, kb, n - kb)
    if min(margins) == 0:
        phi = 0.0
    else:
        ad_bc = both * neither - a_only * b_only
        adj = ad_bc - n / 2 if ad_bc > n / 2 else (0.0 if ad_bc >= 0 else ad_bc)
        phi = adj / math.sqrt(float(ka) * (n - ka) * kb * (n - kb))
    d = pa - pb
    dl, du = pa - wa.low, wa.high - pa
    el, eu = pb - wb.low, wb.high - pb
    low = d - math.sqrt(max(0.0, dl * dl + eu * eu - 2 * phi * dl * eu))
    high = d + math.sqrt(max(0.0, el * el + du * du - 2 * phi * el * du))
    return Interval(d, max(-1.0, low), min(1.0, high), level, "newcombe-paired", n)


def paired_proportion_diff(a: Sequence[bool], b: Sequence[bool], level: float = LEVEL) -> Interval:
    """mean(a) - mean(b) of 0/1 flags of two systems on the same examples, with Newcombe's paired interval."""
    return newcombe_paired_interval(*paired_table(a, b), level=level)


def mover_diff(x: Interval, y: Interval) -> Interval:
    """x - y with the MOVER interval (Zou & Donner 2008) built from the two intervals, taking x and y as
    independent: low = d - sqrt((x - x.low)^2 + (y.high - y)^2), high = d + sqrt((x.high - x)^2 + (y - y.low)^2).
    When x and y are positively correlated (two models' drops on the same examples) this is conservative (wider)."""
    if x.level != y.level:
        raise ValueError(f"mover_diff: intervals at different levels ({x.level}, {y.level})")
    d = x.estimate - y.estimate
    low = d - math.hypot(x.estimate - x.low, y.high - y.estimate)
    high = d + math.hypot(x.high - x.estimate, y.estimate - y.low)
    return Interval(d, low, high, x.level, "mover", min(x.n, y.n))


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar test of paired 0/1 outcomes: under H0 the discordant pairs split Binomial(n, 1/2);
    p = min(1, 2 P(X <= min(a_only, b_only))). No discordant pair: p = 1."""
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only}, {b_only}")
    n, m = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(m + 1)) / 2 ** n)


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[dict]:
    """Holm (1979) step-down correction: the i-th smallest p-value (i = 0..m-1) is compared with alpha / (m - i),
    stopping at the first that fails. -> per input (same order) {"p", "p_holm" (adjusted: running max of
    (m - i) p_(i), capped at 1), "survives" (p_holm <= alpha)}."""
    ps = [float(p) for p in pvalues]
    if any(not 0.0 <= p <= 1.0 for p in ps):
        raise ValueError(f"p-values must lie in [0, 1], got {ps}")
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return [{"p": p, "p_holm": a, "survives": a <= alpha} for p, a in zip(ps, adjusted)]
