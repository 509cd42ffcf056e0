"""`sft-direct`: SFT to answer the target task without a CoT (`Q:...=;A:d`)."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask

NAME = "sft-direct"


@dataclass
class Config(FinetuneConfig):
    """SFT on direct answers (empty CoT); loss on the answer prefix, answer and EOS."""


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: (task.render(ex, cot=""), len(ex.prompt)), desc=NAME)
