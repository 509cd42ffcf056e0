"""The perplexity of whole texts under a model, optionally under hooks: what Wu et al. 2025's
InfoGain scores (UCSC-VLAA/ReasoningEval `metrics.py` `calculate_perplexity`: the mean NLL
of every token after the first, exponentiated).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from activations.generate import FwdHooks, _device, hooked
from activations.tokens import right_pad


@torch.no_grad()
def text_nll(model, tokenizer, texts: Sequence[str], batch_size: int = 256,
             fwd_hooks: FwdHooks = ()) -> list[tuple[float, int]]:
    """Per text (tokenized as a prompt, with BOS where the tokenizer adds one): the summed NLL
    in nats of every token after the first, and how many tokens that is."""
    device = _device(model)
    out: list[tuple[float, int]] = []
    with hooked(model, fwd_hooks) as lm:
        for i in range(0, len(texts), batch_size):
            enc = [np.asarray(x) for x in tokenizer(list(texts[i:i + batch_size]))["input_ids"]]
            if any(len(x) < 2 for x in enc):
                raise ValueError("a text to score needs at least two tokens")
            ids, valid = right_pad(enc, tokenizer.pad_token_id or 0)
            ids = ids.to(device)
            logp = lm(input_ids=ids, attention_mask=valid.long().to(device)).logits.float().log_softmax(-1)
            tok_lp = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].cpu()
            scored = valid[:, 1:]
            nll = -torch.where(scored, tok_lp, 0.0).sum(1)
            out += [(float(n), int(c)) for n, c in zip(nll, scored.sum(1))]
    return out


def perplexities(model, tokenizer, texts: Sequence[str], batch_size: int = 256,
                 fwd_hooks: FwdHooks = ()) -> list[float]:
    """exp(mean NLL over every token after the first) of each text."""
    return [math.exp(n / c) for n, c in text_nll(model, tokenizer, texts, batch_size, fwd_hooks)]
