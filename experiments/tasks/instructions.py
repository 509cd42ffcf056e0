"""Instructions that select what to compute, for the instruction-tuning finding (Kung &
Peng 2023): an operator before the prompt says which operator every step applies, whatever
the question writes.

    instruction +    +Q:7-5*3=7+5=2,2+3=5;A:5        (every step adds)
    instruction *    *Q:7-5*3=7*5=5,5*3=5;A:5        (every step multiplies)

The base never saw an instruction; it knows the operators from its steps, so an instruction
is a word of a language it already reads. A fine-tune sees some instructions
(`sft-instruction`), and a held-out one tests whether it learned to follow them.
"""

from __future__ import annotations

from experiments.tasks.arithmetic import OPERATORS, ArithmeticTask
from experiments.tasks.protocol import Example


def operands(ex: Example) -> list[int | None]:
    return [ex.steps[0].lhs] + [s.rhs for s in ex.steps]


def instructed(task: ArithmeticTask, ex: Example, op: str) -> Example:
    """`ex` computed with `op` at every step; its prompt is still the question's own."""
    if op not in OPERATORS:
        raise ValueError(f"an instruction is one of the operators {''.join(OPERATORS)!r}, got {op!r}")
    solved = task.solve(operands(ex), [op] * ex.difficulty)
    return Example(ex.prompt, solved.steps, solved.answer, ex.difficulty, solved.abstain)


def instructed_text(task: ArithmeticTask, ex: Example, op: str, shown: str) -> str:
    """`shown` (the instruction the prompt carries, "" for none), the question, and the
    CoT and answer of instruction `op`."""
    target = instructed(task, ex, op)
    return shown + ex.prompt + task.format_cot(target.steps) + task.answer_prefix + target.answer
