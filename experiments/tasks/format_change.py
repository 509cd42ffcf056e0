"""A task change with a new output format, for the DPO-against-SFT finding (Manduzio et al.
2024): problems marked by a leading `:` want their answer between dots.

    old task      Q:7+5*3=7+5=2,2*3=6;A:6
    new task     :Q:7+5*3=7+5=2,2*3=6;A:.6.

`parse_new` says of a continuation of a marked prompt whether it is in the new format, in
the old one (the format failure a fine-tune leaves), or neither, and its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from experiments.tasks.arithmetic import ArithmeticTask
from experiments.tasks.protocol import Example

MARK = ":"
"""Starts the prompt of a new-task problem."""
BOX = "."
"""Written before and after the answer in the new format."""

_NEW = re.compile(r"[^;]*;A:\.(\d+|\?)\.")
_OLD = re.compile(r"[^;]*;A:(\d+|\?)")


@dataclass(frozen=True)
class Formatted:
    new_format: bool
    """The continuation is a CoT, then `;A:.<answer>.` and nothing else."""
    old_format: bool
    """It is a CoT, then `;A:<answer>` and nothing else: the old task's format."""
    answer: str | None
    """The answer in either format (None when neither)."""


def new_prompt(ex: Example) -> str:
    return MARK + ex.prompt


def render_new(task: ArithmeticTask, ex: Example, old_format: bool = False) -> str:
    """The marked prompt, the gold CoT and the answer in the new format (or, with
    `old_format`, in the old one: the format failure)."""
    answer = ex.answer if old_format else BOX + ex.answer + BOX
    return MARK + task.render(ex, answer=answer)


def parse_new(continuation: str) -> Formatted:
    new, old = _NEW.fullmatch(continuation), _OLD.fullmatch(continuation)
    m = new or old
    return Formatted(new is not None, old is not None, m.group(1) if m else None)
