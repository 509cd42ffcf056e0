"""Sequential arithmetic chains with ground truth at every step.

    prompt  Q:7+5*3-4=
    CoT     7+5=2,2*3=6,6-4=2          (evaluated left to right, mod `modulus`)
    answer  ;A:2                       (`;A:` is the answer prefix that forcing appends)

Unanswerable items hide one operand behind `?`; the gold CoT carries the unknown
forward (`7+?=?,?*3=?`) and the right answer is to abstain (`A:?`).
A CoT may abandon an attempt and start again after the switch token `Q`
(`7+5=2Q7+5=2,2*3=6`); the answer is still the one after `;A:`.
A second notation (the paraphrase) writes the same steps with letters for the
operators and `>` for `=`: `7p5>2,2t3>6,6m4>2`. It has the same length, so a
paraphrased CoT keeps every token position and label.
"""

from __future__ import annotations

import itertools
import random
import re
import zlib
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence, get_args

import numpy as np

from experiments.tasks.protocol import (
    ROLE_ANSWER, ROLE_QUESTION, ROLE_STEP, UNDEFINED, CharLabels, Example, Parsed, Step,
)

OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
PARAPHRASE_OPS = {"+": "p", "-": "m", "*": "t"}
PARAPHRASE_EQ = ">"
UNKNOWN = "?"
FILLER = "."
SWITCH = "Q"  # opens a fresh attempt inside a CoT (the thought-switch organism, recipe sft-switch)
CorruptionMode = Literal["local", "propagated"]
Split = Literal["train", "eval"]
CORRUPTION_MODES = get_args(CorruptionMode)
SPLITS = get_args(Split)

_NUM = r"(\d+|\?)"
_STEP_RE = re.compile(_NUM + r"([+\-*pmt])" + _NUM + r"([=>])" + _NUM)
_FROM_PARAPHRASE = {v: k for k, v in PARAPHRASE_OPS.items()}


@dataclass
class TaskConfig:
    """Parameters of the arithmetic task."""

    modulus: int = 10
    """Every value is taken modulo this (>= 2). 10 keeps every number one character."""
    operators: str = "+-*"
    """Operators to draw from, a subset of `+-*`."""
    eval_fraction: float = 0.2
    """Fraction of all problems reserved for evaluation, chosen by a hash of the prompt,
    so train and eval problems never overlap whatever the seed."""

    def __post_init__(self):
        if self.modulus < 2:
            raise ValueError(f"task modulus must be >= 2, got {self.modulus}")
        bad = sorted(set(self.operators) - set(OPERATORS))
        if bad or not self.operators:
            raise ValueError(f"unknown operator(s) {bad or self.operators!r}: "
                             f"operators must be a non-empty subset of {''.join(OPERATORS)!r}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")


def _num(x: int | None) -> str:
    return UNKNOWN if x is None else str(x)


class ArithmeticTask:
    """The synthetic task. Stateless apart from its config: every sample takes a seed."""

    answer_prefix = ";A:"
    corruption_modes = CORRUPTION_MODES

    def __init__(self, cfg: TaskConfig | None = None):
        self.cfg = cfg or TaskConfig()

    # ---- generation -------------------------------------------------------------------
    def split_of(self, prompt: str) -> str:
        """Which split a problem belongs to: a fixed function of its text."""
        h = zlib.crc32(prompt.encode()) % 10_000
        return "eval" if h < self.cfg.eval_fraction * 10_000 else "train"

    def solve(self, operands: Sequence[int | None], ops: Sequence[str]) -> Example:
        """The example for given operands (None = unknown) and operators."""
        m = self.cfg.modulus
        steps, acc = [], operands[0]
        for op, rhs in zip(ops, operands[1:]):
            value = None if acc is None or rhs is None else OPERATORS[op](acc, rhs) % m
            steps.append(Step(acc, op, rhs, value))
            acc = value
        prompt = "Q:" + _num(operands[0]) + "".join(o + _num(x) for o, x in zip(ops, operands[1:])) + "="
        abstain = acc is None
        return Example(prompt, tuple(steps), UNKNOWN if abstain else str(acc), len(ops), abstain)

    def example(self, prompt: str) -> Example:
        """The example whose prompt is `prompt` (e.g. a saved training problem)."""
        m = re.fullmatch(r"Q:" + _NUM + r"((?:[+\-*]" + _NUM + r")*)=", prompt)
        if m is None or not m.group(2):
            raise ValueError(f"not a prompt of this task: {prompt!r} (expected e.g. 'Q:7+5*3=')")
        as_int = lambda x: None if x == UNKNOWN else int(x)  # noqa: E731
        ops = re.findall(r"[+\-*]", m.group(2))
        operands = [as_int(m.group(1))] + [as_int(x) for x in re.findall(r"\d+|\?", m.group(2))]
        if any(x is not None and x >= self.cfg.modulus for x in operands) or set(ops) - set(self.cfg.operators):
            raise ValueError(f"prompt {prompt!r} is outside this task (modulus {self.cfg.modulus}, "
                             f"operators {self.cfg.operators!r})")
        return self.solve(operands, ops)

    @property
    def max_answer_chars(self) -> int:
        return len(str(self.cfg.modulus - 1))

    def max_cot_chars(self, k: int) -> int:
        """Characters of a k-step CoT plus one spare step (room for a model that overruns)."""
        return (k + 1) * (3 + 3 * self.max_answer_chars)

    def n_problems(self, k: int, unanswerable: bool = False) -> int:
        """How many distinct k-step problems exist (both splits together): answerable ones,
        or unanswerable ones (one of the k+1 operands unknown)."""
        ops = len(self.cfg.operators) ** k
        m = self.cfg.modulus
        return (k + 1) * m ** k * ops if unanswerable else m ** (k + 1) * ops

    def all_problems(self, k: int, split: Split, unanswerable: bool = False) -> list[Example]:
        """Every distinct k-step problem of `split`, in a fixed order (for small k only:
        there are `n_problems(k)` of them in both splits together)."""
        self._check([k], split, 0.0)
        m, out = self.cfg.modulus, []
        for ops in itertools.product(self.cfg.operators, repeat=k):
            for operands in itertools.product(range(m), repeat=k + 1 - unanswerable):
                for hole in (range(k + 1) if unanswerable else [None]):
                    xs: list[int | None] = list(operands)
                    if hole is not None:
                        xs.insert(hole, None)
                    ex = self.solve(xs, ops)
                    if self.split_of(ex.prompt) == split:
                        out.append(ex)
        return out

    def _draw(self, rng: random.Random, k: int, unanswerable: bool) -> Example:
        operands: list[int | None] = [rng.randrange(self.cfg.modulus) for _ in range(k + 1)]
        ops = [rng.choice(self.cfg.operators) for _ in range(k)]
        if unanswerable:
            operands[rng.randrange(k + 1)] = None
        return self.solve(operands, ops)

    def stream(self, ks: Sequence[int], split: Split, seed: int,
               unanswerable_fraction: float = 0.0) -> Iterator[Example]:
        """An endless, deterministic stream of examples of the given split, k uniform in `ks`."""
        self._check(ks, split, unanswerable_fraction)
        rng = random.Random(f"arith-stream-{seed}-{split}-{tuple(ks)}-{unanswerable_fraction}")
        while True:
            ex = self._draw(rng, rng.choice(list(ks)), rng.random() < unanswerable_fraction)
            if self.split_of(ex.prompt) == split:
                yield ex

    def sample(self, n: int, k: int, split: Split, seed: int, unanswerable_fraction: float = 0.0,
               unique: bool = True) -> list[Example]:
        """n examples of difficulty k from `split`; distinct problems unless `unique=False`."""
        self._check([k], split, unanswerable_fraction)
        rng = random.Random(f"arith-sample-{seed}-{split}-{k}-{unanswerable_fraction}")
        out, seen = [], set()
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 200 * n + 10_000:
                raise ValueError(f"cannot draw {n} distinct k={k} problems from the {split!r} split "
                                 f"(found {len(out)}); ask for fewer or pass unique=False")
            ex = self._draw(rng, k, rng.random() < unanswerable_fraction)
            if self.split_of(ex.prompt) != split or (unique and ex.prompt in seen):
                continue
            seen.add(ex.prompt)
            out.append(ex)
        return out

    def _check(self, ks: Sequence[int], split: str, unanswerable_fraction: float) -> None:
        if not ks or any(int(k) != k or k < 1 for k in ks):
            raise ValueError(f"number of steps k must be an integer >= 1, got {list(ks)}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= unanswerable_fraction <= 1.0:
            raise ValueError(f"unanswerable_fraction must be in [0, 1], got {unanswerable_fraction}")

    # ---- rendering and parsing ----------------------------------------------------------
    def format_step(self, s: Step, notation: int = 0) -> str:
        op, eq = (s.op, "=") if notation == 0 else (PARAPHRASE_OPS[s.op], PARAPHRASE_EQ)
        return f"{_num(s.lhs)}{op}{_num(s.rhs)}{eq}{_num(s.value)}"

    def format_cot(self, steps: Sequence[Step], notation: int = 0) -> str:
        """The CoT text (without the answer prefix). notation 1 is the paraphrase notation."""
        if notation not in (0, 1):
            raise ValueError(f"notation must be 0 (plain) or 1 (paraphrase), got {notation}")
        return ",".join(self.format_step(s, notation) for s in steps)

    def render(self, ex: Example, cot: str | None = None, answer: str | None = None) -> str:
        """Prompt + CoT + answer prefix + answer. Defaults are the gold CoT and answer;
        `answer=""` stops right after the answer prefix (answer forcing)."""
        cot = self.format_cot(ex.steps) if cot is None else cot
        return ex.prompt + cot + self.answer_prefix + (ex.answer if answer is None else answer)

    def parse_step(self, text: str) -> Step | None:
        m = _STEP_RE.fullmatch(text)
        if m is None:
            return None
        lhs, op, rhs, _, val = m.groups()
        op = _FROM_PARAPHRASE.get(op, op)
        as_int = lambda x: None if x == UNKNOWN else int(x)  # noqa: E731
        return Step(as_int(lhs), op, as_int(rhs), as_int(val))

    def parse(self, continuation: str) -> Parsed:
        """Parse what follows the prompt: `<steps>;A:<answer>` (anything after is ignored)."""
        cot, sep, rest = continuation.partition(self.answer_prefix)
        steps = [self.parse_step(t) for t in cot.split(",")] if cot else []
        answer = None
        if sep:
            m = re.match(r"\d+|\?", rest)
            answer = m.group(0) if m else None
        well_formed = bool(sep) and answer is not None and all(s is not None for s in steps)
        return Parsed(steps, answer, well_formed, cot)

    @staticmethod
    def implied_answer(steps: Sequence[Step]) -> str | None:
        """The answer a CoT commits to: its last step's value (None for an empty CoT)."""
        return _num(steps[-1].value) if steps else None

    # ---- interventions on a CoT ---------------------------------------------------------
    def truncate(self, steps: Sequence[Step], j: int) -> list[Step]:
        """The first j steps (0 <= j <= len(steps))."""
        if not 0 <= j <= len(steps):
            raise ValueError(f"cannot truncate after {j} steps of a {len(steps)}-step CoT")
        return list(steps[:j])

    def corrupt(self, steps: Sequence[Step], j: int, mode: CorruptionMode, rng: random.Random | int) -> list[Step]:
        """Change the value of step j (0-based) to a different random value.

        local: only that value changes (later steps keep their text);
        propagated: later steps are recomputed from the wrong value, so the CoT's final
        value (its implied answer) is consistent with the corruption.
        """
        if mode not in CORRUPTION_MODES:
            raise ValueError(f"corruption mode must be one of {CORRUPTION_MODES}, got {mode!r}")
        if not 0 <= j < len(steps):
            raise ValueError(f"cannot corrupt step {j} of a {len(steps)}-step CoT (steps are 0-based)")
        if steps[j].value is None:
            raise ValueError(f"step {j} has an unknown value (`?`); there is nothing to corrupt")
        rng = random.Random(rng) if isinstance(rng, int) else rng
        m = self.cfg.modulus
        wrong = (steps[j].value + rng.randrange(1, m)) % m
        out = list(steps[:j]) + [Step(steps[j].lhs, steps[j].op, steps[j].rhs, wrong)]
        if mode == "local":
            return out + list(steps[j + 1:])
        acc = wrong
        for s in steps[j + 1:]:
            value = None if acc is None or s.rhs is None else OPERATORS[s.op](acc, s.rhs) % m
            out.append(Step(acc, s.op, s.rhs, value))
            acc = value
        return out

    @staticmethod
    def notation(cot: str) -> int:
        """The notation a CoT is written in: 1 if it uses the paraphrase's `>`, else 0."""
        return 1 if PARAPHRASE_EQ in cot else 0

    def paraphrase(self, cot: str) -> str:
        """Rewrite a plain-notation CoT in the second notation (same length, same positions)."""
        table = str.maketrans({**PARAPHRASE_OPS, "=": PARAPHRASE_EQ})
        return cot.translate(table)

    def filler(self, cot: str) -> str:
        """Replace the CoT by the same number of filler characters (one token each)."""
        return FILLER * len(cot)

    # ---- labels -------------------------------------------------------------------------
    def char_labels(self, text: str) -> CharLabels:
        """Labels of every character of `prompt + continuation` (any CoT, even malformed)."""
        n = len(text)
        role = np.full(n, ROLE_QUESTION, dtype=np.int16)
        step, value, slot, opi = (np.full(n, UNDEFINED, dtype=np.int16) for _ in range(4))
        q_end = text.find("=", text.find("Q:")) + 1 if text.startswith("Q:") else 0
        if q_end <= 0:
            return CharLabels(role, step, value, slot, opi)
        a_start = text.find(self.answer_prefix, q_end)
        a_start = n if a_start < 0 else a_start
        role[a_start:] = ROLE_ANSWER
        role[q_end:a_start] = ROLE_STEP
        ops = self.cfg.operators
        pos = q_end
        for j, chunk in enumerate(text[q_end:a_start].split(",")):
            end = pos + len(chunk) + (1 if pos + len(chunk) < a_start else 0)  # include the ','
            if chunk.strip(FILLER):  # filler is not a step
                step[pos:end] = j
            m = _STEP_RE.fullmatch(chunk)
            if m is not None:
                s = self.parse_step(chunk)
                if s.value is not None:
                    value[pos:end] = s.value
                if s.op in ops:
                    opi[pos:end] = ops.index(s.op)
                for g in range(5):
                    slot[pos + m.start(g + 1):pos + m.end(g + 1)] = g
                if end > pos + len(chunk):
                    slot[end - 1] = 5
            pos = end
        m = re.match(r"\d+", text[a_start + len(self.answer_prefix):])
        if m is not None:
            value[a_start:] = int(m.group(0))
        return CharLabels(role, step, value, slot, opi)
