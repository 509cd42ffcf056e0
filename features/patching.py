"""Forward passes that read the next-token prediction at each sequence's last position,
optionally under hooks, and activation patching between two models of one tokenizer.

Sequences are right-padded: with causal attention nothing after a sequence's last token
reaches it, so the prediction read there is the unpadded one (tested).
"""

from __future__ import annotations

import inspect
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


@torch.no_grad()
def patching_sweep(receiver, donor, token_ids: Sequence[np.ndarray], hooks: Sequence[str],
                   masks: dict[str, Sequence[np.ndarray]], batch_size: int = 128) -> dict[tuple[str, str], torch.Tensor]:
    """`patched_last_logits` for every (hook, mask name) pair: {(hook, name): (N, vocab)}.
    The donor runs once per batch for all hooks (not once per pair)."""
    out: dict[tuple[str, str], list[torch.Tensor]] = {(h, name): [] for h in hooks for name in masks}
    dev = _device(receiver)
    for start, tokens, valid in _batches(token_ids, batch_size):
        _, cache = donor.run_with_cache(tokens.to(_device(donor)), names_filter=list(hooks))
        last = valid.sum(1) - 1
        for name, mks in masks.items():
            m = torch.zeros(tokens.shape, dtype=torch.bool)
            for r, mk in enumerate(mks[start:start + len(tokens)]):
                m[r, :len(mk)] = torch.as_tensor(np.asarray(mk, bool))
            m = (m & valid.bool()).to(dev)[..., None]
            for h in hooks:
                act = cache[h].to(dev)
                logits = receiver.run_with_hooks(tokens.to(dev),
                                                 fwd_hooks=[(h, lambda x, hook, act=act: torch.where(m, act, x))])
                out[(h, name)].append(logits[torch.arange(len(tokens)), last.to(logits.device)].float().cpu())
    return {key: torch.cat(v) for key, v in out.items()}


def _crop_to(cache, length: int) -> None:
    """Every layer of a KV cache back to `length` positions. Per layer: when a hook raised
    mid-forward, the layers after it never received the new position."""
    layers = getattr(cache, "layers", None)
    if layers is None:  # older transformers: one crop for all layers
        cache.crop(length)
        return
    for layer in layers:
        extra = layer.get_seq_length() - length
        if extra > 0:
            layer.crop(-extra)


class LastTokenRunner:
    """Next-token logits at each sequence's last token under many interventions that change
    only that token: the prefix (every token but the last) runs once, left-padded, and its
    KV cache is kept; each `logits(hooks)` then runs one position per sequence. Equal to
    `last_logits` with the hooks masked to the last position (a test), ~T times cheaper.

    `model` is a TransformerBridge (hooks by TransformerLens name, as `last_logits`); the
    hooks see (B, 1, d) activations, i.e. only the last position.
    """

    @torch.no_grad()
    def __init__(self, model, token_ids: Sequence[np.ndarray], batch_size: int = 256):
        from activations.generate import hooked

        if any(len(t) < 2 for t in token_ids):
            raise ValueError("LastTokenRunner needs sequences of at least 2 tokens (a prefix and a last token)")
        self.model, self.n = model, len(token_ids)
        self.batches = []  # (cache, prefix mask (B, P), last token (B, 1), its position (B, 1))
        dev = _device(model)
        with hooked(model) as lm:
            # transformers 5.x renamed `past_key_values` to `cache`; accept both
            self._cache_arg = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"
            for b in range(0, len(token_ids), batch_size):
                seqs = token_ids[b:b + batch_size]
                p = max(len(s) - 1 for s in seqs)
                ids = torch.zeros(len(seqs), p, dtype=torch.long)
                mask = torch.zeros(len(seqs), p, dtype=torch.long)
                for r, s in enumerate(seqs):  # left padding: every last token lands in one column
                    ids[r, p - len(s) + 1:] = torch.as_tensor(np.asarray(s[:-1], np.int64))
                    mask[r, p - len(s) + 1:] = 1
                pos = (mask.cumsum(1) - 1).clamp_min(0)
                ids, mask, pos = ids.to(dev), mask.to(dev), pos.to(dev)
                out = lm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
                last = torch.as_tensor([int(s[-1]) for s in seqs], device=dev)[:, None]
                self.batches.append((out[self._cache_arg], mask, last, mask.sum(1, keepdim=True)))
        self.starts = list(range(0, len(token_ids), batch_size))

    @torch.no_grad()
    def logits(self, fwd_hooks: FwdHooks = (),
               hooks_for: Callable[[int, int], FwdHooks] | None = None) -> torch.Tensor:
        """(N, vocab) logits at the last token, with `fwd_hooks` active for that token only;
        `hooks_for(start, n)` adds the hooks of the batch of sequences start..start+n-1 (an
        intervention that differs per item: another model's activation, a value read off
        each item's CoT)."""
        from activations.generate import hooked

        out = []
        for start, (cache, mask, last, pos) in zip(self.starts, self.batches):
            hooks = list(fwd_hooks) + (list(hooks_for(start, len(last))) if hooks_for else [])
            with hooked(self.model, hooks) as lm:
                try:
                    step = lm(input_ids=last, attention_mask=torch.cat([mask, torch.ones_like(last)], 1),
                              position_ids=pos, use_cache=True, **{self._cache_arg: cache})
                finally:
                    _crop_to(cache, mask.shape[1])  # back to the prefix, even after a hook raised
            out.append(step.logits[:, -1].float().cpu())
        return torch.cat(out) if out else torch.zeros(0)
