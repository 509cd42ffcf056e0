"""Typed steps in text CoTs: the equation `a op b = c` a step states, and the corruption of
a chain of them with every later step recomputed, so the answer a corrupted CoT implies is
known (the text counterpart of the arithmetic suite's propagated corruption).

A chain is a CoT whose steps each state one equation and whose step k+1 starts from step k's
result (`a_{k+1} = c_k`), as the generated word problems' gold CoTs do in every style and as
a model that learned them writes. Corrupting step j moves its result c_j; each later step's
`a` and `c` are rewritten from the new value, the rest of its text kept.
"""

from __future__ import annotations

import re
from typing import Sequence

_EQ = re.compile(r"(-?\d+(?:\.\d+)?)\s*([+\-*/x×÷])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")
_OPS = {"+": "+", "-": "-", "*": "*", "x": "*", "×": "*", "/": "/", "÷": "/"}


def equation(step: str) -> tuple[float, str, float, float, re.Match] | None:
    """(a, op, b, c, match) of the step's last equation `a op b = c`; None without one."""
    found = list(_EQ.finditer(step))
    if not found:
        return None
    m = found[-1]
    return float(m.group(1)), _OPS[m.group(2)], float(m.group(3)), float(m.group(4)), m


def compute(a: float, op: str, b: float) -> float | None:
    if op == "/":
        return None if b == 0 else a / b
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def number_text(x: float) -> str:
    """A result as a CoT writes it: 7, not 7.0; 2.5 as 2.5."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def chain(steps: Sequence[str]) -> list[tuple] | None:
    """The equations of a chained CoT, or None when a step has none or a step does not start
    from the previous result (then no answer can be recomputed)."""
    eqs = [equation(s) for s in steps]
    if not eqs or any(e is None for e in eqs):
        return None
    for prev, nxt in zip(eqs, eqs[1:]):
        if nxt[0] != prev[3]:
            return None
    return eqs


def corrupt_chain(steps: Sequence[str], j: int, delta: int) -> tuple[list[str], str] | None:
    """(the steps with step j's result moved by `delta` and every later step recomputed from
    it, the answer they imply), or None when the CoT is not a chain or a recomputed step
    divides by zero."""
    eqs = chain(steps)
    if eqs is None or not 0 <= j < len(steps) or delta == 0:
        return None
    out = list(steps)
    a, op, b, c, m = eqs[j]
    value = c + delta
    out[j] = _replace(steps[j], m, a, m.group(2), b, value)
    for k in range(j + 1, len(steps)):
        _, op, b, _, m = eqs[k]
        new = compute(value, op, b)
        if new is None:
            return None
        out[k] = _replace(steps[k], m, value, m.group(2), b, new)
        # other mentions of the old result in this step's text ("... has 7 shells now") follow it
        value = new
    return out, number_text(value)


def _replace(step: str, m: re.Match, a: float, op: str, b: float, c: float) -> str:
    """The step with its equation rewritten, and later mentions of the old result after it
    (the verbose style restates it) replaced by the new one."""
    old_c = m.group(4)
    head = step[:m.start()]
    tail = re.sub(rf"(?<![\d.]){re.escape(old_c)}(?![\d.])", number_text(c), step[m.end():])
    # the verbose style names `a` before the equation too ("had 7 shells ... so 7 - 6 = 1")
    head = re.sub(rf"(?<![\d.]){re.escape(m.group(1))}(?![\d.])", number_text(a), head)
    return f"{head}{number_text(a)} {op} {number_text(b)} = {number_text(c)}{tail}"
