"""DPO against SFT's format failures on a real model (Manduzio et al. 2024): new problems
asked for the new format (`experiments.tasks.text_variants`: the format-B instruction,
answer line `Final: X`), greedy outputs of the SFT and the DPO fine-tune (and the model
both started from, the floor), each rate per problem so the two compare paired.

    new_format   the output states a number after `Final:`
    old_format   it writes the old answer sentence (`The answer is`): SFT's rigid failure
    accuracy     the number after `Final:` is the gold answer
"""

from __future__ import annotations

from typing import Callable, Sequence

from activations.generate import generate_text
from features.stats import difference, pooled
from experiments.pairs.findings.config import PairFormatConfig
from experiments.tasks.text import TextProblem, TextTaskConfig, render_prompt, same_answer
from experiments.tasks.text_variants import NEW_PREFIX, instruction, stated_after


def format_rates(model, tok, problems: Sequence[TextProblem], task: TextTaskConfig, max_new_tokens: int,
                 batch_size: int) -> dict:
    said = instruction("format", task)
    texts = generate_text(model, tok, [render_prompt(p.question, task, tok, instruction=said) for p in problems],
                          max_new_tokens, batch_size)
    new = [stated_after(t, NEW_PREFIX) for t in texts]
    idx = range(len(problems))
    return {"new_format": pooled([a is not None for a in new], idx, kind="rate"),
            "old_format": pooled([task.answer_prefix.lower() in t.lower() for t in texts], idx, kind="rate"),
            "accuracy": pooled([same_answer(a, p.answer) for a, p in zip(new, problems)], idx, kind="rate"),
            "example": texts[0]}


def format_study(load: Callable[[str], tuple], problems: Sequence[TextProblem], task: TextTaskConfig,
                 cfg: PairFormatConfig, batch_size: int, log=print) -> dict:
    """{"models": {role: {model, new_format, old_format, accuracy}}, "dpo_vs_sft": paired
    differences}; roles sft, dpo and floor (when configured)."""
    roles = {"sft": cfg.sft, "dpo": cfg.dpo, "floor": cfg.floor}
    out = {}
    for role, name in roles.items():
        if name is None:
            continue
        model, tok = load(name)
        out[role] = {"model": name, **format_rates(model, tok, problems, task, cfg.max_new_tokens, batch_size)}
        log(f"    format {role} ({name}): new format {out[role]['new_format']['value']:.2f}, old "
            f"{out[role]['old_format']['value']:.2f}, right in it {out[role]['accuracy']['value']:.2f}")
        del model
    paired = {k: difference(out["dpo"][k], out["sft"][k]) for k in ("new_format", "old_format", "accuracy")}
    return {"models": out, "dpo_vs_sft": paired, "n": len(problems)}
