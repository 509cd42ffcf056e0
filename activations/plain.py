"""A plain HF model that shares a TransformerBridge's weights, for generation and scoring
whose hooks all sit on the residual stream after a block (`blocks.L.hook_resid_post`, what
steering and the pairs' interventions use).

The bridge wraps every HF module in a component with its own hook points, and every one of
them is a Python call on every forward: on SmolLM2-135M greedy generation through the bridge
runs at 0.82x plain HF `generate` (`benchmarks/bench_generate.py`). Here the model is
rebuilt from the bridge's config on the meta device and handed the bridge's own tensors
(`load_state_dict(assign=True)`: no copy), with the same (eager) attention the bridge runs,
so its logits equal the bridge's exactly. A residual-stream hook becomes a torch forward
hook on that block's HF module, called as TransformerLens calls it: fn(tensor, hook) with
`hook.name`, its return value (if any) replacing the block's output. Any other hook name,
or a name filter, is left to the bridge (`plain_hooks` returns None).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

_RESID_POST = re.compile(r"blocks\.(\d+)\.hook_resid_post")
_WRAPPED = "._original_component"


@dataclass(frozen=True)
class HookName:
    """What a TransformerLens hook function reads of its `hook` argument."""

    name: str


def plain_model(bridge) -> torch.nn.Module | None:
    """The bridge's plain HF twin (built once, kept on the bridge), or None when the bridge's
    modules do not map onto the HF model's one to one or its logits differ from the bridge's
    in any bit on a probe."""
    if bridge.__dict__.get("_saelab_plain") is None:  # False: tried, the bridge keeps its own path
        # in __dict__, not as a submodule: the bridge's modules, parameters and state dict stay its own
        object.__setattr__(bridge, "_saelab_plain", _build(bridge) or False)
    return bridge.__dict__["_saelab_plain"] or None


def _build(bridge) -> torch.nn.Module | None:
    from transformers import AutoModelForCausalLM

    wrapped = bridge.original_model
    config = wrapped.config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, attn_implementation=config._attn_implementation,
                                                 dtype=next(wrapped.parameters()).dtype)
    # the bridge's state dict also holds TransformerLens-style aliases of the same tensors
    # (attn.k.weight beside self_attn.k_proj.weight): take the HF names, all of them
    want = set(plain.state_dict())
    state = {k.replace(_WRAPPED, ""): v for k, v in wrapped.state_dict(keep_vars=True).items()}
    state = {k: v for k, v in state.items() if k in want}
    if set(state) != want:
        return None
    plain.load_state_dict(state, assign=True, strict=True)
    # buffers outside the state dict (RoPE's inv_freq): the bridge's own
    theirs = {k.replace(_WRAPPED, ""): b for k, b in wrapped.named_buffers()}
    for name, buf in list(plain.named_buffers()):
        if buf.is_meta:
            if name not in theirs:
                return None
            module, _, leaf = name.rpartition(".")
            plain.get_submodule(module)._buffers[leaf] = theirs[name]
    if any(p.is_meta for p in plain.parameters()):
        return None
    plain.tie_weights()
    plain.generation_config = wrapped.generation_config
    plain.eval()
    return plain if _same_logits(bridge, plain) else None


@torch.no_grad()
def _same_logits(bridge, plain) -> bool:
    """Whether the twin computes exactly what the bridge does on a probe (the bridge re-implements
    some attentions, e.g. GPT-2's joint QKV, in another order of operations: those keep the bridge)."""
    device = next(plain.parameters()).device
    ids = torch.arange(1, 9, device=device)[None] % plain.config.vocab_size
    with bridge.hooks(fwd_hooks=[]):
        want = bridge.original_model(input_ids=ids).logits
    return torch.equal(plain(input_ids=ids).logits, want)


def _blocks(plain) -> Sequence[torch.nn.Module] | None:
    decoder = plain.get_decoder() if hasattr(plain, "get_decoder") else None
    layers = getattr(decoder, "layers", None) or getattr(decoder, "h", None)
    return layers if isinstance(layers, torch.nn.ModuleList) else None


def plain_hooks(bridge, fwd_hooks) -> list[tuple[int, str, Callable]] | None:
    """[(block index, hook name, fn)] when every hook is a residual-stream hook by name, else None."""
    out = []
    for name, fn in fwd_hooks:
        m = _RESID_POST.fullmatch(name) if isinstance(name, str) else None
        if m is None:
            return None
        point = bridge.hook_dict.get(name)  # the name the bridge's own hook point gives (blocks.1.hook_out)
        if point is None:
            return None
        out.append((int(m.group(1)), point.name, fn))
    return out


@contextmanager
def hooked_plain(bridge, fwd_hooks) -> Iterator[torch.nn.Module | None]:
    """The plain twin with `fwd_hooks` attached as torch hooks for the block; None (and
    nothing attached) when the hooks or the model need the bridge itself."""
    hooks = plain_hooks(bridge, fwd_hooks)
    plain = plain_model(bridge) if hooks is not None else None
    blocks = _blocks(plain) if plain is not None else None
    if blocks is None or any(i >= len(blocks) for i, _, _ in hooks or ()):
        yield None
        return
    handles = []
    try:
        for i, name, fn in hooks:
            handles.append(blocks[i].register_forward_hook(_call_as_tl(fn, HookName(name))))
        yield plain
    finally:
        for h in handles:
            h.remove()


def _call_as_tl(fn: Callable, hook: HookName) -> Callable:
    def run(module, args, output):
        x = output[0] if isinstance(output, tuple) else output
        new = fn(x, hook=hook)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new
    return run
