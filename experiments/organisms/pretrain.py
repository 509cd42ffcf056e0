"""Pretraining the base model organism on CoT-format data."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterator

from transformers import PreTrainedTokenizerFast

from experiments.organisms.data import Batch, lm_loss, make_batch
from experiments.organisms.train import OptimConfig, train
from experiments.tasks import ArithmeticTask


@dataclass
class BaseConfig:
    """What the base model is pretrained on, and for how long."""

    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Chain lengths k in the pretraining mix (uniform); keep a longer k out as an OOD check."""
    unanswerable_fraction: float = 0.1
    """Fraction of items with an unknown operand (`?`) whose right answer is to abstain."""
    paraphrase_fraction: float = 0.2
    """Fraction of CoTs written in the second notation, so the base reads paraphrased CoTs."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer and schedule."""

    def __post_init__(self):
        if not 0 <= self.unanswerable_fraction <= 1:
            raise ValueError(f"unanswerable_fraction must be in [0, 1], got {self.unanswerable_fraction}")
        if not 0 <= self.paraphrase_fraction <= 1:
            raise ValueError(f"paraphrase_fraction must be in [0, 1], got {self.paraphrase_fraction}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be a non-empty list of chain lengths >= 1, got {self.ks}")


def general_texts(task: ArithmeticTask, cfg: BaseConfig, seed: int) -> Iterator[tuple[str, int]]:
    """The pretraining distribution: (text, loss_from) with loss on the CoT and the answer."""
    rng = random.Random(f"general-{seed}")
    for ex in task.stream(cfg.ks, "train", seed, cfg.unanswerable_fraction):
        notation = 1 if rng.random() < cfg.paraphrase_fraction else 0
        yield task.render(ex, cot=task.format_cot(ex.steps, notation)), len(ex.prompt)


def batches(tokenizer: PreTrainedTokenizerFast, texts: Iterator[tuple[str, int]],
            batch_size: int, device: str = "cpu") -> Iterator[Batch]:
    while True:
        rows = [next(texts) for _ in range(batch_size)]
        yield make_batch(tokenizer, [t for t, _ in rows], [s for _, s in rows], device)


def pretrain(model, tokenizer, task: ArithmeticTask, cfg: BaseConfig, seed: int,
             device: str = "cpu") -> dict:
    """Train `model` in place; returns the training metrics."""
    data = batches(tokenizer, general_texts(task, cfg, seed), cfg.optim.batch_size, device)
    return train(model, data, lm_loss, cfg.optim, desc="base")
