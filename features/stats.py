"""Every reported number with its sample size and a 95% interval a reviewer accepts.

A summary is a dict `{"value", "n", "ci95", "ci"}` (`ci` names the method); a pooled one also
keeps `by_problem` (per-problem sums and item counts), so that two summaries measured on the
same problems can be compared on one resample of them.

    wilson(k, n), rate(flags)       a rate of independent items: Wilson score interval
    mean(values)                    a mean of independent values: t interval (n - 1 df)
    pooled(values, problems)        a rate or mean over items grouped by problem (cut points,
                                    corrupted steps, mistakes of one problem are not
                                    independent): percentile bootstrap that resamples whole
                                    problems, never narrower than the independent interval
    difference(a, b)                a - b of two pooled summaries on the same problems, paired
    gap_recovered(steered, base, variant)
                                    (steered - variant) / (base - variant), all three on one
                                    resample of the problems; "no gap" where the gap's own
                                    interval touches 0
    null_summary(observed, draws)   a control drawn many times: median, 95% band, percentile
    holm(p_values)                  Holm's step-down adjustment for a family of comparisons

The bootstrap draws `B` resamples of the problems from a generator seeded with `SEED` and the
number of problems: every summary of one problem set sees the same resamples, so paired
statistics need no extra bookkeeping, and a rerun gives the same intervals.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Literal, Sequence

import numpy as np
from scipy import stats as _scipy_stats

Z95 = 1.959963984540054  # two-sided 95% normal quantile
B = 2000
"""Bootstrap resamples (the issue asks for at least 1,000)."""
SEED = 0
"""Seed of the resampling generator (combined with the number of problems)."""


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (better than the normal one near 0 and 1)."""
    if n <= 0:
        raise ValueError("a rate needs n >= 1")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 and n successes the bound is exactly 0 (1); say so rather than print 7e-18.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def rate(flags: Iterable[bool]) -> dict:
    """The fraction of true flags of independent items, with n and a Wilson 95% interval
    (value None when n = 0)."""
    flags = [bool(f) for f in flags]
    n = len(flags)
    if n == 0:
        return {"value": None, "n": 0, "ci95": None}
    k = sum(flags)
    return {"value": k / n, "n": n, "ci95": list(wilson(k, n)), "ci": "wilson"}


def t_half_width(sd: float, n: int) -> float:
    """Half the 95% t interval of a mean of n values of standard deviation sd."""
    return float(_scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def mean(values: Iterable[float]) -> dict:
    """The mean of independent values, with n and a 95% t interval (n - 1 degrees of freedom:
    at n = 3 it is 2.2x wider than the normal one)."""
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        return {"value": None, "n": 0, "ci95": None}
    m = sum(v) / n
    if n == 1:
        return {"value": m, "n": 1, "ci95": None, "ci": "t"}
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    half = t_half_width(sd, n)
    return {"value": m, "n": n, "ci95": [m - half, m + half], "ci": "t"}


@lru_cache(maxsize=64)
def resample_weights(n_problems: int, seed: int = SEED, b: int = B) -> np.ndarray:
    """(b, n_problems) float: how often each problem is drawn in each bootstrap resample
    (each row a multinomial draw of n_problems problems with replacement). Cached: every
    summary over the same number of problems uses the same resamples, hence paired."""
    rng = np.random.default_rng([seed, n_problems])
    idx = rng.integers(0, n_problems, size=(b, n_problems))
    flat = (idx + np.arange(b)[:, None] * n_problems).ravel()
    w = np.bincount(flat, minlength=b * n_problems).reshape(b, n_problems).astype(np.float64)
    w.flags.writeable = False
    return w


def by_problem(values: Sequence[float], problems: Sequence[int], n_problems: int | None = None) -> dict:
    """{"sum": [...], "count": [...]} per problem 0..n_problems-1 of item values and their
    problem indices (a problem without items has count 0)."""
    problems = np.asarray(problems, dtype=np.int64)
    size = int(n_problems if n_problems is not None else (problems.max() + 1 if len(problems) else 0))
    if len(problems) and (problems.min() < 0 or problems.max() >= size):
        raise ValueError(f"problem indices must lie in 0..{size - 1}")
    s = np.bincount(problems, weights=np.asarray(values, dtype=np.float64), minlength=size)
    c = np.bincount(problems, minlength=size)
    return {"sum": [float(x) for x in s], "count": [int(x) for x in c]}


def _arrays(summary: dict) -> tuple[np.ndarray, np.ndarray]:
    bp = summary.get("by_problem")
    if bp is None:
        raise ValueError("a paired statistic needs pooled summaries (made by `pooled`, with by_problem)")
    return np.asarray(bp["sum"], dtype=np.float64), np.asarray(bp["count"], dtype=np.float64)


def _replicates(s: np.ndarray, c: np.ndarray, seed: int = SEED) -> np.ndarray:
    """(B,) the pooled value sum/count on each resample of the problems (nan where a resample
    drew no item)."""
    w = resample_weights(len(s), seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ s) / (w @ c)


def _percentile(reps: np.ndarray) -> list[float] | None:
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return None
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return [float(lo), float(hi)]


def pooled(values: Sequence[float], problems: Sequence[int], n_problems: int | None = None,
           kind: Literal["rate", "mean"] = "rate", seed: int = SEED) -> dict:
    """A rate (0/1 values) or mean pooled over items, several per problem: value = mean over
    items; ci95 = the percentile interval of `B` resamples of whole problems, widened where
    needed to contain the interval of independent items (Wilson for a rate, t for a mean):
    items of one problem are not less alike than independent ones, and a bootstrap of a rate
    near 0 or 1 collapses to a point (all items alike: the Wilson interval over problems).
    `problems[i]` is item i's problem index in 0..n_problems-1; `by_problem` is kept for
    paired statistics. With one item per problem, a rate is `rate` (Wilson) and a mean `mean`
    (t), and only `by_problem` is added."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) != len(problems):
        raise ValueError(f"{len(v)} values for {len(problems)} problem indices")
    bp = by_problem(v, problems, n_problems)
    n = len(v)
    if n == 0:
        return {"value": None, "n": 0, "ci95": None, "n_problems": 0, "by_problem": bp}
    counts = np.asarray(bp["count"])
    used = int((counts > 0).sum())
    independent = rate(v > 0.5) if kind == "rate" else mean(v)
    out = {"value": float(v.mean()), "n": n, "n_problems": used}
    if counts.max() <= 1 or independent["ci95"] is None:
        return out | {"ci95": independent["ci95"], "ci": independent["ci"], "by_problem": bp}
    s, c = np.asarray(bp["sum"]), counts.astype(np.float64)
    reps = _replicates(s, c, seed)
    ci = _percentile(reps)
    if kind == "rate" and (v.min() == v.max()):  # every item alike: no spread to resample
        k = int(round(v.sum() / n * used))
        ci = list(wilson(k, used))
    lo = min(ci[0], independent["ci95"][0])
    hi = max(ci[1], independent["ci95"][1])
    return out | {"ci95": [lo, hi], "ci": f"bootstrap over problems ({B})", "by_problem": bp}


def difference(a: dict, b: dict, relative: bool = False, seed: int = SEED) -> dict:
    """a - b (or (a - b) / |b| with `relative`) of two pooled summaries of the same problems,
    with the percentile interval of one resample of the problems for both (paired)."""
    sa, ca = _arrays(a)
    sb, cb = _arrays(b)
    if len(sa) != len(sb):
        raise ValueError(f"paired summaries need the same problems: {len(sa)} vs {len(sb)}")
    if a["value"] is None or b["value"] is None:
        return {"value": None, "ci95": None}
    ra, rb = _replicates(sa, ca, seed), _replicates(sb, cb, seed)
    if relative:
        if b["value"] == 0:
            return {"value": None, "ci95": None}
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = (ra - rb) / np.abs(rb)
        value = (a["value"] - b["value"]) / abs(b["value"])
    else:
        reps, value = ra - rb, a["value"] - b["value"]
    return {"value": float(value), "ci95": _percentile(reps), "ci": f"paired bootstrap over problems ({B})"}


def gap_recovered(steered: dict, base: dict, variant: dict, seed: int = SEED) -> dict:
    """(m_steered - m_variant) / (m_base - m_variant): the share of the base -> variant gap
    that steering the variant closes (Venhoff et al. 2025's signed version). All three
    are measured on the same items: with pooled summaries the interval resamples the problems
    once for the three. Where the gap's own 95% interval contains 0 the ratio is meaningless:
    value None with `no_gap` true. Without per-problem data (plain summaries) base and
    variant are taken as fixed and the steered interval is carried through, and a gap under
    0.02 counts as none."""
    gap = None if None in (base["value"], variant["value"]) else base["value"] - variant["value"]
    out = {"gap": gap, "steered": steered["value"]}
    if gap is None or steered["value"] is None:
        return out | {"value": None, "ci95": None, "no_gap": gap is None}
    if all("by_problem" in m for m in (steered, base, variant)):
        s, b, v = (_replicates(*_arrays(m), seed) for m in (steered, base, variant))
        gap_ci = _percentile(b - v)
        out["gap_ci95"] = gap_ci
        if gap_ci is None or gap == 0 or gap_ci[0] <= 0 <= gap_ci[1]:
            return out | {"value": None, "ci95": None, "no_gap": True}
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = (s - v) / (b - v)
        return out | {"value": (steered["value"] - variant["value"]) / gap, "ci95": _percentile(reps),
                      "no_gap": False, "ci": f"paired bootstrap over problems ({B})"}
    if abs(gap) < 0.02:
        return out | {"value": None, "ci95": None, "no_gap": True}
    lo, hi = steered["ci95"] or (steered["value"], steered["value"])
    return out | {"value": (steered["value"] - variant["value"]) / gap, "no_gap": False,
                  "ci95": sorted([(lo - variant["value"]) / gap, (hi - variant["value"]) / gap])}


def null_summary(observed: float | None, draws: Sequence[float | None]) -> dict:
    """A control drawn many times, as a null distribution for `observed`: its median, its
    central 95% band, the fraction of draws below `observed` (ties count half) and the
    one-sided p-value (1 + #{draw >= observed}) / (1 + n) of "observed beats the null"."""
    d = np.asarray([x for x in draws if x is not None], dtype=np.float64)
    if len(d) == 0:
        return {"n": 0, "median": None, "band95": None, "percentile": None, "p_value": None}
    out = {"n": int(len(d)), "median": float(np.median(d)),
           "band95": [float(x) for x in np.percentile(d, [2.5, 97.5])]}
    if observed is None:
        return out | {"percentile": None, "p_value": None}
    below, ties = float((d < observed).sum()), float((d == observed).sum())
    return out | {"percentile": (below + ties / 2) / len(d),
                  "p_value": float((1 + (d >= observed).sum()) / (1 + len(d)))}


def holm(p_values: dict[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjusted p-values of a family (None stays None and does not count):
    the i-th smallest of m is multiplied by m - i, made monotone, capped at 1."""
    named = sorted(((p, k) for k, p in p_values.items() if p is not None))
    m, out, running = len(named), {k: None for k in p_values}, 0.0
    for i, (p, k) in enumerate(named):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out
