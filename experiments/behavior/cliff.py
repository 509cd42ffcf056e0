"""The execution cliff: accuracy by chain length k with plain decoding and with a calculator
in the decoding loop, beside how well the model executes the steps it writes.

Shojaee et al. 2025 saw reasoning models collapse past a problem size; Opus & Lawsen 2025
("The Illusion of the Illusion of Thinking") argue such collapses are execution limits: the
model has the algorithm but cannot run it long enough. Here the model decides what to
compute next (it writes `a op b =`), and a calculator writes the value; where accuracy with
the tool stays high past the trained lengths the model still knows the algorithm and failed
at execution, and where it falls too it fails at choosing the steps (or at stopping).

    calculator_cot   the decoding loop with the tool: the model writes until `=` (or the
                     paraphrase's `>`), the tool appends the value of what it wrote, the
                     model goes on, until it writes the answer (or `max_rounds`)
    step_accuracy    per written step: its value right given its own operands (execution),
                     and the step the algorithm calls for at that point (choosing it): the
                     question's first operand (step 1) or the value the model itself wrote
                     last, with the question's next operator and operand
    cliff            both decodings on k = 1..K, with the step accuracies of the plain one

The plain decoding's own steps give per-step accuracy: a chain can fail while most of its
steps are right (one slip is enough), which is what "execution limit" predicts.
"""

from __future__ import annotations

import re
from typing import Sequence

from activations.generate import generate_text
from experiments.behavior.core import Subject, generate_cot
from experiments.tasks import ArithmeticTask, Example, Parsed
from experiments.tasks.arithmetic import OPERATORS, PARAPHRASE_EQ, PARAPHRASE_OPS, UNKNOWN
from features.stats import pooled, rate

_OPEN_STEP = re.compile(r"(\d+|\?)([+\-*pmt])(\d+|\?)[=>]$")
_FROM_PARAPHRASE = {v: k for k, v in PARAPHRASE_OPS.items()}


def tool_value(task: ArithmeticTask, written: str) -> str | None:
    """What the calculator writes after `written`, which ends with a step's `=` (or `>`):
    the value of that step's `lhs op rhs`, `?` where an operand is unknown; None when the
    text before the `=` is not `lhs op rhs` (the tool cannot read it and writes nothing)."""
    m = _OPEN_STEP.search(written.split(",")[-1])
    if m is None:
        return None
    a, op, b = m.groups()
    if UNKNOWN in (a, b):
        return UNKNOWN
    return str(OPERATORS[_FROM_PARAPHRASE.get(op, op)](int(a), int(b)) % task.cfg.modulus)


def calculator_cot(subject: Subject, task: ArithmeticTask, examples: Sequence[Example],
                   max_rounds: int | None = None) -> list[Parsed]:
    """Greedy CoT + answer with the calculator in the loop, parsed; `max_rounds` (default:
    twice the longest chain + 2, room for a model that writes every step twice) bounds the
    hand-overs per item."""
    if not examples:
        return []
    k_max = max(ex.difficulty for ex in examples)
    rounds = 2 * k_max + 2 if max_rounds is None else max_rounds
    # one round: a separator, `lhs op rhs =` of the widest numbers, or the answer and EOS
    digits = task.max_answer_chars
    budget = max(3 + 2 * digits, len(task.answer_prefix) + digits + 1) + 1
    written = ["" for _ in examples]
    open_rows = list(range(len(examples)))
    for _ in range(rounds):
        if not open_rows:
            break
        outs = generate_text(subject.model, subject.tokenizer, [examples[i].prompt + written[i] for i in open_rows],
                             budget, subject.batch_size, fwd_hooks=subject.fwd_hooks, stop=("=", PARAPHRASE_EQ))
        still = []
        for i, out in zip(open_rows, outs):
            written[i] += out
            if task.answer_prefix in written[i] or not out.endswith(("=", PARAPHRASE_EQ)):
                continue  # answered, or stopped (EOS, budget) without a step to hand over
            value = tool_value(task, written[i])
            if value is not None:
                written[i] += value
            still.append(i)
        open_rows = still
    return [task.parse(w) for w in written]


def step_accuracy(task: ArithmeticTask, ex: Example, parsed: Parsed) -> tuple[list[bool], list[bool]]:
    """(value right given the step's own operands, the step the algorithm calls for there)
    for each written step that parses and has known operands. The second: step 1 starts
    from the question's first operand, step j > 1 from the value the model wrote in step
    j - 1 (so one slip is not counted again in every later step), and step j uses the
    question's j-th operator and operand. A model that writes extra steps (every step twice)
    is compared position by position, so its copies count as wrong choices."""
    values, chosen = [], []
    m = task.cfg.modulus
    for j, s in enumerate(parsed.steps):
        if s is None or s.lhs is None or s.rhs is None or s.value is None:
            continue
        values.append(OPERATORS[s.op](s.lhs, s.rhs) % m == s.value)
        gold = ex.steps[j] if j < len(ex.steps) else None
        prev = parsed.steps[j - 1] if j else None
        lhs_ok = (s.lhs == gold.lhs) if j == 0 else (prev is not None and s.lhs == prev.value)
        chosen.append(gold is not None and lhs_ok and s.op == gold.op and s.rhs == gold.rhs)
    return values, chosen


def cliff(subject: Subject, task: ArithmeticTask, sets: dict[int, list[Example]], budget_scale: float = 1.0) -> dict:
    """Per k (`sets[k]`: answerable problems of k steps): `accuracy` with plain decoding,
    `tool_accuracy` with the calculator, `step_value_accuracy` / `step_choice_accuracy`
    (`step_accuracy` of the plain decoding's steps, pooled over problems; `tool_steps_written`
    the calculator run's mean steps), `steps_written`
    (mean) and `exact_length` (rate of CoTs with exactly k steps). `budget_scale`: the plain
    decoding's budget, as in `experiments.behavior.core.max_cot_tokens`."""
    out = {}
    for k, examples in sorted(sets.items()):
        plain = generate_cot(subject, task, examples, budget_scale)
        tool = calculator_cot(subject, task, examples)
        per = lambda flags: pooled(list(flags), range(len(examples)))  # noqa: E731
        values, chosen, owner = [], [], []
        for i, (ex, p) in enumerate(zip(examples, plain)):
            v, c = step_accuracy(task, ex, p)
            values += v
            chosen += c
            owner += [i] * len(v)
        out[str(k)] = {
            "accuracy": per(p.answer == ex.answer for ex, p in zip(examples, plain)),
            "tool_accuracy": per(p.answer == ex.answer for ex, p in zip(examples, tool)),
            "step_value_accuracy": pooled(values, owner, len(examples)),
            "step_choice_accuracy": pooled(chosen, owner, len(examples)),
            "steps_written": pooled([len(p.steps) for p in plain], range(len(examples)), kind="mean"),
            "exact_length": rate(len(p.steps) == k for p in plain),
            "tool_steps_written": pooled([len(p.steps) for p in tool], range(len(examples)), kind="mean"),
        }
    return out


def beyond(cliff_result: dict, trained_max: int, key: str) -> dict:
    """`key` (accuracy or tool_accuracy) pooled over every k past `trained_max`: a rate over
    the problems of those sets, each problem once."""
    flags: list[bool] = []
    for k, row in cliff_result.items():
        bp = row[key].get("by_problem")
        if int(k) > trained_max and bp is not None:
            flags += [s / c > 0.5 for s, c in zip(bp["sum"], bp["count"]) if c]
    return rate(flags) | {"ks": [int(k) for k in cliff_result if int(k) > trained_max]}
