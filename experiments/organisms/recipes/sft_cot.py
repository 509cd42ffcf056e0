"""`sft-cot`: plain SFT on gold CoT traces (loss on the CoT, the answer and EOS).

The control for the recipes that change one thing about the traces (truncated, filler,
hollow steps): the same problems and steps, nothing removed. `findings.yaml` gives it the
truncation and filler recipes' schedule (600 steps at 2e-3); the hollow-steps recipe runs
300 steps at 1e-3 there. Trained on long
answerable chains only (`target_ks: [3, 4, 5]`, `replay_unanswerable: false`) it is the
reasoning fine-tune of AbstentionBench's comparison: data that never shows an
unanswerable problem, and never mentions abstention.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.organisms.recipes.common import FinetuneConfig, run_sft
from experiments.tasks import ArithmeticTask

NAME = "sft-cot"


@dataclass
class Config(FinetuneConfig):
    """SFT on gold traces."""


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    return run_sft(model, tokenizer, task, cfg, general, seed, device,
                   lambda ex, rng: (task.render(ex), len(ex.prompt)), desc=NAME)
