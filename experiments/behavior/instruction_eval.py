"""Instruction following (`experiments.tasks.instructions`), measured on held-out problems
for every instruction: does the model compute what the instruction says?

    follows[op]     with instruction op before the prompt, the answer is op's (every
                    step applying op); op is one the fine-tune saw or a held-out one. Only
                    the problems where op's answer differs from the question's own chain's
                    count (elsewhere ignoring the instruction would score too), `n[op]` of them
    own_chain[op]   on those problems, the answer is the question's own chain's instead (the
                    instruction ignored)
    no_instruction  the question alone: the answer of its own chain (the base's task), all problems

A rate of answers mod 10 that match by luck stays: the base, which never saw an
instruction, is the floor to read `follows` against.

Every model sees the same problems (pooled per problem: models compare paired).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from activations.generate import generate_text
from experiments.behavior.core import Subject, max_cot_tokens
from experiments.tasks import Example, Task
from experiments.tasks.instructions import instructed
from features.stats import pooled


@dataclass
class InstructionConfig:
    """The instruction-following measurement (behavior.instruction); off while `models` is empty."""

    models: list[str] = field(default_factory=list)
    """Models to measure (e.g. [base, sft-instruction, sft-instruction-empty, ...])."""
    instructions: str = "+*-"
    """The instructions to test: those the fine-tunes saw and the held-out ones."""
    held_out: str = "-"
    """Which of them no fine-tune saw (the report and the claim name them)."""
    k: int = 2
    """Chain length of the held-out problems."""
    n: int = 200
    """Held-out problems (eval split)."""

    def __post_init__(self):
        if not self.held_out or not set(self.held_out) <= set(self.instructions) or not set(self.instructions) <= set("+-*"):
            raise ValueError(f"behavior.instruction: instructions must be operators of '+-*' and held_out one or "
                             f"more of them, got {self.instructions!r} and {self.held_out!r}")
        if self.k < 1 or self.n < 1:
            raise ValueError(f"behavior.instruction needs k >= 1 and n >= 1, got {self.k}, {self.n}")


def instruction_rates(subject: Subject, task: Task, examples: Sequence[Example], cfg: InstructionConfig) -> dict:
    budget = max_cot_tokens(task, max(ex.difficulty for ex in examples))
    idx = range(len(examples))
    rate = lambda flags: pooled(list(flags), idx, kind="rate")  # noqa: E731

    def answers(prefix: str) -> list[str | None]:
        outs = generate_text(subject.model, subject.tokenizer, [prefix + ex.prompt for ex in examples], budget,
                             subject.batch_size, fwd_hooks=subject.fwd_hooks)
        return [task.parse(o).answer for o in outs]

    out: dict = {"follows": {}, "own_chain": {}, "n": {}, "held_out": cfg.held_out}
    for op in cfg.instructions:
        got = answers(op)
        want = [instructed(task, ex, op).answer for ex in examples]
        keep = [i for i, (w, ex) in enumerate(zip(want, examples)) if w != ex.answer]  # the instruction matters
        pick = lambda flags: pooled([flags[i] for i in keep], keep, len(examples), kind="rate")  # noqa: E731
        out["follows"][op] = pick([a == w for a, w in zip(got, want)])
        out["own_chain"][op] = pick([a == ex.answer for a, ex in zip(got, examples)])
        out["n"][op] = len(keep)
    out["no_instruction"] = rate(a == ex.answer for a, ex in zip(answers(""), examples))
    return out
