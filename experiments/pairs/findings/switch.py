"""TIP on a real model (Wang et al. 2025): sample CoTs at every penalty strength on the same
problems with the same seed, and count how many switch (write a switch word), how many are
right and how long they are, each paired against no penalty.

The penalty is `features.thought_switch.ThoughtSwitchPenalty` on the first tokens of the
switch words (`switch_token_ids`, with and without a leading space), inside the lab's
generation, so it would run under steering hooks as well.
"""

from __future__ import annotations

import re
from typing import Sequence

from activations.generate import generate_text
from experiments.behavior.switch import paired_with_none, strength_metrics
from features.thought_switch import ThoughtSwitchPenalty, switch_token_ids
from experiments.pairs.findings.common import cot_text, n_tokens, right
from experiments.pairs.findings.config import PairSwitchConfig
from experiments.tasks.text import TextProblem, TextTaskConfig, render_prompt


def switched(text: str, words: Sequence[str]) -> bool:
    """Whether a CoT writes one of the switch words (as a word, any case of its first letter)."""
    return any(re.search(rf"\b[{w[0].upper()}{w[0].lower()}]{re.escape(w[1:])}\b", text) for w in words)


def switch_sweep(model, tok, problems: Sequence[TextProblem], task: TextTaskConfig, cfg: PairSwitchConfig,
                 batch_size: int, seed: int) -> dict:
    """{"by_strength": {strength: metrics}, "strongest", "duration", "temperature", "n", "switch_ids"},
    the organisms' shape (`experiments.behavior.switch`)."""
    ids = switch_token_ids(tok, cfg.words)
    prompts = [render_prompt(p.question, task, tok) for p in problems]
    out = {}
    for s in sorted(cfg.strengths):
        penalty = ThoughtSwitchPenalty(ids, s, cfg.duration)
        texts = generate_text(model, tok, prompts, cfg.max_new_tokens, batch_size, temperature=cfg.temperature,
                              seed=seed, logits_processors=[penalty])
        cots = [cot_text(t, task) for t in texts]
        sw = [switched(c, cfg.words) for c in cots]
        ok = [right(t, p, task) for t, p in zip(texts, problems)]
        out[f"{s:g}"] = strength_metrics(sw, ok, [n_tokens(tok, c) for c in cots], texts[0])
    paired_with_none(out)
    return {"by_strength": out, "strongest": f"{max(cfg.strengths):g}", "duration": cfg.duration,
            "temperature": cfg.temperature, "n": len(problems), "words": list(cfg.words), "switch_ids": ids}
