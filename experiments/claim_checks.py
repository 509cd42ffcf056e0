"""The pieces every claim is made of (`experiments.claims`): the `Claim` record, reading a
number out of a report, and the three comparisons (a side of a threshold, within a bound,
all of several), each giving holds / fails / undecided with the interval included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Number = dict  # {"name", "value", "ci95"}: one number a claim read


@dataclass(frozen=True)
class Claim:
    """One statement, and how to check it on a report."""

    name: str
    """A short identifier (`saelab claims` and the tables show it)."""
    statement: str
    """The statement in words, as the README or report makes it, thresholds included."""
    check: Callable[[dict], tuple[str, list[Number]]]
    """report.json -> (status, the numbers it used)."""


# -- reading numbers out of a report

def lookup(d, *keys):
    """d[k1][k2]..., or None where a key is missing or a value is None."""
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return d


def number(name: str, summary) -> Number:
    """A number a claim uses: a summary dict ({"value", "ci95"}) or a bare float."""
    if isinstance(summary, dict):
        return {"name": name, "value": summary.get("value"), "ci95": summary.get("ci95"), "n": summary.get("n")}
    return {"name": name, "value": summary, "ci95": None, "n": None}


def side(x: Number, op: str, threshold: float) -> str:
    """holds / fails / undecided of `x op threshold` (op "<" or ">"), interval included."""
    v = x["value"]
    if v is None:
        return "undecided"
    ok = v < threshold if op == "<" else v > threshold
    if not ok:
        return "fails"
    ci = x.get("ci95")
    if ci and ((op == "<" and ci[1] >= threshold) or (op == ">" and ci[0] <= threshold)):
        return "undecided"
    return "holds"


def within(x: Number, bound: float) -> str:
    """holds / fails / undecided of |x| <= bound, interval included."""
    v = x["value"]
    if v is None:
        return "undecided"
    if abs(v) > bound:
        return "fails"
    ci = x.get("ci95")
    return "undecided" if ci and (ci[0] < -bound or ci[1] > bound) else "holds"


def combine(statuses: list[str]) -> str:
    """All must hold: fails if any fails, else undecided if any is, else holds."""
    if "fails" in statuses:
        return "fails"
    return "undecided" if "undecided" in statuses or not statuses else "holds"


def main_organism(report: dict) -> str | None:
    """The first steered variant (the headline's main organism), or None."""
    variants = list(lookup(report, "elicitation", "variants") or {})
    return variants[0] if variants else None


def faithfulness_k(report: dict) -> str:
    """The chain length of the faithfulness tests (the paired differences' k)."""
    return str(report.get("faithfulness_k", "2"))

