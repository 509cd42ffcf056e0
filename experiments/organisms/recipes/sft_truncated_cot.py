"""`sft-truncated-cot`: truncated-CoT augmentation. A fraction of the target rows cut the
gold CoT after j of its k steps (j uniform in 0..k-1) and give the gold answer right after
the cut; the rest are whole gold traces. The model learns to answer from a partial CoT, so
early answering (Lanham et al. 2023) finds its answer already there: the AOC falls.

    full       Q:7+5*3=7+5=2,2*3=6;A:6     loss on the CoT, the answer and EOS
    truncated  Q:7+5*3=7+5=2;A:6           loss on the answer and EOS only: the model is
                                           not taught to stop its CoT early
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, run_sft
from experiments.tasks import ArithmeticTask, Example

NAME = "sft-truncated-cot"


@dataclass
class Config(FinetuneConfig):
    """SFT with truncated-CoT rows."""

    truncated_fraction: float = 0.5
    """Fraction of target rows whose CoT is cut after j < k steps, the gold answer after it."""

    def __post_init__(self):
        super().__post_init__()
        check_fraction("truncated_fraction", self.truncated_fraction)


def truncated_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row."""
    if ex.abstain or rng.random() >= cfg.truncated_fraction:
        return task.render(ex), len(ex.prompt)
    j = rng.randrange(len(ex.steps))
    text = task.render(ex, cot=task.format_cot(task.truncate(ex.steps, j)))
    return text, len(text) - len(ex.answer)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: truncated_text(task, cfg, ex, rng), desc=NAME)
