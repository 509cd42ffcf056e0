"""The new output format of a task change (`experiments.tasks.format_change`), measured on
held-out marked problems: how often a model writes the new format, the old one (the format
failure), and the right answer in the new format.

    new_format      rate of continuations in the new format (CoT, `;A:.<answer>.`)
    old_format      rate in the old format (`;A:<answer>`): the failure
    accuracy        in the new format and right
    answer_right    right in either format (the task learned, whatever the format)

Every model sees the same problems (pooled per problem: models compare paired).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from activations.generate import generate_text
from experiments.behavior.core import Subject, max_cot_tokens
from experiments.tasks import Example, Task
from experiments.tasks.format_change import new_prompt, parse_new
from features.stats import pooled


@dataclass
class FormatConfig:
    """The new-format measurement (behavior.format); off while `models` is empty."""

    models: list[str] = field(default_factory=list)
    """Models to measure (e.g. [base, sft-format, dpo-format])."""
    k: int = 2
    """Chain length of the held-out problems."""
    n: int = 200
    """Held-out problems (eval split)."""

    def __post_init__(self):
        if self.k < 1 or self.n < 1:
            raise ValueError(f"behavior.format needs k >= 1 and n >= 1, got {self.k}, {self.n}")


def format_rates(subject: Subject, task: Task, examples: Sequence[Example]) -> dict:
    budget = max_cot_tokens(task, max(ex.difficulty for ex in examples)) + 2  # the two dots
    outs = generate_text(subject.model, subject.tokenizer, [new_prompt(ex) for ex in examples], budget,
                         subject.batch_size, fwd_hooks=subject.fwd_hooks)
    got = [parse_new(o) for o in outs]
    idx = range(len(examples))
    rate = lambda flags: pooled(list(flags), idx, kind="rate")  # noqa: E731
    return {"new_format": rate(g.new_format for g in got), "old_format": rate(g.old_format for g in got),
            "accuracy": rate(g.new_format and g.answer == ex.answer for g, ex in zip(got, examples)),
            "answer_right": rate(g.answer == ex.answer for g, ex in zip(got, examples)),
            "n": len(examples), "example": outs[0]}
