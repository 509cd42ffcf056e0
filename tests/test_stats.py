"""The statistics behind every interval: the bootstrap over problems on hand-built
clustered data, paired differences, gap recovered with its "no gap" rule, null
distributions and Holm, each against a hand-computed value or a reference formula."""

from __future__ import annotations

import numpy as np
import pytest

from features.stats import (B, difference, gap_recovered, holm, mean, null_summary, pooled, rate, resample_weights,
                            wilson)


def test_a_bootstrap_of_identical_items_gives_the_problem_level_interval():
    """20 problems, 10 identical items each (all right or all wrong), 12 right problems: the
    items say 120/200, but there are only 20 independent units. The interval must be that of
    a rate of 20 problems, not of 200 items."""
    problems = np.repeat(np.arange(20), 10)
    values = np.repeat([1] * 12 + [0] * 8, 10)
    p = pooled(values, problems)
    assert p["value"] == pytest.approx(0.6) and p["n"] == 200 and p["n_problems"] == 20
    item_level = wilson(120, 200)
    lo, hi = p["ci95"]
    # the problem-level rate's spread: sd sqrt(.6 * .4 / 20) = 0.1095, so +-0.21 at 95%
    assert hi - lo == pytest.approx(2 * 1.96 * (0.6 * 0.4 / 20) ** 0.5, rel=0.15)
    assert hi - lo > 2.5 * (item_level[1] - item_level[0])
    # the same 20 rates with one item per problem: identical by construction (same resamples)
    one = pooled(values[::10], np.arange(20))
    assert one["ci95"] == list(wilson(12, 20)) and one["ci"] == "wilson"


def test_pooled_is_never_narrower_than_independent_items_and_handles_all_alike():
    problems = np.repeat(np.arange(50), 4)
    rng = np.random.default_rng(0)
    values = rng.random(200) < 0.3
    p = pooled(values, problems)
    w = wilson(int(values.sum()), 200)
    assert p["ci95"][0] <= w[0] and p["ci95"][1] >= w[1]
    # every item right: no spread to resample; the Wilson interval over the 50 problems
    allright = pooled(np.ones(200), problems)
    assert allright["ci95"] == [wilson(50, 50)[0], 1.0]
    m = pooled(rng.normal(size=200), problems, kind="mean")
    assert m["ci"].startswith("bootstrap") and m["ci95"][0] < m["value"] < m["ci95"][1]


def test_resamples_are_seeded_multinomial_draws():
    w = resample_weights(7)
    assert w.shape == (B, 7) and (w.sum(1) == 7).all() and w.min() >= 0
    assert np.array_equal(w, resample_weights(7)) and not np.array_equal(w, resample_weights(7, seed=1))
    assert abs(w.mean() - 1.0) < 0.01  # each problem drawn once per resample on average


def test_paired_difference_cancels_what_two_models_share():
    """Two models that differ on 2 of 40 problems only: the unpaired intervals of each rate
    overlap widely, the paired difference is tight around 0.05 and never below 0."""
    problems = np.arange(40)
    a = np.array([1] * 20 + [0] * 20)
    b = a.copy()
    b[:2] = 0
    pa, pb = pooled(a, problems), pooled(b, problems)
    d = difference(pa, pb)
    assert d["value"] == pytest.approx(0.05) and d["ci95"][0] >= 0.0 and d["ci95"][1] <= 0.15
    assert pb["ci95"][1] > pa["ci95"][0]  # unpaired: the intervals overlap
    rel = difference(pa, pb, relative=True)
    assert rel["value"] == pytest.approx(0.05 / 0.45)
    with pytest.raises(ValueError, match="pooled summaries"):
        difference({"value": 1.0}, pb)
    with pytest.raises(ValueError, match="same problems"):
        difference(pa, pooled(b[:30], np.arange(30)))


def test_gap_recovered_by_hand_and_no_gap_from_its_own_interval():
    problems = np.arange(100)
    base = pooled(np.ones(100), problems)
    variant = pooled(np.r_[np.ones(20), np.zeros(80)], problems)
    steered = pooled(np.r_[np.ones(60), np.zeros(40)], problems)
    g = gap_recovered(steered, base, variant)
    assert g["value"] == pytest.approx(0.5) and g["gap"] == pytest.approx(0.8) and not g["no_gap"]
    assert g["ci95"][0] < 0.5 < g["ci95"][1] and g["gap_ci95"][0] > 0.6
    # a gap of 2 problems in 100 is within noise: its own interval touches 0, no ratio
    small = pooled(np.r_[np.zeros(2), np.ones(98)], problems)
    g = gap_recovered(steered, base, small)
    assert g["value"] is None and g["no_gap"] and g["gap_ci95"][0] <= 0
    # plain summaries (no per-problem data): base and variant fixed, the steered interval carried
    g = gap_recovered({"value": 0.6, "ci95": [0.5, 0.7]}, {"value": 1.0}, {"value": 0.2})
    assert g["value"] == pytest.approx(0.5) and g["ci95"] == pytest.approx([0.375, 0.625])


def test_null_summary_is_reproducible_and_its_percentile_counts_ties_half():
    draws = [0.0, 0.1, 0.2, 0.3, None]
    n = null_summary(0.2, draws)
    assert n["n"] == 4 and n["median"] == pytest.approx(0.15)
    assert n["percentile"] == pytest.approx((2 + 0.5) / 4) and n["p_value"] == pytest.approx((1 + 2) / 5)
    assert null_summary(None, draws)["percentile"] is None and null_summary(0.1, [])["n"] == 0


def test_holm_by_hand():
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    # sorted 0.01, 0.03, 0.04: x3, x2, x1 -> 0.03, 0.06, 0.06 (monotone)
    assert adj == {"a": pytest.approx(0.03), "c": pytest.approx(0.06), "b": pytest.approx(0.06), "d": None}


def test_rate_and_mean_small_n_use_wilson_and_t():
    assert rate([True, False])["ci"] == "wilson"
    m = mean([1.0, 3.0])  # sd sqrt(2), t(0.975, 1) = 12.706
    assert m["ci95"] == pytest.approx([2 - 12.7062, 2 + 12.7062], rel=1e-4)
