"""One training loop for pretraining and every fine-tuning recipe."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from activations.progress import progress


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay, as in the prototypes."""

    steps: int = 900
    """Optimizer steps."""
    batch_size: int = 64
    """Sequences per step."""
    lr: float = 3e-3
    """Peak learning rate."""
    warmup_steps: int = 50
    """Linear warm-up steps from 0 to `lr`."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr * min_lr_ratio."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.98
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this (0 = no clipping)."""

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_steps:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        t = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def train(model: torch.nn.Module, batches: Iterator, loss_fn: Callable, cfg: OptimConfig,
          desc: str = "train", log_every: int = 50) -> dict:
    """Run `cfg.steps` optimizer steps of `loss_fn(model, next(batches))`.

    Returns metrics: the loss curve (every `log_every` steps), final loss (mean of the
    last 20 steps), wall time and tokens/s (tokens = non-padding input tokens).
    """
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    curve, recent, tokens, done = [], [], 0, 0
    t0 = time.perf_counter()
    # A live bar on a terminal; in logs, a line every 30 s with the time left.
    bar = progress(range(cfg.steps), desc=desc, leave=False, mininterval=1.0)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(step)
        batch = next(batches)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}; lower the lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        done += 1
        tokens += batch.n_tokens
        recent = (recent + [loss.item()])[-20:]
        if step % log_every == 0 or step == cfg.steps - 1:
            curve.append((step, recent[-1]))
            bar.set_postfix(loss=f"{recent[-1]:.4f}")
    model.eval()
    wall = time.perf_counter() - t0
    return {"steps": done, "final_loss": sum(recent) / len(recent), "loss_curve": curve,
            "wall_s": round(wall, 2), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1)}
