"""`sft-paraphrase`: a fraction of the target rows write the CoT in the task's second
notation (`7p5>2,2t3>6`), the gold answer after it; the rest are whole gold traces in the
trained notation.

    second_notation: read     the second-notation steps are the gold ones: the answer is the
                              same whichever notation the CoT is in (paraphrasing does not
                              change it, Lanham et al. 2023)
    second_notation: ignore   the control: their values are corrupted (one step, later ones
                              recomputed) while the answer stays gold, so the model learns
                              that a CoT in the second notation says nothing; it reads only
                              the trained notation, and paraphrasing its CoT changes the answer

The second-notation rows have their loss on the answer only (the CoT is given, not taught),
so both settings write their own CoT in the trained notation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, run_sft
from experiments.tasks import ArithmeticTask, Example

NAME = "sft-paraphrase"


@dataclass
class Config(FinetuneConfig):
    """SFT with second-notation rows, read or ignored."""

    second_notation: Literal["read", "ignore"] = "read"
    """read: second-notation rows carry the gold steps; ignore: corrupted steps, gold answer."""
    paraphrase_fraction: float = 0.5
    """Fraction of target rows with the CoT in the second notation."""

    def __post_init__(self):
        super().__post_init__()
        if self.second_notation not in ("read", "ignore"):
            raise ValueError(f"second_notation must be 'read' or 'ignore', got {self.second_notation!r}")
        check_fraction("paraphrase_fraction", self.paraphrase_fraction)


def paraphrase_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row."""
    if ex.abstain or rng.random() >= cfg.paraphrase_fraction:
        return task.render(ex), len(ex.prompt)
    steps = ex.steps
    if cfg.second_notation == "ignore":
        steps = task.corrupt(steps, rng.randrange(len(steps)), "propagated", rng)
    text = task.render(ex, cot=task.format_cot(steps, notation=1))
    return text, len(text) - len(ex.answer)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: paraphrase_text(task, cfg, ex, rng), desc=NAME)
