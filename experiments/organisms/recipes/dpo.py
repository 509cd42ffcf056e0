"""`dpo`: Direct Preference Optimization (Rafailov et al. 2023) on pairs of the base
model's own sampled outputs, a correct one preferred to an incorrect one.

The loss is the paper's eq. 7, written here rather than run through TRL's DPOTrainer (the
real models' DPO, `experiments.finetune`): the Trainer stack brings its own collation and
loop, while we need our char tokenizer, our replay mix and our training loop. It is one
definition all the same: a test checks it equals TRL's DPOTrainer loss to 1e-6 on a fixed
batch (tests/test_training.py). The reference model is the base itself, so its log-probabilities are
computed once, before training, and no frozen copy is kept in memory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Iterator

import torch
import torch.nn.functional as F

from activations.generate import generate_text
from experiments.behavior.core import max_cot_tokens
from experiments.organisms.data import Batch, lm_loss, make_batch, token_logprobs
from experiments.organisms.pretrain import batches, general_texts
from experiments.organisms.recipes.common import FinetuneConfig, fixed_problems
from experiments.organisms.train import OptimConfig, train
from experiments.tasks import ArithmeticTask

NAME = "dpo"


def _dpo_optim() -> OptimConfig:
    return OptimConfig(steps=150, lr=1e-4, warmup_steps=10)


@dataclass
class Config(FinetuneConfig):
    """DPO from the base's own correct (chosen) and incorrect (rejected) samples."""

    beta: float = 0.1
    """DPO temperature: how far the policy may move from the reference."""
    temperature: float = 2.5
    """Sampling temperature for collecting the base's outputs (high enough to get errors)."""
    samples_per_problem: int = 8
    """Samples drawn per problem; a problem with no correct or no incorrect sample gives no pair."""
    n_prompts: int = 512
    """Problems to sample from when `n_problems` is None (fresh train-split problems)."""
    optim: OptimConfig = field(default_factory=_dpo_optim)
    """Optimizer and schedule."""

    def __post_init__(self):
        super().__post_init__()
        if self.beta <= 0 or self.temperature <= 0 or self.samples_per_problem < 2:
            raise ValueError("dpo needs beta > 0, temperature > 0 and samples_per_problem >= 2")


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), averaged; inputs are (B,)
    sequence log-probabilities of the completions."""
    return -F.logsigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))).mean()


def sequence_logprob(model, batch: Batch) -> torch.Tensor:
    """Sum of log p over the target tokens of each row: (B,)."""
    return (token_logprobs(model, batch) * batch.loss_mask[:, 1:]).sum(-1)


@dataclass
class PairBatch:
    chosen: Batch
    rejected: Batch
    ref_chosen: torch.Tensor    # (P,)
    ref_rejected: torch.Tensor  # (P,)
    replay: Batch | None

    @property
    def n_tokens(self) -> int:
        return self.chosen.n_tokens + self.rejected.n_tokens + (self.replay.n_tokens if self.replay else 0)


def collect_pairs(model, tokenizer, task: ArithmeticTask, cfg: Config, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, chosen completion, rejected completion) from the model's own samples."""
    problems = fixed_problems(task, cfg, seed)
    if problems is None:
        stream = task.stream(cfg.target_ks, "train", seed + 1, cfg.unanswerable_fraction)
        problems = [next(stream) for _ in range(cfg.n_prompts)]
    prompts = [ex.prompt for ex in problems for _ in range(cfg.samples_per_problem)]
    budget = max_cot_tokens(task, max(cfg.target_ks))
    outs = generate_text(model, tokenizer, prompts, budget, temperature=cfg.temperature, seed=seed)
    pairs = []
    for i, ex in enumerate(problems):
        samples = outs[i * cfg.samples_per_problem:(i + 1) * cfg.samples_per_problem]
        # Both sides well-formed: a pair of answers, not of an answer and truncated junk.
        parsed = [task.parse(s) for s in samples]
        good = [s for s, p in zip(samples, parsed) if p.well_formed and p.answer == ex.answer]
        bad = [s for s, p in zip(samples, parsed) if p.well_formed and p.answer != ex.answer]
        if good and bad:
            pairs.append((ex.prompt, good[0], bad[0]))
    if not pairs:
        raise ValueError("dpo: the base gave no (correct, incorrect) pair; raise `temperature` "
                         "or `samples_per_problem`")
    return pairs


def pair_batches(model, tokenizer, task, cfg: FinetuneConfig, general, pairs, seed: int,
                 device: str) -> Iterator[PairBatch]:
    """Endless batches of (prompt, chosen, rejected) `pairs` with the reference (the model as
    it is now) log-probabilities of both sides, computed once, and the replay rows."""
    def encode(rows, which: int) -> Batch:  # which: 1 = chosen, 2 = rejected
        return make_batch(tokenizer, [r[0] + r[which] for r in rows], [len(r[0]) for r in rows], device)

    with torch.inference_mode():  # reference log-probs: the untouched base, once
        ref = [(sequence_logprob(model, encode(pairs[i:i + 256], 1)),
                sequence_logprob(model, encode(pairs[i:i + 256], 2))) for i in range(0, len(pairs), 256)]
    ref_c, ref_r = torch.cat([c for c, _ in ref]), torch.cat([r for _, r in ref])
    n_replay = round(cfg.replay_fraction * cfg.optim.batch_size)
    n_pairs = max(1, cfg.optim.batch_size - n_replay)
    if not cfg.replay_unanswerable:
        general = replace(general, unanswerable_fraction=0.0)
    replay = batches(tokenizer, general_texts(task, general, seed + 7), n_replay, device) if n_replay else None
    rng = random.Random(f"dpo-{seed}")
    while True:
        idx = rng.sample(range(len(pairs)), min(n_pairs, len(pairs)))
        rows = [pairs[i] for i in idx]
        yield PairBatch(encode(rows, 1), encode(rows, 2), ref_c[idx], ref_r[idx],
                        next(replay) if replay else None)


def run(model, tokenizer, task: ArithmeticTask, cfg: Config, general, seed: int, device: str) -> dict:
    model.eval()
    pairs = collect_pairs(model, tokenizer, task, cfg, seed)

    def loss_fn(m, b: PairBatch) -> torch.Tensor:
        loss = dpo_loss(sequence_logprob(m, b.chosen), sequence_logprob(m, b.rejected),
                        b.ref_chosen, b.ref_rejected, cfg.beta)
        return loss + lm_loss(m, b.replay) if b.replay is not None else loss

    metrics = train(model, pair_batches(model, tokenizer, task, cfg, general, pairs, seed, device),
                    loss_fn, cfg.optim, desc=NAME)
    return {**metrics, "n_pairs": len(pairs)}
