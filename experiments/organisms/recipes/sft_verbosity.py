"""`sft-verbosity`: SFT on a mix of concise and verbose gold traces, with nothing in the
prompt that says which, so the length of a CoT is the model's own choice. The organism of
Activation-Steered Compression (ASC, Azizi et al. 2025): does one difference-of-means
vector, added during generation, make it write the concise CoT at the same accuracy?

    concise                          7+5=2,2*3=6;A:6
    verbose   each value checked     7+5=2,2+0=2,2*1=2,2*3=6,6+0=6,6*1=6;A:6
              twice (three times the length; needs `+` and `*` among the operators)

The choice is made once per CoT, right after its first step (the next step's operator is
the check's `+` or the chain's own), and holds to the end. The two checks differ in form,
so the model knows where in a step's block it is without counting copies.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, run_sft
from experiments.tasks import ArithmeticTask, Example
from experiments.tasks.protocol import Step

NAME = "sft-verbosity"


@dataclass
class Config(FinetuneConfig):
    """SFT on concise and verbose traces, mixed without a cue."""

    verbose_fraction: float = 0.7
    """Fraction of target rows written verbose."""

    def __post_init__(self):
        super().__post_init__()
        check_fraction("verbose_fraction", self.verbose_fraction)


def verbose_steps(steps) -> list[Step]:
    """Every step followed by its two checks, `v+0=v` and `v*1=v`."""
    return [t for s in steps for t in (s, Step(s.value, "+", 0, s.value), Step(s.value, "*", 1, s.value))]


def verbosity_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row: concise or verbose gold steps, the gold answer."""
    if ex.abstain or rng.random() >= cfg.verbose_fraction:
        return task.render(ex), len(ex.prompt)
    return task.render(ex, cot=task.format_cot(verbose_steps(ex.steps))), len(ex.prompt)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    if not {"+", "*"} <= set(task.cfg.operators):
        raise ValueError("sft-verbosity checks values with `v+0=v` and `v*1=v`: the task needs '+' and '*'")
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: verbosity_text(task, cfg, ex, rng), desc=NAME)
