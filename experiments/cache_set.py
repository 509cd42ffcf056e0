"""The token set every model of a run is cached on, with the task's per-token labels.

Each example is rendered in several text variants (gold CoT, the paraphrase notation, a
propagated corruption of one step), so that feature scores can contrast them. Every
model sees the same token ids, which is what makes base and fine-tuned caches a pair.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from activations.cache import CacheWriteConfig
from experiments.tasks import ArithmeticTask, token_labels
from experiments.tasks.arithmetic import Split

TextVariant = Literal["gold", "paraphrase", "corrupt"]
TEXT_VARIANTS = get_args(TextVariant)
# Label names stored in the cache beside the task's own (role, step, value, slot, op).
EXTRA_LABELS = ("example", "difficulty", "variant", "abstain")


@dataclass
class CacheSetConfig:
    """Which texts are cached."""

    ks: list[int] = field(default_factory=lambda: [2, 3])
    """Chain lengths of the examples."""
    n_per_k: int = 200
    """Examples per chain length (each gives one sequence per text variant)."""
    unanswerable_fraction: float = 0.1
    """Fraction of examples with an unknown operand (their CoT carries `?`)."""
    split: Split = "eval"
    """Task split the examples come from (eval: no model was trained on them)."""
    variants: list[TextVariant] = field(default_factory=lambda: list(TEXT_VARIANTS))
    """Text variants per example: gold (the gold CoT and answer), paraphrase (the same CoT
    in the second notation), corrupt (one step's value changed, later steps and the answer
    recomputed from it)."""

    def __post_init__(self):
        bad = sorted(set(self.variants) - set(TEXT_VARIANTS))
        if bad or not self.variants:
            raise ValueError(f"cache.tokens.variants must be a non-empty subset of {list(TEXT_VARIANTS)}, got {bad}")
        if self.n_per_k < 1 or not self.ks or min(self.ks) < 1:
            raise ValueError("cache.tokens: n_per_k must be >= 1 and ks a non-empty list of chain lengths >= 1")


@dataclass
class CacheConfig:
    """The activation caches of a run: which tokens, and how they are stored."""

    tokens: CacheSetConfig = field(default_factory=CacheSetConfig)
    """The token set every model is cached on."""
    write: CacheWriteConfig = field(default_factory=CacheWriteConfig)
    """Hooks, dtype, compression, chunking, sharding."""


def texts(task: ArithmeticTask, cfg: CacheSetConfig, seed: int) -> tuple[list[str], dict[str, list[int]]]:
    """The texts, and per text: example index, difficulty, variant index, abstain flag."""
    rng = random.Random(f"cache-set-{seed}")
    out, meta = [], {name: [] for name in EXTRA_LABELS}
    examples = [ex for k in cfg.ks for ex in task.sample(cfg.n_per_k, k, cfg.split, seed + 2000,
                                                         cfg.unanswerable_fraction, unique=False)]
    for i, ex in enumerate(examples):
        cot = task.format_cot(ex.steps)
        for variant in cfg.variants:
            if variant == "gold":
                text = task.render(ex)
            elif variant == "paraphrase":
                text = task.render(ex, cot=task.paraphrase(cot))
            else:
                known = [j for j, s in enumerate(ex.steps) if s.value is not None]
                if not known:  # nothing to corrupt (an unknown from the first step on)
                    continue
                bad = task.corrupt(ex.steps, rng.choice(known), "propagated", rng)
                text = task.render(ex, cot=task.format_cot(bad), answer=task.implied_answer(bad))
            out.append(text)
            for name, value in zip(EXTRA_LABELS, (i, ex.difficulty, TEXT_VARIANTS.index(variant), int(ex.abstain))):
                meta[name].append(value)
    return out, meta


def token_set(task: ArithmeticTask, tokenizer, cfg: CacheSetConfig, seed: int, mark_answer_prefix: bool = False
              ) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Token ids (one array per sequence, BOS and EOS included) and per-token labels; with
    `mark_answer_prefix` also the label `answer_prefix`: 1 at the last token of the answer
    prefix (the position that predicts the answer), 0 elsewhere."""
    text_list, meta = texts(task, cfg, seed)
    enc = tokenizer(text_list, padding=True, return_offsets_mapping=True, return_special_tokens_mask=True,
                    return_tensors="np")
    mask = enc["attention_mask"].astype(bool)
    labs = token_labels(task, text_list, enc["offset_mapping"], enc["special_tokens_mask"], enc["attention_mask"])
    ids = [enc["input_ids"][i][mask[i]] for i in range(len(text_list))]
    labels = {name: [a[i][mask[i]] for i in range(len(text_list))] for name, a in labs.items()}
    for name, values in meta.items():
        labels[name] = [np.full(len(x), v, dtype=np.int32) for x, v in zip(ids, values)]
    if mark_answer_prefix:
        labels["answer_prefix"] = []
        for i, text in enumerate(text_list):
            end = text.rfind(task.answer_prefix) + len(task.answer_prefix)  # one past the prefix's last char
            ends = enc["offset_mapping"][i][mask[i]][:, 1]
            labels["answer_prefix"].append((ends == end).astype(np.int32))
    return ids, labels
