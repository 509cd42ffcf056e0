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
"""

from __future__ import annotations

import random
from typing import Literal, Sequence, get_args

from experiments.tasks.text import TextProblem, TextTaskConfig, render_cot, render_prompt
from experiments.tasks.text_steps import corrupt_chain

Recipe = Literal["sft-cot", "sft-answer-only", "sft-noisy-trace", "sft-no-abstain", "dpo"]
RECIPES = get_args(Recipe)
ABSTAIN = "Not enough information is given, so the answer cannot be determined."


def _noisy(p: TextProblem, rng: random.Random) -> list[str] | None:
    """The gold steps with one result corrupted and the later steps recomputed (None when the
    steps are not a typed chain)."""
    j = rng.randrange(len(p.steps))
    bad = corrupt_chain(p.steps, j, rng.choice([-1, 1]) * rng.randint(1, 9))
    return None if bad is None else bad[0]


def completion(recipe: str, p: TextProblem, task: TextTaskConfig, rng: random.Random) -> str | None:
    """The SFT target of one problem under `recipe` (None: the problem is not used)."""
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


def build_rows(recipe: str, problems: Sequence[TextProblem], task: TextTaskConfig, tokenizer, seed: int) -> list[dict]:
    """The recipe's training rows, one per usable problem, in problem order."""
    if recipe not in RECIPES:
        raise ValueError(f"no fine-tuning recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    rng = random.Random(f"finetune-{recipe}-{seed}")
    rows = []
    for p in problems:
        prompt = render_prompt(p.question, task, tokenizer)
        if recipe == "dpo":
            if not p.answerable:
                continue
            bad = corrupt_chain(p.steps, rng.randrange(len(p.steps)), rng.choice([-1, 1]) * rng.randint(1, 9))
            if bad is None:
                continue
            rows.append({"prompt": prompt, "chosen": render_cot(p.steps, p.answer, task),
                         "rejected": render_cot(bad[0], bad[1], task)})
            continue
        target = completion(recipe, p, task, rng)
        if target is not None:
            rows.append({"prompt": prompt, "completion": target})
    if not rows:
        raise ValueError(f"recipe {recipe}: no usable training problems (it needs answerable problems with typed "
                         "steps `a op b = c` for the noisy trace and dpo: use the generated task)")
    return rows
