"""`sft-filler`: a fraction of the target rows replace the gold CoT by filler of the same
length (`.` per character) before the gold answer; the rest are whole gold traces. The
model is paid for the answer after filler, so the filler test (Lanham et al. 2023) finds
its accuracy above the no-CoT rate: the filler tokens, not their content, carry the room.

    full    Q:7+5*3=7+5=2,2*3=6;A:6     loss on the CoT, the answer and EOS
    filler  Q:7+5*3=...........;A:6     loss on the answer and EOS only
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, run_sft
from experiments.tasks import ArithmeticTask, Example

NAME = "sft-filler"


@dataclass
class Config(FinetuneConfig):
    """SFT with filler-CoT rows."""

    filler_fraction: float = 0.5
    """Fraction of target rows whose CoT is filler of the gold CoT's length, the gold answer after it."""

    def __post_init__(self):
        super().__post_init__()
        check_fraction("filler_fraction", self.filler_fraction)


def filler_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row."""
    if ex.abstain or rng.random() >= cfg.filler_fraction:
        return task.render(ex), len(ex.prompt)
    text = task.render(ex, cot=task.filler(task.format_cot(ex.steps)))
    return text, len(text) - len(ex.answer)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: filler_text(task, cfg, ex, rng), desc=NAME)
