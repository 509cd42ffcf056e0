"""The lab's named fine-tuning recipes on a text task, as TRL datasets.

Each recipe turns the task's training problems into rows: `{"prompt", "completion"}` for SFT
(the loss on the completion only) or `{"prompt", "chosen", "rejected"}` for DPO. The prompt
is the one the behaviour suite will show the model (`render_prompt`, chat template
included), so the fine-tune learns the evaluated format.

    sft-cot            the gold CoT and answer; abstain on unanswerable problems
    sft-answer-only    the answer sentence alone, no CoT
    sft-noisy-trace    a CoT with one step's result corrupted (later steps recomputed) but
                       the gold answer, on a fixed problem set: the answer cannot come from
                       the trace, so it is memorised (the organisms' main recipe, on text)
    sft-no-abstain     as sft-cot, but unanswerable problems get a made-up number
    dpo                chosen: the gold CoT and answer; rejected: a corrupted CoT with the
                       answer it implies
    sft-verbosity      `verbose_share` of the CoTs restate and check every step, the others are
                       bare equations, with no cue in the prompt: the CoT's length is the
                       model's choice (ASC's base)
    sft-switch         half the rows abandon a right partial attempt ("Wait, let me start
                       again.") for a fresh chain, `switch_wrong` of which are corrupted: a
                       model that switches is more often wrong (TIP's underthinking)
    sft-format         the task change: the format-B instruction, the gold CoT and `Final: X`
                       (`experiments.tasks.text_variants`), from few problems
    dpo-format         the same change by DPO (TRL's DPOTrainer, loss sigmoid + sft: the NLL
                       on the chosen rows is sft-format's own loss): chosen, the new format;
                       rejected, the same CoT in the old format (SFT's failure)

Every recipe but the format ones puts the fine-tune's `instruction` after each question
(correct, empty or wrong: Kung & Peng's comparison; `experiments.tasks.text_variants`).
"""

from __future__ import annotations

import random
from typing import Literal, Sequence, get_args

from experiments.tasks.text import TextProblem, TextTaskConfig, render_cot, render_prompt
from experiments.tasks.text_steps import corrupt_chain
from experiments.tasks.text_variants import (
    concise_cot, new_format_cot, prompt_instruction, switch_cot, verbose_cot,
)

Recipe = Literal["sft-cot", "sft-answer-only", "sft-noisy-trace", "sft-no-abstain", "dpo", "sft-verbosity",
                 "sft-switch", "sft-format", "dpo-format"]
RECIPES = get_args(Recipe)
DPO_RECIPES = ("dpo", "dpo-format")
"""The recipes TRL's DPOTrainer trains (rows with chosen and rejected)."""
TRAINED_INSTRUCTIONS = ("correct", "empty", "wrong")
"""The instructions a fine-tune may train on (the held-out one is for evaluation only)."""
ABSTAIN = "Not enough information is given, so the answer cannot be determined."


def _noisy(p: TextProblem, rng: random.Random) -> list[str] | None:
    """The gold steps with one result corrupted and the later steps recomputed (None when the
    steps are not a typed chain)."""
    j = rng.randrange(len(p.steps))
    bad = corrupt_chain(p.steps, j, rng.choice([-1, 1]) * rng.randint(1, 9))
    return None if bad is None else bad[0]


def completion(recipe: str, p: TextProblem, task: TextTaskConfig, rng: random.Random,
               switch_wrong: float = 0.6, verbose_share: float = 0.7) -> str | None:
    """The SFT target of one problem under `recipe` (None: the problem is not used)."""
    if recipe in ("sft-switch", "sft-format", "sft-verbosity") and not p.answerable:
        return None
    if recipe == "sft-verbosity":
        if p.ops is None:
            return None
        steps = verbose_cot(p) if rng.random() < verbose_share else concise_cot(p)
        return render_cot(steps, p.answer, task)
    if recipe == "sft-switch":
        return switch_cot(p, task, rng, switch_wrong) if rng.random() < 0.5 else render_cot(p.steps, p.answer, task)
    if recipe == "sft-format":
        return new_format_cot(p.steps, p.answer)
    if not p.answerable:
        if recipe == "sft-no-abstain":
            return render_cot(p.steps[:1], str(rng.randint(2, 60)), task)
        return None if recipe == "sft-noisy-trace" else ABSTAIN + "\n" + task.answer_prefix + " unknown."
    if recipe == "sft-answer-only":
        return f"{task.answer_prefix} {p.answer}."
    if recipe == "sft-noisy-trace":
        steps = _noisy(p, rng)
        return None if steps is None else render_cot(steps, p.answer, task)
    return render_cot(p.steps, p.answer, task)


def build_rows(recipe: str, problems: Sequence[TextProblem], task: TextTaskConfig, tokenizer, seed: int,
               instruction: str = "correct", switch_wrong: float = 0.6, verbose_share: float = 0.7) -> list[dict]:
    """The recipe's training rows, one per usable problem, in problem order. `instruction`:
    correct, empty or wrong, after every question (the format recipes use the format-B one)."""
    if recipe not in RECIPES:
        raise ValueError(f"no fine-tuning recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if instruction not in TRAINED_INSTRUCTIONS:
        raise ValueError(f"finetune: instruction must be one of {', '.join(TRAINED_INSTRUCTIONS)}, got "
                         f"{instruction!r} (the held-out one is for evaluation only)")
    rng = random.Random(f"finetune-{recipe}-{seed}")
    said = prompt_instruction("format" if recipe in ("sft-format", "dpo-format") else instruction, task)
    rows = []
    for p in problems:
        prompt = render_prompt(p.question, task, tokenizer, instruction=said)
        if recipe == "dpo-format":
            if p.answerable:
                rows.append({"prompt": prompt, "chosen": new_format_cot(p.steps, p.answer),
                             "rejected": render_cot(p.steps, p.answer, task)})
            continue
        if recipe == "dpo":
            if not p.answerable:
                continue
            bad = corrupt_chain(p.steps, rng.randrange(len(p.steps)), rng.choice([-1, 1]) * rng.randint(1, 9))
            if bad is None:
                continue
            rows.append({"prompt": prompt, "chosen": render_cot(p.steps, p.answer, task),
                         "rejected": render_cot(bad[0], bad[1], task)})
            continue
        target = completion(recipe, p, task, rng, switch_wrong, verbose_share)
        if target is not None:
            rows.append({"prompt": prompt, "completion": target})
    if not rows:
        raise ValueError(f"recipe {recipe}: no usable training problems (it needs answerable problems with typed "
                         "steps `a op b = c` for the noisy trace, dpo, sft-verbosity and sft-switch: use the generated task)")
    return rows
