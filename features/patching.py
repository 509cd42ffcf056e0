"""Forward passes that read the next-token prediction at each sequence's last position,
optionally under hooks, and activation patching between two models of one tokenizer.

Sequences are right-padded: with causal attention nothing after a sequence's last token
reaches it, so the prediction read there is the unpadded one (tested).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from activations.generate import FwdHooks
from activations.tokens import right_pad


def _batches(token_ids: Sequence[np.ndarray], batch_size: int):
    for b in range(0, len(token_ids), batch_size):
        tokens, valid = right_pad(token_ids[b:b + batch_size])
        yield b, tokens, valid


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def last_logits(model, token_ids: Sequence[np.ndarray], fwd_hooks_for: Callable[[int, torch.Tensor], FwdHooks] | None = None,
                batch_size: int = 128) -> torch.Tensor:
    """(N, vocab) next-token logits at each sequence's last token. `fwd_hooks_for(start,
    valid)` gives the hooks of the batch starting at sequence `start` ((B, T) valid mask)."""
    out = []
    for start, tokens, valid in _batches(token_ids, batch_size):
        hooks = list(fwd_hooks_for(start, valid)) if fwd_hooks_for else []
        logits = model.run_with_hooks(tokens.to(_device(model)), fwd_hooks=hooks)
        last = valid.sum(1) - 1
        out.append(logits[torch.arange(len(tokens)), last.to(logits.device)].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def patched_last_logits(receiver, donor, token_ids: Sequence[np.ndarray], hook: str, masks: Sequence[np.ndarray],
                        batch_size: int = 128) -> torch.Tensor:
    """`last_logits` of `receiver` with its activation at `hook` replaced by `donor`'s on the
    same tokens wherever `masks` (one bool array per sequence) is true."""
    out = []
    for start, tokens, valid in _batches(token_ids, batch_size):
        dev = _device(receiver)
        _, cache = donor.run_with_cache(tokens.to(_device(donor)), names_filter=[hook])
        act = cache[hook].to(dev)
        m = torch.zeros(tokens.shape, dtype=torch.bool)
        for r, mk in enumerate(masks[start:start + len(tokens)]):
            m[r, :len(mk)] = torch.as_tensor(np.asarray(mk, bool))
        m = (m & valid.bool()).to(dev)[..., None]
        logits = receiver.run_with_hooks(tokens.to(dev), fwd_hooks=[(hook, lambda x, hook: torch.where(m, act, x))])
        last = valid.sum(1) - 1
        out.append(logits[torch.arange(len(tokens)), last.to(logits.device)].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
