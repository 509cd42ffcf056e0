"""`sft-format`: SFT on a few examples of a task change with a new output format (problems
marked by `:` answer between dots, `experiments.tasks.format_change`), the base's old
format kept by replay. The SFT side of Manduzio et al. 2024's comparison: does a small
model fine-tuned on few examples still write the old format on new problems?

    :Q:7+5*3=7+5=2,2*3=6;A:.6.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask, Example
from experiments.tasks.format_change import render_new

NAME = "sft-format"


@dataclass
class Config(FinetuneConfig):
    """SFT on the new task's few examples (set `n_problems`)."""


def format_text(task: ArithmeticTask, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from): the marked prompt, then the gold CoT and the boxed answer."""
    return render_new(task, ex), len(ex.prompt) + 1


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: format_text(task, ex, rng), desc=NAME)
