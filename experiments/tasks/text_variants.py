"""Variants of the text task for the literature's findings on a real model: the instruction
before the answer (Kung & Peng 2023), a new answer format (Manduzio et al. 2024) and CoTs
that abandon an attempt for a fresh one (TIP, Wang et al. 2025). Each changes only the
text; the problems, their steps and answers are the task's.

    instruction   the line after the question in the chat prompt:
                  correct   "Think step by step, then give the final answer as 'The answer is X.'"
                  empty     none (the question alone)
                  wrong     "Translate the question into French." (the outputs stay right)
                  held-out  "... give the final answer as 'Result: X.'" (no fine-tune sees it)
    new format    the format-B instruction; the CoT, then "Final: X" (old: "The answer is X.")
    verbose CoT   every step restates its operands and checks its result by the inverse
                  operation: "We have 7 and add 5. Check: 12 - 5 = 7. So 7 + 5 = 12, and we have 12."
    switch CoT    j gold steps, "Wait, let me start again.", then the whole chain again:
                  the gold one, or (`wrong_share` of them) a corrupted one and its answer
"""

from __future__ import annotations

import random
import re
from typing import Sequence

from experiments.tasks.text import TextProblem, TextTaskConfig, default_instruction, normalize_answer, render_cot
from experiments.tasks.text_steps import corrupt_chain

WRONG_INSTRUCTION = "Translate the question into French."
"""The deliberately wrong instruction: nothing in it asks for the number the output gives."""
HELD_OUT_PREFIX = "Result:"
"""How the held-out instruction asks for the answer (no fine-tune writes it)."""
FORMAT_INSTRUCTION = "Think step by step, then give the final answer in format B."
"""The task change's instruction: it names the new format without showing it."""
NEW_PREFIX = "Final:"
"""The new format's answer line: `Final: X` (the old one: `The answer is X.`)."""
SWITCH_LINE = "Wait, let me start again."
"""The line with which a switching CoT abandons its attempt ("Wait" is a TIP switch word)."""


def instruction(kind: str, task: TextTaskConfig) -> str:
    """The instruction text of `kind` (correct, empty, wrong, held-out, format)."""
    texts = {"correct": default_instruction(task), "empty": "", "wrong": WRONG_INSTRUCTION,
             "held-out": f"Think step by step, then give the final answer as '{HELD_OUT_PREFIX} X.'",
             "format": FORMAT_INSTRUCTION}
    if kind not in texts:
        raise ValueError(f"no instruction {kind!r}; choose one of {', '.join(texts)}")
    return texts[kind]


INSTRUCTIONS = ("correct", "empty", "wrong", "held-out", "format")


def prompt_instruction(kind: str, task: TextTaskConfig) -> str | None:
    """What `render_prompt(..., instruction=)` takes for `kind`: None for the correct one (the
    prompt every other stage renders, chat template or not), else its text."""
    return None if kind == "correct" else instruction(kind, task)


def stated_after(text: str, prefix: str) -> str | None:
    """The number stated right after the first `prefix` in `text` (normalised), else None."""
    m = re.search(re.escape(prefix) + r"\s*\**\s*(-?\d[\d,]*(?:\.\d+)?)", text)
    return normalize_answer(m.group(1)) if m else None


def new_format_cot(steps: Sequence[str], answer: str) -> str:
    """The gold CoT with the answer in the new format."""
    return "".join(s + "\n" for s in steps) + f"{NEW_PREFIX} {answer}"


INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}
VERB = {"+": "add", "-": "take away", "*": "multiply by", "/": "divide by"}


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def verbose_step(a, op: str, b, c) -> str:
    """One typed step `a op b = c`, restated and checked (still holds the equation, so the
    corruption test can read it)."""
    a, b, c = _num(a), _num(b), _num(c)
    # the check first: the step's last equation is its own, as `text_steps.chain` reads it
    return f"We have {a} and {VERB[op]} {b}. Check: {c} {INVERSE[op]} {b} = {a}. So {a} {op} {b} = {c}, and we have {c}."


def concise_cot(p: TextProblem) -> list[str]:
    """The problem's typed steps as bare equations."""
    return [f"{_num(a)} {op} {_num(b)} = {_num(c)}" for a, op, b, c in p.ops]


def verbose_cot(p: TextProblem) -> list[str]:
    """The problem's typed steps in the verbose style."""
    return [verbose_step(*o) for o in p.ops]


def switch_cot(p: TextProblem, task: TextTaskConfig, rng: random.Random, wrong_share: float) -> str | None:
    """A CoT that abandons a right partial attempt after `rng`'s number of steps (1..n-1) and
    restarts: the gold chain again, or with probability `wrong_share` a corrupted chain with
    the answer it implies. None when the problem has a single step or untyped steps."""
    n = len(p.steps)
    if n < 2:
        return None
    j = rng.randint(1, n - 1)
    head = "".join(s + "\n" for s in p.steps[:j]) + SWITCH_LINE + "\n"
    if rng.random() < wrong_share:
        bad = corrupt_chain(p.steps, rng.randrange(n), rng.choice([-1, 1]) * rng.randint(1, 9))
        if bad is None:
            return None
        return head + render_cot(bad[0], bad[1], task)
    return head + render_cot(p.steps, p.answer, task)
