"""The thought-switching penalty against its strength (TIP, Wang et al. 2025): sampled CoTs
of the same problems with the penalty at each strength, and what it changes.

    switch_rate         rows whose CoT opens a new attempt (contains a switch token)
    accuracy            the parsed answer is right
    cot_length          CoT tokens
    accuracy_switched / accuracy_unswitched     accuracy of the rows that did / did not
                        switch (TIP's observation: wrong answers switch more)

Strength 0 is no penalty. Every strength samples with the same seed, so the rows are the
same problems under the same random stream; each number is pooled over the problems
(`features.stats.pooled`), so strengths compare paired: `switch_change`, `accuracy_change`
(differences) and `length_change` (relative) of every strength against no penalty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from activations.generate import generate_text
from experiments.behavior.core import Subject, cot_tokens, max_cot_tokens
from experiments.tasks import Example, Task
from experiments.tasks.arithmetic import SWITCH
from features.stats import difference, pooled, rate
from features.thought_switch import ThoughtSwitchPenalty


@dataclass
class SwitchConfig:
    """The thought-switch penalty sweep (behavior.switch); off while `models` is empty."""

    models: list[str] = field(default_factory=list)
    """Variants to sweep (e.g. [sft-switch]); empty: not measured."""
    strengths: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0])
    """Penalty strengths (logits subtracted from the switch token); 0 is no penalty."""
    duration: int = 200
    """Tokens from the start of each thought during which the penalty applies (TIP's beta;
    longer than a CoT: the whole CoT)."""
    temperature: float = 1.0
    """Sampling temperature (a switch is a sampled choice; greedy decoding never makes it)."""
    k: int = 3
    """Chain length of the problems."""
    n: int = 200
    """Problems (eval split)."""

    def __post_init__(self):
        if self.models and (not self.strengths or 0.0 not in self.strengths or min(self.strengths) < 0):
            raise ValueError(f"behavior.switch.strengths must be >= 0 and include 0 (no penalty), got {self.strengths}")
        if self.duration < 1 or self.temperature <= 0 or self.k < 2 or self.n < 1:
            raise ValueError("behavior.switch needs duration >= 1, temperature > 0, k >= 2 and n >= 1")


def strength_metrics(switched: Sequence[bool], right: Sequence[bool], lengths: Sequence[int], example: str) -> dict:
    """One strength's rates, one item per problem: switch rate, accuracy, CoT length, and
    accuracy among the rows that switched and those that did not."""
    idx = range(len(switched))
    return {"switch_rate": pooled(switched, idx, kind="rate"), "accuracy": pooled(right, idx, kind="rate"),
            "cot_length": pooled(lengths, idx, kind="mean"),
            "accuracy_switched": rate(r for r, w in zip(right, switched) if w),
            "accuracy_unswitched": rate(r for r, w in zip(right, switched) if not w), "example": example}


def paired_with_none(by_strength: dict[str, dict]) -> None:
    """Add each strength's paired changes against no penalty ("0"), on the same problems."""
    none = by_strength["0"]
    for key, m in by_strength.items():
        if key != "0":
            m["switch_change"] = difference(m["switch_rate"], none["switch_rate"])
            m["accuracy_change"] = difference(m["accuracy"], none["accuracy"])
            m["length_change"] = difference(m["cot_length"], none["cot_length"], relative=True)


def switch_sweep(subject: Subject, task: Task, examples: Sequence[Example], cfg: SwitchConfig, seed: int) -> dict:
    """{"by_strength": {strength: metrics}, "duration", "temperature", "k", "n"}."""
    tok = subject.tokenizer
    switch_id = tok.convert_tokens_to_ids(SWITCH)
    prompts = [ex.prompt for ex in examples]
    # a switched CoT writes up to k - 1 steps, then the whole chain again
    budget = max_cot_tokens(task, cfg.k, 2.0)
    out = {}
    for s in cfg.strengths:
        penalty = ThoughtSwitchPenalty([switch_id], s, cfg.duration)
        texts = generate_text(subject.model, tok, prompts, budget, subject.batch_size, temperature=cfg.temperature,
                              seed=seed, fwd_hooks=subject.fwd_hooks, logits_processors=[penalty])
        parsed = [task.parse(t) for t in texts]
        switched = [SWITCH in p.cot for p in parsed]
        right = [p.answer == ex.answer for ex, p in zip(examples, parsed)]
        out[f"{s:g}"] = strength_metrics(switched, right, [cot_tokens(tok, p.cot) for p in parsed], texts[0])
    paired_with_none(out)
    return {"by_strength": out, "duration": cfg.duration, "temperature": cfg.temperature, "k": cfg.k,
            "n": len(examples), "strongest": f"{max(cfg.strengths):g}"}
