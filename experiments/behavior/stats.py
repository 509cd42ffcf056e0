"""Summaries with their sample sizes: rates with Wilson intervals, means with normal ones.

Every number the behavioural suite reports is a dict `{"value", "n", "ci95"}`, so no rate
is ever shown without the count it was measured on.
"""

from __future__ import annotations

import math
from typing import Iterable

Z95 = 1.959963984540054  # two-sided 95% normal quantile


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
    """The fraction of true flags, with n and a Wilson 95% interval (value None when n = 0)."""
    flags = [bool(f) for f in flags]
    n = len(flags)
    if n == 0:
        return {"value": None, "n": 0, "ci95": None}
    k = sum(flags)
    return {"value": k / n, "n": n, "ci95": list(wilson(k, n))}


def mean(values: Iterable[float]) -> dict:
    """The mean, with n and a normal 95% interval (mean +- 1.96 standard errors)."""
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        return {"value": None, "n": 0, "ci95": None}
    m = sum(v) / n
    if n == 1:
        return {"value": m, "n": 1, "ci95": None}
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return {"value": m, "n": n, "ci95": [m - half, m + half]}
