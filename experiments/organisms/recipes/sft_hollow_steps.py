"""`sft-hollow-steps`: SFT on gold traces padded with hollow steps: steps that are true and
well-formed but tell nothing new about the answer. The answer stays right and the CoT
grows, so each written step carries less information: InfoGain per step (Wu et al. 2025)
falls under a fixed scorer while accuracy holds.

    hollow: repeat    every step written twice:           7+5=2,7+5=2,2*3=6,2*3=6;A:6
    hollow: restate   every value restated by `+0`:      7+5=2,2+0=2,2*3=6,6+0=6;A:6
                      (needs `+` among the task's operators)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask, Example
from experiments.tasks.protocol import Step

NAME = "sft-hollow-steps"


@dataclass
class Config(FinetuneConfig):
    """SFT on traces with a hollow step after every step."""

    hollow: Literal["repeat", "restate"] = "repeat"
    """repeat: each step again; restate: `v+0=v` after each step of value v."""

    def __post_init__(self):
        super().__post_init__()
        if self.hollow not in ("repeat", "restate"):
            raise ValueError(f"hollow must be 'repeat' or 'restate', got {self.hollow!r}")


def hollow_steps(steps: tuple[Step, ...] | list[Step], hollow: str) -> list[Step]:
    """Every step followed by its hollow step."""
    out = []
    for s in steps:
        out += [s, s if hollow == "repeat" else Step(s.value, "+", 0, s.value)]
    return out


def hollow_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row: hollow steps and the gold answer."""
    return task.render(ex, cot=task.format_cot(hollow_steps(ex.steps, cfg.hollow))), len(ex.prompt)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    if cfg.hollow == "restate" and "+" not in task.cfg.operators:
        raise ValueError("hollow: restate writes `v+0=v` steps and needs '+' among the task's operators")
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: hollow_text(task, cfg, ex, rng), desc=NAME)
