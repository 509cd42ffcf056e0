"""Fine-tuning recipes, one module each, registered by name.

A recipe module has `NAME`, a `Config` dataclass (a `FinetuneConfig`), and
`run(model, tokenizer, task, cfg, general, seed, device) -> metrics`, which fine-tunes
`model` in place; `general` is the base's pretraining config, used for replay.
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal, get_args

from experiments.organisms.recipes import (
    dpo, dpo_format, sft_answer_only, sft_cot, sft_direct, sft_filler, sft_format, sft_hollow_steps, sft_instruction,
    sft_no_abstain, sft_noisy_trace, sft_paraphrase, sft_switch, sft_truncated_cot, sft_verbosity,
)

RecipeName = Literal["sft-noisy-trace", "sft-direct", "sft-answer-only", "sft-no-abstain", "dpo", "sft-cot",
                     "sft-truncated-cot", "sft-filler", "sft-paraphrase", "sft-hollow-steps",
                     "sft-verbosity", "sft-switch", "sft-format", "dpo-format", "sft-instruction"]
RECIPES: dict[str, ModuleType] = {m.NAME: m for m in (
    sft_noisy_trace, sft_direct, sft_answer_only, sft_no_abstain, dpo, sft_cot, sft_truncated_cot, sft_filler,
    sft_paraphrase, sft_hollow_steps, sft_verbosity, sft_switch, sft_format, dpo_format, sft_instruction)}
assert list(RECIPES) == list(get_args(RecipeName)), "RecipeName must name every recipe module"


def get_recipe(name: RecipeName) -> ModuleType:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]
