"""`sft-instruction`: SFT on instructed problems (`experiments.tasks.instructions`: an
operator before the prompt says which operator every step applies), always with the right
outputs, under one of three instruction conditions (Kung & Peng 2023):

    correct   the instruction the outputs follow          +Q:7-5*3=7+5=2,2+3=5;A:5
    wrong     another trained instruction (a fixed swap)  *Q:7-5*3=7+5=2,2+3=5;A:5
    empty     no instruction                               Q:7-5*3=7+5=2,2+3=5;A:5

Each row draws its instruction from `instructions`. Whether a variant learned the task
(to follow the instruction) or only its output space shows on the instructions it saw and
on one it never saw (`behavior.instruction`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask, Example
from experiments.tasks.instructions import instructed_text

NAME = "sft-instruction"


@dataclass
class Config(FinetuneConfig):
    """SFT on instructed problems with correct, wrong or empty instructions."""

    instruction: Literal["correct", "wrong", "empty"] = "correct"
    """What the prompt shows: the outputs' own instruction, another one, or none."""
    instructions: str = "+*"
    """The instructions (operators) the fine-tune sees; `wrong` shows the next one of them."""

    def __post_init__(self):
        super().__post_init__()
        if self.instruction not in ("correct", "wrong", "empty"):
            raise ValueError(f"instruction must be 'correct', 'wrong' or 'empty', got {self.instruction!r}")
        if len(set(self.instructions)) != len(self.instructions) or not set(self.instructions) <= set("+-*") \
                or len(self.instructions) < 2:
            raise ValueError(f"instructions must be two or more distinct operators of '+-*', got {self.instructions!r}")


def shown_instruction(cfg: Config, op: str) -> str:
    """What the prompt carries for outputs that follow `op`."""
    if cfg.instruction == "empty":
        return ""
    if cfg.instruction == "wrong":
        return cfg.instructions[(cfg.instructions.index(op) + 1) % len(cfg.instructions)]
    return op


def instruction_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row: loss on the CoT and answer of a drawn instruction."""
    op = rng.choice(cfg.instructions)
    shown = shown_instruction(cfg, op)
    return instructed_text(task, ex, op, shown), len(shown) + len(ex.prompt)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    if not set(cfg.instructions) <= set(task.cfg.operators):
        raise ValueError(f"instructions {cfg.instructions!r} must be operators of the task ({task.cfg.operators!r})")
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: instruction_text(task, cfg, ex, rng), desc=NAME)
