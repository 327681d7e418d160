"""harness.results.stats: Wilson intervals against published values, bootstrap intervals against exact cases."""
import numpy as np
import pytest

from harness.results import stats


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17:857, Table I,
# method 3 (Wilson score, no continuity correction); plus textbook values for 0/10 and 5/10.
@pytest.mark.parametrize("k, n, low, high", [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (81, 100, 0.7222, 0.8749),
])
def test_wilson_published_values(k, n, low, high):
    iv = stats.wilson_interval(k, n)
    assert iv.estimate == k / n and iv.method == "wilson" and iv.n == n
    assert iv.low == pytest.approx(low, abs=6e-5) and iv.high == pytest.approx(high, abs=6e-5)


def test_wilson_edges_and_symmetry():
    assert stats.wilson_interval(10, 10).high == 1.0 and stats.wilson_interval(0, 10).low == 0.0
    a, b = stats.wilson_interval(3, 17), stats.wilson_interval(14, 17)
    assert a.low == pytest.approx(1 - b.high) and a.high == pytest.approx(1 - b.low)
    assert stats.wilson_interval(5, 10, level=0.99).low < stats.wilson_interval(5, 10).low
    assert stats.proportion_interval([True, False, True, True]) == stats.wilson_interval(3, 4)
    with pytest.raises(ValueError, match="n >= 1"):
        stats.wilson_interval(0, 0)
    with pytest.raises(ValueError, match=r"\[0, n=3\]"):
        stats.wilson_interval(4, 3)
    with pytest.raises(ValueError, match="level"):
        stats.wilson_interval(1, 3, level=1.5)


def test_bootstrap_of_a_constant_is_a_point():
    iv = stats.bootstrap_mean_interval([0.25] * 40, resamples=200, seed=3)
    assert (iv.estimate, iv.low, iv.high) == (0.25, 0.25, 0.25)
    assert iv.to_dict() == {"estimate": 0.25, "low": 0.25, "high": 0.25, "level": 0.95,
                            "method": "bootstrap-percentile", "n": 40, "resamples": 200, "seed": 3}


def test_bootstrap_two_points_hand_checked():
    # resampling [0, 1] twice: the mean is 0 (p 1/4), 0.5 (p 1/2) or 1 (p 1/4); the 2.5% and 97.5%
    # percentiles of many resamples are therefore exactly 0 and 1, the median 0.5
    iv = stats.bootstrap_mean_interval([0.0, 1.0], resamples=4000, seed=0)
    assert (iv.low, iv.high, iv.estimate) == (0.0, 1.0, 0.5)
    assert stats.bootstrap_mean_interval([0.0, 1.0], resamples=4000, seed=0, level=0.4) == \
        stats.Interval(0.5, 0.5, 0.5, 0.4, "bootstrap-percentile", 2, 4000, 0)


def test_bootstrap_matches_normal_theory_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=400)
    iv = stats.bootstrap_mean_interval(x, resamples=3000, seed=5)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert iv.low == pytest.approx(x.mean() - half, abs=0.02) and iv.high == pytest.approx(x.mean() + half, abs=0.02)
    assert iv == stats.bootstrap_mean_interval(x, resamples=3000, seed=5)
    assert iv != stats.bootstrap_mean_interval(x, resamples=3000, seed=6)


def test_bootstrap_chunking_does_not_change_the_draws(monkeypatch):
    x = np.arange(50, dtype=float)
    ref = stats.bootstrap_mean_interval(x, resamples=301, seed=2)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk, same generator stream
    assert stats.bootstrap_mean_interval(x, resamples=301, seed=2) == ref


def test_paired_difference():
    a = np.array([1, 0, 1, 1, 0, 1, 0, 1], dtype=float)
    same = stats.paired_bootstrap_diff(a, a, resamples=500, seed=0)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)  # identical systems: a 0-width interval at 0
    shifted = stats.paired_bootstrap_diff(a, a - 0.5, resamples=500, seed=0)
    assert (shifted.low, shifted.high) == (0.5, 0.5)  # a constant per-example gain is known exactly
    # b is a right 6 times out of 8 where a is; pairing makes the interval much narrower than two
    # independent Wilson intervals would suggest
    b = np.array([1, 0, 1, 1, 0, 0, 0, 0], dtype=float)
    d = stats.paired_bootstrap_diff(a, b, resamples=4000, seed=0)
    assert d.estimate == pytest.approx(0.25) and d.method == "paired-bootstrap-percentile"
    assert 0.0 <= d.low < d.estimate < d.high <= 0.5  # a - b is 0 or 1 per example: never negative
    with pytest.raises(ValueError, match="same examples"):
        stats.paired_bootstrap_diff([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="finite"):
        stats.bootstrap_mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        stats.bootstrap_mean_interval([])
    with pytest.raises(ValueError, match="resamples"):
        stats.bootstrap_mean_interval([1.0], resamples=0)


def test_interval_format_and_contains():
    iv = stats.wilson_interval(37, 200)
    assert iv.format() == "0.185 [0.137, 0.245]" and iv.contains(0.2) and not iv.contains(0.3)
