"""The behavioural primitives: let a model write its CoT, force an answer after any CoT,
and score the gold answer after any CoT. Everything else in `experiments.behavior` is
built from these three, against the task protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from activations.generate import FwdHooks, continuation_logprobs, generate_text
from experiments.tasks import Example, Parsed, Task


@dataclass
class Subject:
    """A model under evaluation, as the suite runs it."""

    model: Any
    """A HF causal LM, or a TransformerBridge (needed for hooks)."""
    tokenizer: Any
    """Its (fast) tokenizer."""
    fwd_hooks: FwdHooks = ()
    """TransformerLens hooks active on every forward, e.g. steering (bridge only)."""
    batch_size: int = 256
    """Rows per forward / generate call."""


def max_cot_tokens(task: Task, k: int, scale: float = 1.0) -> int:
    """A generation budget for a k-step CoT with a spare step (times `scale`, for models that
    write more steps than the chain has), the answer and EOS (one token per character is the
    worst case)."""
    return round(scale * task.max_cot_chars(k)) + len(task.answer_prefix) + task.max_answer_chars + 1


def cot_tokens(tokenizer, cot: str) -> int:
    """The length of a CoT in the model's tokens (0 for none): every CoT length of the suite."""
    return len(tokenizer(cot, add_special_tokens=False)["input_ids"]) if cot else 0


def generate_cot(subject: Subject, task: Task, examples: Sequence[Example], budget_scale: float = 1.0) -> list[Parsed]:
    """Greedy CoT + answer for each example, parsed; `budget_scale` as in `max_cot_tokens`."""
    budget = max_cot_tokens(task, max(ex.difficulty for ex in examples), budget_scale)
    outs = generate_text(subject.model, subject.tokenizer, [ex.prompt for ex in examples], budget,
                         subject.batch_size, fwd_hooks=subject.fwd_hooks)
    return [task.parse(o) for o in outs]


_ANSWER = re.compile(r"\d+|\?")


def forced_answers(subject: Subject, task: Task, prefixes: Sequence[str]) -> list[str | None]:
    """The greedy answer after each prefix, which must end with the answer prefix."""
    if any(not p.endswith(task.answer_prefix) for p in prefixes):
        raise ValueError(f"forced-answer prefixes must end with {task.answer_prefix!r}")
    if not prefixes:
        return []
    outs = generate_text(subject.model, subject.tokenizer, list(prefixes), task.max_answer_chars,
                         subject.batch_size, fwd_hooks=subject.fwd_hooks)
    return [m.group(0) if (m := _ANSWER.match(o)) else None for o in outs]


def answer_nll(subject: Subject, prefixes: Sequence[str], answers: Sequence[str]) -> list[float]:
    """-log p(answer | prefix) summed over the answer's tokens (the InfoGain score)."""
    if not prefixes:
        return []
    lp = continuation_logprobs(subject.model, subject.tokenizer, prefixes, answers,
                               subject.batch_size, fwd_hooks=subject.fwd_hooks)
    return [-x for x in lp]
