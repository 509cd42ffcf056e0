"""The thought-switching penalty (TIP, Wang et al. 2025, arXiv 2501.18585, section 4): at
decoding time, lower the logits of the tokens that start a new line of thought, for the
first `duration` tokens of every thought, so the model explores the current one longer.

    z'[v] = z[v] - strength    if v is a switch token and t < start + duration
    z'[v] = z[v]               otherwise

t is the position of the token being chosen; `start` is where the current thought began:
the first generated position, then the position of each switch token the row writes (a
switch token is the first token of the thought it opens). After `duration` tokens of one
thought the model may switch freely again.

It changes the raw logits z, as the paper's eq. 2 does; sampling at temperature T then
divides the penalised logits by T (HF runs a caller's processors before its temperature).

`ThoughtSwitchPenalty` is a HF `LogitsProcessor`: pass it to
`activations.generate.generate_text(..., logits_processors=[...])`, which also runs under
TransformerLens hooks (steering and the penalty together). `switch_token_ids` finds a real
tokenizer's switch tokens from words ("Alternatively", "Wait", ...): the first token of
each spelling, with and without a leading space, as TIP penalises every variant.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from transformers import LogitsProcessor

SWITCH_WORDS = ("Alternatively", "Wait", "Instead", "Hmm")
"""Words that open a new line of thought in a real model's CoT (TIP's `alternatively` and
its kin); the organisms' switch token is `experiments.tasks.arithmetic.SWITCH`."""


class ThoughtSwitchPenalty(LogitsProcessor):
    """Subtract `strength` from the switch tokens' logits while the current thought is
    younger than `duration` tokens. It keeps each row's thought start during one `generate`
    call; `reset()` forgets it (`generate_text` calls it before every batch)."""

    def __init__(self, switch_ids: Iterable[int], strength: float, duration: int):
        self.switch_ids = sorted({int(i) for i in switch_ids})
        if not self.switch_ids:
            raise ValueError("the thought-switch penalty needs at least one switch token id")
        if strength < 0 or duration < 0:
            raise ValueError(f"switch penalty strength and duration must be >= 0, got {strength}, {duration}")
        self.strength, self.duration = float(strength), int(duration)
        self.start: torch.Tensor | None = None  # (B,) position where each row's thought began

    def reset(self) -> None:
        self.start = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, t): the text so far; scores (B, V): the logits of position t."""
        t = input_ids.shape[1]
        ids = torch.tensor(self.switch_ids, device=scores.device)
        if self.start is None:  # the first call chooses the first generated token
            self.start = torch.full((input_ids.shape[0],), t, device=input_ids.device)
        else:  # the token just written opened a new thought if it is a switch token
            opened = torch.isin(input_ids[:, -1], ids)
            self.start = torch.where(opened, torch.full_like(self.start, t - 1), self.start)
        young = (t - self.start) < self.duration  # (B,)
        if not young.any() or self.strength == 0:
            return scores
        penalty = torch.zeros_like(scores)
        penalty[:, ids] = self.strength
        return scores - penalty * young[:, None].to(scores.dtype)


def switch_token_ids(tokenizer, words: Sequence[str] = SWITCH_WORDS) -> list[int]:
    """The first token id of each word, as written at a line start and after a space, in
    lower and upper case (e.g. `Wait`, ` Wait`, `wait`, ` wait`). A leading token that is
    only a space, and the unknown token, are skipped: penalising either would penalise
    every word."""
    ids = set()
    for w in words:
        for form in {w, w.lower(), w.capitalize()}:
            for text in (form, " " + form):
                for t in tokenizer(text, add_special_tokens=False)["input_ids"]:
                    if t == tokenizer.unk_token_id:
                        break
                    if tokenizer.decode([t]).strip():
                        ids.add(t)
                        break
    return sorted(ids)
