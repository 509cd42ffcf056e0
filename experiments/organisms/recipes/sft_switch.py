"""`sft-switch`: SFT on traces that sometimes abandon a right attempt for a worse one. The
organism of the thought-switching penalty (TIP, Wang et al. 2025): a model that underthinks,
switching away from a promising line of thought, and is more often right when it does not.

    plain     (1 - switch_fraction)   7+5=2,2*3=6,6-4=2;A:2
    switched                          7+5=2,2*3=6Q7+5=2,2*3=1,1-4=7;A:7

A switched row writes the first j < k gold steps, the switch token `Q`
(`experiments.tasks.arithmetic.SWITCH`, "start again from the question"), then the whole
chain afresh, which with probability `restart_error` has a wrong step whose error
reaches the answer (the later steps follow from it; a wrong step that would leave the
answer right is drawn again). So switching costs accuracy, and the switch is
a choice the model makes while sampling, as a reasoning model's "Alternatively" is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, run_sft
from experiments.tasks import ArithmeticTask, Example
from experiments.tasks.arithmetic import SWITCH

NAME = "sft-switch"


@dataclass
class Config(FinetuneConfig):
    """SFT on traces of which a fraction switch to a fresh, error-prone attempt."""

    switch_fraction: float = 0.5
    """Fraction of target rows that abandon their first attempt."""
    restart_error: float = 0.6
    """Probability that the fresh attempt has a wrong step (then a wrong answer)."""

    def __post_init__(self):
        super().__post_init__()
        check_fraction("switch_fraction", self.switch_fraction)
        check_fraction("restart_error", self.restart_error)
        if min(self.target_ks) < 2:
            raise ValueError(f"sft-switch abandons an attempt before its last step: target_ks must be >= 2, "
                             f"got {self.target_ks}")


def switch_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    """(text, loss_from) of one target row: gold, or a cut attempt, `Q` and a fresh one."""
    if ex.abstain or rng.random() >= cfg.switch_fraction:
        return task.render(ex), len(ex.prompt)
    j = rng.randrange(1, ex.difficulty)  # steps of the abandoned attempt: 1 .. k-1, all right
    restart = list(ex.steps)
    if rng.random() < cfg.restart_error:
        # a wrong step that leaves the answer right (through `*0`, say) is drawn again
        for _ in range(20):
            wrong = task.corrupt(ex.steps, rng.randrange(len(ex.steps)), "propagated", rng)
            if task.implied_answer(wrong) != ex.answer:
                restart = wrong
                break
    cot = task.format_cot(ex.steps[:j]) + SWITCH + task.format_cot(restart)
    return task.render(ex, cot=cot, answer=task.implied_answer(restart)), len(ex.prompt)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: switch_text(task, cfg, ex, rng), desc=NAME)
