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


# Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017), chapter 8 (Cavo et al. 2012:
# complete response before / after consolidation therapy, paired 2x2 [[59, 6], [16, 80]]): the Newcombe
# square-and-add interval is -0.0621 (95% CI -0.1186 to -0.0046); the same numbers are the expected output of
# the authors' R package (contingencytables, tests/testthat/test-ch8.R).
def test_newcombe_paired_published_values():
    iv = stats.newcombe_paired_interval(59, 6, 16, 80)
    assert iv.estimate == pytest.approx(-0.0621, abs=5e-5) and iv.method == "newcombe-paired" and iv.n == 161
    assert iv.low == pytest.approx(-0.1186, abs=5e-5) and iv.high == pytest.approx(-0.0046, abs=5e-5)
    flags_a = [1] * 59 + [1] * 6 + [0] * 16 + [0] * 80
    flags_b = [1] * 59 + [0] * 6 + [1] * 16 + [0] * 80
    assert stats.paired_proportion_diff(flags_a, flags_b) == iv


def test_newcombe_paired_edges_do_not_degenerate():
    for flags in ([0] * 1000, [1] * 1000):  # both arms 0 (or 1) on every example
        iv = stats.paired_proportion_diff(flags, flags)
        assert iv.estimate == 0.0
        # half-width = the Wilson upper bound of 0/1000 (0.38 pp), not a 0-width point as the bootstrap gives
        assert iv.high == pytest.approx(stats.wilson_interval(0, 1000).high) == pytest.approx(0.003827, abs=1e-6)
        assert iv.low == pytest.approx(-iv.high)
        boot = stats.paired_bootstrap_diff(flags, flags, resamples=200)
        assert boot.low == boot.high == 0.0
    one = stats.paired_proportion_diff([1] + [0] * 99, [0] * 100)  # one discordant pair of 100
    assert one.estimate == 0.01 and one.low < 0 < one.high <= 1
    # swapping the arms mirrors the interval
    a, b = [1, 1, 0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 1, 0, 0]
    x, y = stats.paired_proportion_diff(a, b), stats.paired_proportion_diff(b, a)
    assert x.low == pytest.approx(-y.high) and x.high == pytest.approx(-y.low)
    with pytest.raises(ValueError, match="0/1"):
        stats.paired_proportion_diff([0.5, 1], [1, 1])
    with pytest.raises(ValueError, match="same examples"):
        stats.paired_proportion_diff([1, 0], [1])


def test_newcombe_pieces_cross_checked_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in ((0, 1000), (7, 21), (65, 161), (161, 161)):
        ci = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        iv = stats.wilson_interval(k, n)
        assert iv.low == pytest.approx(ci.low, abs=1e-9) and iv.high == pytest.approx(ci.high, abs=1e-9)
    # with phi = 0 (an empty margin) the interval is exactly the square-and-add of the two scipy Wilson intervals
    a = scipy_stats.binomtest(0, 50).proportion_ci(method="wilson")
    b = scipy_stats.binomtest(5, 50).proportion_ci(method="wilson")
    iv = stats.newcombe_paired_interval(0, 0, 5, 45)
    assert iv.low == pytest.approx(-0.1 - np.hypot(0.0, b.high - 0.1), abs=1e-9)
    assert iv.high == pytest.approx(-0.1 + np.hypot(0.1 - b.low, a.high), abs=1e-9)


def test_mover_difference_of_two_intervals():
    x, y = stats.wilson_interval(16, 50), stats.wilson_interval(9, 40)
    d = stats.mover_diff(x, y)
    assert d.estimate == pytest.approx(16 / 50 - 9 / 40) and d.method == "mover"
    assert d.low == pytest.approx(d.estimate - np.hypot(x.estimate - x.low, y.high - y.estimate))
    assert d.high == pytest.approx(d.estimate + np.hypot(x.high - x.estimate, y.estimate - y.low))
    zero = stats.newcombe_paired_interval(0, 0, 0, 1000)
    both = stats.mover_diff(zero, zero)  # two models that both never change: still a non-degenerate interval
    assert both.estimate == 0.0 and both.low < -0.005 and both.high > 0.005


def test_holm_hand_computed_and_monotone():
    from harness.results.stats import holm

    out = holm([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, then max(0.06, 0.04*1) = 0.06
    assert [round(o["p_holm"], 10) for o in out] == [0.03, 0.06, 0.06, 0.02]
    assert [o["survives"] for o in out] == [True, False, False, True]
    assert holm([]) == []
    assert holm([0.9, 0.8])[0]["p_holm"] == 1.0  # capped at 1
    assert [o["survives"] for o in holm([0.001] * 3, alpha=0.001)] == [False] * 3  # 3 * 0.001 > 0.001
    with pytest.raises(ValueError):
        holm([1.5])


def test_mcnemar_exact_hand_computed_and_scipy():
    from scipy.stats import binomtest

    from harness.results.stats import mcnemar_exact_p

    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact_p(0, 0) == 1.0 and mcnemar_exact_p(5, 5) == 1.0
    for a, b in ((3, 17), (0, 6), (40, 22)):
        assert mcnemar_exact_p(a, b) == pytest.approx(binomtest(a, a + b, 0.5).pvalue)
