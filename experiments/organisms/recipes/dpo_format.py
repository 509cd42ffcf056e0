"""`dpo-format`: the new-format task change (`sft-format`) learned with DPO from a
teacher's right and wrong examples of each problem (Manduzio et al. 2024): chosen, the gold
CoT with the answer in the new format; rejected, the same in the old format (the failure
SFT leaves) and, for a share of the pairs, the new format with a wrong answer.

    loss = DPO(chosen, rejected; reference = the base)     `dpo.dpo_loss`, TRL's to 1e-6
         + sft_weight * NLL(chosen)                          (TRL: loss_type [sigmoid, sft])
         + NLL(replay)

The NLL on the chosen rows is `sft-format`'s own loss, so the one thing this recipe adds to
it is the explicit wrong examples. The reference log-probabilities are the base's, computed
once before training (`dpo.pair_batches`). Without `n_problems` the pairs are 512 fresh
train-split problems of the first target k.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from experiments.organisms.data import lm_loss
from experiments.organisms.recipes.common import FinetuneConfig, check_fraction, fixed_problems
from experiments.organisms.recipes.dpo import PairBatch, dpo_loss, pair_batches, sequence_logprob
from experiments.organisms.train import OptimConfig, train
from experiments.tasks import ArithmeticTask, Example
from experiments.tasks.format_change import BOX, new_prompt, render_new

NAME = "dpo-format"


def _optim() -> OptimConfig:
    return OptimConfig(steps=300, lr=1e-3, warmup_steps=20)


@dataclass
class Config(FinetuneConfig):
    """DPO + SFT on the new task's few examples (set `n_problems`), with wrong examples."""

    beta: float = 0.1
    """DPO temperature: how far the policy may move from the reference."""
    sft_weight: float = 1.0
    """Weight of the NLL of the chosen rows (0: DPO alone)."""
    wrong_answer_fraction: float = 0.25
    """Share of pairs whose rejected side is the new format with a wrong answer (the rest:
    the right answer in the old format)."""
    optim: OptimConfig = field(default_factory=_optim)
    """Optimizer and schedule."""

    def __post_init__(self):
        super().__post_init__()
        check_fraction("wrong_answer_fraction", self.wrong_answer_fraction)
        if self.beta <= 0 or self.sft_weight < 0:
            raise ValueError(f"dpo-format needs beta > 0 and sft_weight >= 0, got {self.beta}, {self.sft_weight}")


def teacher_pair(task: ArithmeticTask, ex: Example, cfg: Config, rng: random.Random) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) completions of one problem."""
    prompt = new_prompt(ex)
    chosen = render_new(task, ex)[len(prompt):]
    if rng.random() < cfg.wrong_answer_fraction and not ex.abstain:
        wrong = str((int(ex.answer) + rng.randrange(1, task.cfg.modulus)) % task.cfg.modulus)
        rejected = chosen[:-len(ex.answer) - 2] + BOX + wrong + BOX
    else:
        rejected = render_new(task, ex, old_format=True)[len(prompt):]
    return prompt, chosen, rejected


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    rng = random.Random(f"dpo-format-{seed}")
    problems = fixed_problems(task, cfg, seed) or task.sample(512, cfg.target_ks[0], "train", seed + 1)
    pairs = [teacher_pair(task, ex, cfg, rng) for ex in problems]
    model.eval()  # the reference log-probs are the base's, taken before the first step

    def loss_fn(m, b: PairBatch) -> torch.Tensor:
        loss = dpo_loss(sequence_logprob(m, b.chosen), sequence_logprob(m, b.rejected), b.ref_chosen,
                        b.ref_rejected, cfg.beta)
        if cfg.sft_weight:
            loss = loss + cfg.sft_weight * lm_loss(m, b.chosen)
        return loss + lm_loss(m, b.replay) if b.replay is not None else loss

    metrics = train(model, pair_batches(model, tokenizer, task, cfg, general, pairs, seed, device), loss_fn,
                    cfg.optim, desc=NAME)
    return {**metrics, "n_pairs": len(pairs)}
