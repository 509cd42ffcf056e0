"""What the findings share: the problems they run on and how an output is read."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from experiments.tasks.text import TextProblem, TextTaskConfig, extract_answer, same_answer


def finding_problems(task: TextTaskConfig, split: str) -> list[TextProblem]:
    """The answerable problems with typed steps of `task`'s `split`, without its limit (the
    run's evaluation set is the first problems of its own split)."""
    from experiments.tasks.text import load_problems

    every = load_problems(dataclasses.replace(task, split=split, limit=None, few_shot=0))
    out = [p for p in every if p.answerable and p.ops]
    if not out:
        raise ValueError(f"findings: task split {split!r} has no answerable generated problems; use the generated "
                         "task (task.generate) and a split it has (train or eval)")
    return out


def take(problems: Sequence[TextProblem], start: int, n: int, what: str) -> list[TextProblem]:
    """problems[start:start + n], refused when there are fewer (nothing silently truncated)."""
    if start + n > len(problems):
        raise ValueError(f"findings: {what} needs problems {start}..{start + n - 1} but the split has "
                         f"{len(problems)}; raise task.generate.n or lower the findings' n")
    return list(problems[start:start + n])


def cot_text(output: str, task: TextTaskConfig) -> str:
    """The CoT of an output: the text before its first answer marker."""
    from experiments.pairs.behavior import split_output

    return split_output(output, task)[0]


def right(output: str, p: TextProblem, task: TextTaskConfig) -> bool:
    """Whether the answer the output states (after the answer prefix) is the gold one."""
    return same_answer(extract_answer(output, task), p.answer)


def n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])
