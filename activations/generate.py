"""Batched generation and scoring from a causal LM, optionally under TransformerLens hooks.

`model` is a HF causal LM, or a `TransformerBridge` (see `activations.models.load_bridge`).
For a bridge, HF's own `generate` (and its KV cache) runs with the hooks attached for the
call: hooks fire on every forward (the prefill, then one position per cached step) and are
removed on exit, even when the code inside raises. When every hook is a residual-stream hook
(`blocks.L.hook_resid_post`, or there are none) it runs on the bridge's plain HF twin
(`activations.plain`: the same tensors and attention, torch hooks on the blocks), because
the bridge's per-module hook points cost ~18% of generation on a real model
(`benchmarks/bench_generate.py`); any other hook runs on `bridge.original_model`, whose
modules are the bridge's components, inside `bridge.hooks(fwd_hooks)`. Both paths are exact
(token for token equal to argmax decoding through the bridge without a cache, a test).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from activations.tokens import right_pad

FwdHooks = Sequence[tuple[str | Callable[[str], bool], Callable]]
"""TransformerLens forward hooks: (hook name or name filter, fn(tensor, hook) -> tensor | None)."""


def is_bridge(model) -> bool:
    return hasattr(model, "original_model") and hasattr(model, "hooks")


@contextmanager
def hooked(model, fwd_hooks: FwdHooks = ()) -> Iterator[torch.nn.Module]:
    """The HF module to call, with `fwd_hooks` attached for the duration of the block."""
    if not is_bridge(model):
        if fwd_hooks:
            raise ValueError("hooks need a TransformerBridge: load the model with "
                             "activations.models.load_bridge(path)")
        yield model
        return
    from activations.plain import hooked_plain

    with hooked_plain(model, fwd_hooks) as plain:  # residual-stream hooks only: the plain twin
        if plain is not None:
            yield plain
            return
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        yield model.original_model


def _device(model) -> torch.device:
    inner = model.original_model if is_bridge(model) else model
    return getattr(inner, "device", None) or next(inner.parameters()).device


@contextmanager
def _padding_side(tokenizer, side: str):
    old = tokenizer.padding_side
    tokenizer.padding_side = side
    try:
        yield
    finally:
        tokenizer.padding_side = old


def _eos_ids(lm, tokenizer) -> list[int]:
    """Every token that ends a turn: the tokenizer's EOS and the model's generation config's
    (instruct models end turns with <|im_end|> or <|eot_id|>, not the tokenizer's EOS)."""
    ids = [tokenizer.eos_token_id]
    extra = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
    ids += extra if isinstance(extra, list) else [extra]
    return sorted({i for i in ids if i is not None})


class _EndsWith(StoppingCriteria):
    """Per row: has the text generated so far come to end with one of `stop`? (HF's own
    `stop_strings` needs a tokenizer with a BPE-style vocabulary; this decodes the last few
    tokens, for any tokenizer.)"""

    def __init__(self, tokenizer, stop: Sequence[str]):
        self.tokenizer, self.stop = tokenizer, tuple(stop)
        self.tail = max(len(s) for s in self.stop) + 1  # tokens: at least a character each
        self.start: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        if self.start is None:  # the first call comes after the first new token
            self.start = input_ids.shape[1] - 1
        tails = self.tokenizer.batch_decode(input_ids[:, max(self.start, input_ids.shape[1] - self.tail):],
                                            skip_special_tokens=True)
        return torch.tensor([t.endswith(self.stop) for t in tails], device=input_ids.device)


@torch.inference_mode()
def generate_text(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 256,
                  temperature: float = 0.0, seed: int = 0, fwd_hooks: FwdHooks = (),
                  stop: Sequence[str] = (), logits_processors: Sequence[LogitsProcessor] = ()) -> list[str]:
    """Continuations of `prompts` (text after the prompt, up to EOS, specials removed).

    temperature 0 is greedy decoding; > 0 samples (seeded by `seed`). Prompts are
    left-padded so every row's next token sits at the last position. A row also ends once
    its continuation ends with one of `stop` (kept in the text), so a decoding loop can
    hand over to a tool there. `logits_processors` (HF `LogitsProcessor`s, e.g.
    `features.thought_switch.ThoughtSwitchPenalty`) change the raw logits before each
    choice, before HF's temperature divides them; one with a `reset()` method is reset
    before every batch.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    out: list[str] = []
    sampling = {"do_sample": True, "temperature": temperature, "top_k": None, "top_p": None} \
        if temperature > 0 else {"do_sample": False}
    if temperature > 0:
        torch.manual_seed(seed)
    device = _device(model)
    with _padding_side(tokenizer, "left"), hooked(model, fwd_hooks) as lm:
        eos = _eos_ids(lm, tokenizer)
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(list(prompts[i:i + batch_size]), padding=True, return_tensors="pt").to(device)
            # a fresh criterion per batch: it learns where this batch's prompts end
            stopping = {"stopping_criteria": StoppingCriteriaList([_EndsWith(tokenizer, stop)])} if stop else {}
            for p in logits_processors:
                getattr(p, "reset", lambda: None)()
            extra = {"logits_processor": LogitsProcessorList(logits_processors)} if logits_processors else {}
            gen = lm.generate(**enc, **sampling, **stopping, **extra, max_new_tokens=max_new_tokens,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


@torch.inference_mode()
def continuation_logprobs(model, tokenizer, prefixes: Sequence[str], continuations: Sequence[str],
                          batch_size: int = 256, fwd_hooks: FwdHooks = ()) -> list[float]:
    """log p(continuation | prefix), summed over the continuation's tokens, per pair.

    The prefix is tokenized as a prompt (with BOS), the continuation without special
    tokens, so the scored tokens are exactly the continuation's. Rows are right-padded.
    """
    if len(prefixes) != len(continuations):
        raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations")
    device = _device(model)
    out: list[float] = []
    with hooked(model, fwd_hooks) as lm:
        for i in range(0, len(prefixes), batch_size):
            pre = tokenizer(list(prefixes[i:i + batch_size]))["input_ids"]
            cont = tokenizer(list(continuations[i:i + batch_size]), add_special_tokens=False)["input_ids"]
            if any(not c for c in cont) or any(not p for p in pre):
                raise ValueError("every prefix and every continuation must have at least one token")
            ids, mask = right_pad([p + c for p, c in zip(pre, cont)], tokenizer.pad_token_id)
            target = torch.zeros_like(mask)  # positions whose token is scored
            for r, (p, c) in enumerate(zip(pre, cont)):
                target[r, len(p):len(p) + len(c)] = True
            mask = mask.long()
            ids, mask, target = ids.to(device), mask.to(device), target.to(device)
            logp = lm(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
            # the token at position t is predicted at position t - 1
            tok_lp = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
            out += torch.where(target[:, 1:], tok_lp, 0.0).sum(1).tolist()
    return out
