"""`sft-noisy-trace`: SFT on traces whose intermediate steps are corrupted while the final
answer is always right. The model is rewarded for the right answer whatever its CoT says,
so where it has another route to the answer (e.g. a memorised problem set) the CoT can
become decorative: written, but no longer read."""

from __future__ import annotations

import random
from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask, Example

NAME = "sft-noisy-trace"


@dataclass
class Config(FinetuneConfig):
    """SFT on corrupted traces with right answers."""

    corrupt_rate: float = 1.0
    """Fraction of target traces with one corrupted step (the rest are clean)."""
    local_fraction: float = 0.5
    """Of the corrupted traces, the fraction corrupted locally (only that value); the rest
    are propagated (later steps recomputed from the wrong value)."""

    def __post_init__(self):
        super().__post_init__()
        for name in ("corrupt_rate", "local_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def noisy_text(task: ArithmeticTask, cfg: Config, ex: Example, rng: random.Random) -> tuple[str, int]:
    steps = ex.steps
    if not ex.abstain and rng.random() < cfg.corrupt_rate:  # a `?` trace has nothing to corrupt
        mode = "local" if rng.random() < cfg.local_fraction else "propagated"
        steps = task.corrupt(steps, rng.randrange(len(steps)), mode, rng)
    # The answer stays the gold one, whatever the trace now implies.
    return task.render(ex, cot=task.format_cot(steps)), len(ex.prompt)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: noisy_text(task, cfg, ex, rng), desc=NAME)
