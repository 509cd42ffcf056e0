"""Instruction tuning learns the output space (Kung & Peng 2023), on a real model: the
fine-tunes on the correct, the empty and a wrong instruction (same recipe, same right
outputs) answer new problems under the instruction each trained on, and under a held-out
instruction no fine-tune saw, which asks for the answer as `Result: X` (a change of output
the model can only make by reading the instruction). The model they started from is the
floor. Each rate is per problem, so the fine-tunes compare paired.

    accuracy            under its own instruction: the stated answer is right
    held_out_follows    under the held-out one: the output states a number after `Result:`
    held_out_accuracy   that number is the gold answer
"""

from __future__ import annotations

from typing import Callable, Sequence

from activations.generate import generate_text
from features.stats import difference, pooled
from experiments.pairs.findings.common import right
from experiments.pairs.findings.config import PairInstructionConfig
from experiments.tasks.text import TextProblem, TextTaskConfig, render_prompt, same_answer
from experiments.tasks.text_variants import HELD_OUT_PREFIX, instruction, prompt_instruction, stated_after as _after


def instruction_rates(model, tok, problems: Sequence[TextProblem], task: TextTaskConfig, own: str,
                      max_new_tokens: int, batch_size: int) -> dict:
    idx = range(len(problems))
    gen = lambda kind: generate_text(  # noqa: E731
        model, tok, [render_prompt(p.question, task, tok, instruction=prompt_instruction(kind, task)) for p in problems],
        max_new_tokens, batch_size)
    mine, held = gen(own), gen("held-out")
    stated = [stated_after(t) for t in held]
    return {"instruction": own, "accuracy": pooled([right(t, p, task) for t, p in zip(mine, problems)], idx),
            "held_out_follows": pooled([a is not None for a in stated], idx),
            "held_out_accuracy": pooled([same_answer(a, p.answer) for a, p in zip(stated, problems)], idx),
            "example": mine[0], "held_out_example": held[0]}


def stated_after(text: str) -> str | None:
    """The number after the held-out instruction's `Result:`."""
    return _after(text, HELD_OUT_PREFIX)


def instruction_study(load: Callable[[str], tuple], problems: Sequence[TextProblem], task: TextTaskConfig,
                      cfg: PairInstructionConfig, batch_size: int, log=print) -> dict:
    """{"models": {role: rates}, "vs_correct": {empty|wrong: paired differences}}; the floor
    is asked with the correct instruction."""
    out = {}
    for role, name in cfg.models().items():
        model, tok = load(name)
        own = "correct" if role == "floor" else role
        out[role] = {"model": name, **instruction_rates(model, tok, problems, task, own, cfg.max_new_tokens,
                                                       batch_size)}
        log(f"    instruction {role} ({name}): accuracy {out[role]['accuracy']['value']:.2f}, follows the held-out "
            f"one {out[role]['held_out_follows']['value']:.2f}")
        del model
    keys = ("accuracy", "held_out_follows", "held_out_accuracy")
    vs = {r: {k: difference(out[r][k], out["correct"][k]) for k in keys} for r in ("empty", "wrong")}
    return {"models": out, "vs_correct": vs, "held_out": instruction("held-out", task), "n": len(problems)}
