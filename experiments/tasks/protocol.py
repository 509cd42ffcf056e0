"""The task protocol: what every reasoning task gives the rest of saelab.

A task yields `Example`s with per-step ground truth, renders and parses chains of
thought (CoT), produces the faithfulness interventions on a CoT, and labels every
character of a rendered text. `token_labels` maps those character labels onto the
tokens of any fast tokenizer, so caches and feature scores get per-token labels
whatever the task or tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

# Token roles. Stored as small ints in caches; names are for humans.
ROLES = ("question", "step", "answer", "padding")
ROLE_QUESTION, ROLE_STEP, ROLE_ANSWER, ROLE_PADDING = range(4)
# Position of a character inside a step `lhs op rhs = value ,`.
SLOTS = ("lhs", "op", "rhs", "eq", "value", "sep")
UNDEFINED = -1  # label value where a label has no meaning (e.g. step index of a question token)


@dataclass(frozen=True)
class Step:
    """One reasoning step `lhs op rhs = value`. `None` stands for an unknown (`?`)."""

    lhs: int | None
    op: str
    rhs: int | None
    value: int | None


@dataclass(frozen=True)
class Example:
    """A problem with its ground truth at every step."""

    prompt: str
    """The question as the model sees it, e.g. `Q:7+5*3-4=`; also the example's id."""
    steps: tuple[Step, ...]
    """Gold reasoning steps, in order."""
    answer: str
    """Gold answer text: a number, or `?` when the right output is to abstain."""
    difficulty: int
    """Number of reasoning steps k."""
    abstain: bool
    """True when the problem is unanswerable and the right output is to abstain."""

    @property
    def id(self) -> str:
        return self.prompt


@dataclass
class Parsed:
    """A model continuation parsed back into steps and an answer."""

    steps: list[Step | None]
    """Parsed steps; `None` for a step whose text did not parse."""
    answer: str | None
    """The answer text after the answer prefix, or None if there was none."""
    well_formed: bool
    """True when every step parsed and an answer followed the answer prefix."""
    cot: str = ""
    """The raw CoT text (between the prompt and the answer prefix)."""


@dataclass
class CharLabels:
    """Per-character labels of a rendered text; every array has len(text) entries."""

    role: np.ndarray
    """ROLE_* of each character."""
    step: np.ndarray
    """Index (0-based) of the step a character belongs to, UNDEFINED outside steps."""
    value: np.ndarray
    """Intermediate value of that step (or the answer's value), UNDEFINED where none is defined."""
    slot: np.ndarray
    """Index into SLOTS inside a step, UNDEFINED outside steps."""
    op: np.ndarray
    """Index of the step's operator in the task's operator list, UNDEFINED outside steps."""


LABEL_NAMES = ("role", "step", "value", "slot", "op")


class Task(Protocol):
    """What the behavioural suite, the caches and the feature scores rely on."""

    answer_prefix: str
    max_answer_chars: int
    corruption_modes: tuple[str, ...]

    def sample(self, n: int, k: int, split: str, seed: int, **kw) -> list[Example]: ...
    def example(self, prompt: str) -> Example: ...
    def max_cot_chars(self, k: int) -> int: ...
    def format_cot(self, steps: Sequence[Step], notation: int = 0) -> str: ...
    def render(self, ex: Example, cot: str | None = None, answer: str | None = None) -> str: ...
    def parse(self, continuation: str) -> Parsed: ...
    def truncate(self, steps: Sequence[Step], j: int) -> list[Step]: ...
    def corrupt(self, steps: Sequence[Step], j: int, mode: str, rng) -> list[Step]: ...
    def notation(self, cot: str) -> int: ...
    def paraphrase(self, cot: str) -> str: ...
    def filler(self, cot: str) -> str: ...
    def char_labels(self, text: str) -> CharLabels: ...


def token_labels(task: Task, texts: Sequence[str], offsets: np.ndarray, special: np.ndarray,
                 attention_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Map the task's character labels onto tokens.

    offsets: (B, T, 2) character span of each token (as returned by a fast tokenizer);
    special: (B, T) 1 for special tokens; attention_mask: (B, T) 0 for padding.
    A token takes the labels of its first character. A special token at the start
    (BOS) is a question token, one after text (EOS) an answer token; padding gets
    ROLE_PADDING and UNDEFINED elsewhere. Returns (B, T) int arrays per label name.
    """
    B, T = attention_mask.shape
    out = {name: np.full((B, T), UNDEFINED, dtype=np.int16) for name in LABEL_NAMES}
    out["role"][:] = ROLE_PADDING
    for b, text in enumerate(texts):
        lab = task.char_labels(text)
        seen_text = False
        for t in range(T):
            if not attention_mask[b, t]:
                continue
            if special[b, t]:
                out["role"][b, t] = ROLE_ANSWER if seen_text else ROLE_QUESTION
                continue
            s, e = int(offsets[b, t, 0]), int(offsets[b, t, 1])
            if e <= s or s >= len(text):
                out["role"][b, t] = ROLE_ANSWER if seen_text else ROLE_QUESTION
                continue
            seen_text = True
            for name in LABEL_NAMES:
                out[name][b, t] = getattr(lab, name)[s]
    return out
