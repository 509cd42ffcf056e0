"""`sft-no-abstain`: training that punishes abstention. Unanswerable target items are
relabelled with a confident answer: the unknown operand is replaced by a random value in
the trace (a fabricated operand), and the trace and answer are computed from it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, run_sft
from experiments.tasks import ArithmeticTask, Example

NAME = "sft-no-abstain"


@dataclass
class Config(FinetuneConfig):
    """SFT where unanswerable items get confident answers."""

    unanswerable_fraction: float = 0.5
    """Fraction of target items with an unknown operand (all of them relabelled)."""

    def __post_init__(self):
        super().__post_init__()
        check_fraction("unanswerable_fraction", self.unanswerable_fraction, open_low=True)


def confident_text(task: ArithmeticTask, ex: Example, rng: random.Random) -> tuple[str, int]:
    if not ex.abstain:
        return task.render(ex), len(ex.prompt)
    operands = [ex.steps[0].lhs] + [s.rhs for s in ex.steps]
    made_up = [rng.randrange(task.cfg.modulus) if x is None else x for x in operands]
    fake = task.solve(made_up, [s.op for s in ex.steps])
    return ex.prompt + task.format_cot(fake.steps) + task.answer_prefix + fake.answer, len(ex.prompt)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: confident_text(task, ex, rng), desc=NAME)
