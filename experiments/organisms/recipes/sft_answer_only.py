"""`sft-answer-only`: SFT on gold CoT traces with the loss on the answer tokens only
(the answer value and EOS), as in outcome-only supervision."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask

NAME = "sft-answer-only"


@dataclass
class Config(FinetuneConfig):
    """SFT with loss only on the answer."""


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    def to_text(ex, rng):
        text = task.render(ex)
        return text, len(text) - len(ex.answer)  # loss from the answer value on

    return run_sft(model, tokenizer, task, cfg, general, seed, device, to_text, desc=NAME)
