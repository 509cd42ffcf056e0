"""Activation-Steered Compression (ASC, Azizi et al. 2025, arXiv 2507.04742): one
difference-of-means vector from N paired concise and verbose CoTs of the same problems,
added to the residual stream at one layer during generation, so the model writes the
concise CoT. Training-free: no weight changes.

    h_L(text)    the residual stream after block L (`blocks.L.hook_resid_post`) of
                 `prompt + cot`, at its last token (position "last", the paper's section 4)
                 or averaged over the CoT's tokens ("mean")
    v_L          mean_n [h_L(prompt_n + concise_n) - h_L(prompt_n + verbose_n)]  (d_model,)
    steering     x <- x + scale * v_L at every position of every forward (the prompt, then
                 each new token), or only at the positions that choose a token ("last"),
                 `features.steer.add_direction`

The paper takes the verbose CoT from the model and the concise one from a stronger model
(GPT-4o); the organisms' concise CoT is the gold one, which plays that part.
"""

from __future__ import annotations

from typing import Literal, Sequence, get_args

import torch

from activations.generate import FwdHooks, hooked
from activations.tokens import right_pad
from features.steer import add_direction, mean_difference


Position = Literal["last", "mean"]
"""Where a text's activation is read: the CoT's last token, or the mean over its tokens."""


def resid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


@torch.inference_mode()
def cot_activations(bridge, tokenizer, prompts: Sequence[str], cots: Sequence[str], layers: Sequence[int],
                    position: Position = "last", batch_size: int = 64) -> dict[int, torch.Tensor]:
    """{layer: (N, d_model)}: each text's residual stream after block `layer` at the CoT's
    last token, or averaged over its tokens (the prompt is tokenized with BOS, the CoT
    without specials)."""
    if position not in get_args(Position):
        raise ValueError(f"position must be one of {get_args(Position)}, got {position!r}")
    if len(prompts) != len(cots) or not prompts:
        raise ValueError(f"need one CoT per prompt and at least one pair, got {len(prompts)} prompts, {len(cots)} CoTs")
    out: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    for i in range(0, len(prompts), batch_size):
        pre = tokenizer(list(prompts[i:i + batch_size]))["input_ids"]
        cot = tokenizer(list(cots[i:i + batch_size]), add_special_tokens=False)["input_ids"]
        if any(not c for c in cot):
            raise ValueError("every CoT must have at least one token")
        ids, mask = right_pad([p + c for p, c in zip(pre, cot)], tokenizer.pad_token_id)
        where = torch.zeros(ids.shape, dtype=torch.bool)  # (B, T) the CoT's tokens
        for r, (p, c) in enumerate(zip(pre, cot)):
            where[r, len(p) + len(c) - 1 if position == "last" else len(p):len(p) + len(c)] = True
        seen: dict[int, torch.Tensor] = {}

        def keep(layer: int):
            def fn(x: torch.Tensor, hook=None):
                seen[layer] = x.detach().float().cpu()
            return fn

        with hooked(bridge, [(resid_hook(L), keep(L)) for L in layers]) as lm:
            device = next(lm.parameters()).device
            lm(input_ids=ids.to(device), attention_mask=mask.long().to(device))
        w = where[..., None].float()
        for L in layers:
            out[L].append((seen[L] * w).sum(1) / w.sum(1))
    return {L: torch.cat(v) for L, v in out.items()}


def compression_vectors(bridge, tokenizer, prompts: Sequence[str], concise: Sequence[str], verbose: Sequence[str],
                        layers: Sequence[int], position: Position = "last",
                        batch_size: int = 64) -> dict[int, torch.Tensor]:
    """{layer: v_L}: the mean over the N pairs of (concise - verbose) CoT activations."""
    c = cot_activations(bridge, tokenizer, prompts, concise, layers, position, batch_size)
    v = cot_activations(bridge, tokenizer, prompts, verbose, layers, position, batch_size)
    return {L: mean_difference(c[L], v[L]) for L in layers}


def compression_hooks(layer: int, vector: torch.Tensor, scale: float, where: str = "all") -> FwdHooks:
    """The steering hook of ASC: `scale * vector` added after block `layer` at every position
    ("all") or only where a token is being chosen ("last": the prompt's last token, then
    each new one, as the paper steers "during each decoding step")."""
    return [(resid_hook(layer), add_direction(vector, scale, where))]
