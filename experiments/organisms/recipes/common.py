"""What every fine-tuning recipe shares: the target task, replay, and the SFT loop."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from experiments.organisms.data import lm_loss
from experiments.organisms.pretrain import BaseConfig, batches, general_texts
from experiments.organisms.train import OptimConfig, train
from experiments.tasks import ArithmeticTask, Example


def _ft_optim() -> OptimConfig:
    return OptimConfig(steps=300, lr=1e-3, warmup_steps=20)


@dataclass
class FinetuneConfig:
    """Options every recipe takes."""

    target_ks: list[int] = field(default_factory=lambda: [2])
    """Chain lengths of the fine-tuning task."""
    n_problems: int | None = None
    """A fixed set of N distinct train-split problems (a small task-specific data set),
    cycled for the whole run; None draws fresh problems every step."""
    replay_fraction: float = 0.5
    """Fraction of each batch drawn from the base's pretraining mix, against forgetting."""
    unanswerable_fraction: float = 0.0
    """Fraction of target items with an unknown operand (`?`)."""
    replay_unanswerable: bool = True
    """Replay the base's mix as it is, unanswerable items included; False replays only its
    answerable items, so the fine-tune never sees an unanswerable problem (as reasoning
    fine-tunes, whose data are solved problems)."""
    optim: OptimConfig = field(default_factory=_ft_optim)
    """Optimizer and schedule."""

    def __post_init__(self):
        if not 0 <= self.replay_fraction < 1:
            raise ValueError(f"replay_fraction must be in [0, 1), got {self.replay_fraction}")
        check_fraction("unanswerable_fraction", self.unanswerable_fraction)
        if not self.target_ks or min(self.target_ks) < 1:
            raise ValueError(f"target_ks must be a non-empty list of chain lengths >= 1, got {self.target_ks}")
        if self.n_problems is not None and self.n_problems < len(self.target_ks):
            raise ValueError(f"n_problems must be >= the number of target_ks, got {self.n_problems}")


def check_fraction(name: str, value: float, open_low: bool = False) -> None:
    """Raise the config error for a fraction outside [0, 1] (or (0, 1] with `open_low`)."""
    if not (0 < value <= 1 if open_low else 0 <= value <= 1):
        raise ValueError(f"{name} must be in {'(' if open_low else '['}0, 1], got {value}")


def fixed_problems(task: ArithmeticTask, cfg: FinetuneConfig, seed: int) -> list[Example] | None:
    """The fixed training set (split evenly over target_ks), or None for fresh problems."""
    if cfg.n_problems is None:
        return None
    out = []
    for i, k in enumerate(cfg.target_ks):
        n = cfg.n_problems // len(cfg.target_ks) + (i < cfg.n_problems % len(cfg.target_ks))
        out += task.sample(n, k, "train", seed=seed, unanswerable_fraction=cfg.unanswerable_fraction)
    return out


def target_examples(task: ArithmeticTask, cfg: FinetuneConfig, seed: int) -> Iterator[Example]:
    """Endless target-task examples: shuffled passes over the fixed set, or a fresh stream."""
    fixed = fixed_problems(task, cfg, seed)
    if fixed is None:
        yield from task.stream(cfg.target_ks, "train", seed + 1, cfg.unanswerable_fraction)
        return
    rng = random.Random(f"epochs-{seed}")
    while True:
        order = list(fixed)
        rng.shuffle(order)
        yield from order


def mixed(target: Iterator[tuple[str, int]], general: BaseConfig, task: ArithmeticTask,
          replay_fraction: float, seed: int) -> Iterator[tuple[str, int]]:
    """Each row is a replay row with probability `replay_fraction`, else a target row."""
    rng = random.Random(f"replay-{seed}")
    replay = general_texts(task, general, seed + 7)
    while True:
        yield next(replay) if rng.random() < replay_fraction else next(target)


def run_sft(model, tokenizer, task: ArithmeticTask, cfg: FinetuneConfig, general: BaseConfig,
            seed: int, device: str, to_text: Callable[[Example, random.Random], tuple[str, int]],
            desc: str) -> dict:
    """Supervised fine-tuning on `to_text(example, rng) -> (text, loss_from)` of the target task."""
    rng = random.Random(f"sft-{seed}")
    target = (to_text(ex, rng) for ex in target_examples(task, cfg, seed))
    replay = general if cfg.replay_unanswerable else replace(general, unanswerable_fraction=0.0)
    rows = mixed(target, replay, task, cfg.replay_fraction, seed)
    return train(model, batches(tokenizer, rows, cfg.optim.batch_size, device), lm_loss, cfg.optim, desc=desc)
