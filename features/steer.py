"""Interventions on a residual stream, as TransformerLens hook factories.

Each factory returns `fn(x, hook) -> x'` for a hook whose activation x is (B, T, d_model);
pass `[(hook_name, fn)]` as `fwd_hooks` to `activations.generate` (generation with the KV
cache, scoring) or to `bridge.hooks(...)` / `run_with_hooks` (forward passes). Hooks are
attached only inside those context managers, so they are removed on exit and on errors.

    clamp_latents   encode, set chosen latents to values, decode, add back the SAE error
                    (Galichin et al. 2025 clamp to strength x the latent's max activation)
    ablate_latents  the same with values 0: the latents' contribution is removed, the
                    SAE error kept, so only what those latents carry changes
    add_direction   x + alpha * d  (e.g. a decoder row, or a difference-of-means vector)
    project_out     x - (x . u) u, u = d / ||d||

`positions`: "all" (every position of every forward: the whole prompt, then each new
token) or "last" (the last position of each forward: the prompt's last token, then each
new token), or a (B, T) bool mask for a single forward pass of known shape.

What an intervention achieved, in both studies, is `features.stats.gap_recovered`: the share
of the base -> fine-tuned gap of a metric that steering the fine-tuned model closes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Positions = str | torch.Tensor


def _where(positions: Positions, x: torch.Tensor) -> torch.Tensor:
    """(B, T, 1) bool: where the intervention applies."""
    if isinstance(positions, torch.Tensor):
        if positions.shape != x.shape[:2]:
            raise ValueError(f"a position mask of shape {tuple(positions.shape)} for activations of shape "
                             f"{tuple(x.shape[:2])}; masks are for one forward pass of known shape")
        return positions.to(x.device, torch.bool)[..., None]
    _check_positions(positions)
    if positions == "all":
        return torch.ones(*x.shape[:2], 1, dtype=torch.bool, device=x.device)
    m = torch.zeros(*x.shape[:2], 1, dtype=torch.bool, device=x.device)
    m[:, -1] = True
    return m


def _check_positions(positions: Positions) -> None:
    if not isinstance(positions, torch.Tensor) and positions not in ("all", "last"):
        raise ValueError(f"positions must be 'all', 'last' or a (B, T) bool mask, got {positions!r}")


def _apply(positions: Positions, steered: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`steered` where the intervention applies, `x` elsewhere (no copy when it applies everywhere,
    as in every cached generation step under "last")."""
    if isinstance(positions, str) and (positions == "all" or (positions == "last" and x.shape[1] == 1)):
        return steered
    return torch.where(_where(positions, x), steered, x)


def check_latents(sae, latents: Sequence[int]) -> list[int]:
    bad = [i for i in latents if not 0 <= int(i) < sae.cfg.d_sae]
    if bad:
        raise ValueError(f"latent(s) {bad} out of range: the SAE has {sae.cfg.d_sae} latents (0..{sae.cfg.d_sae - 1})")
    return [int(i) for i in latents]


def check_hook(model, hook_name: str, sae=None) -> None:
    """Refuse a hook the model does not have, or an SAE of another width."""
    names = getattr(model, "hook_dict", None)
    if names is None:
        raise ValueError("interventions need a TransformerBridge: load the model with activations.models.load_bridge")
    if hook_name not in names:
        close = sorted(h for h in names if h.endswith(hook_name.split(".")[-1]))[:4]
        raise ValueError(f"the model has no hook {hook_name!r}" + (f"; e.g. {close}" if close else ""))
    if sae is not None and sae.cfg.d_in != model.cfg.d_model:
        raise ValueError(f"the SAE reads d_in={sae.cfg.d_in} but the model's d_model is {model.cfg.d_model}")


def clamp_latents(sae, latents: Sequence[int], values: float | Sequence[float] | torch.Tensor,
                  positions: Positions = "all") -> Callable:
    latents = check_latents(sae, latents)
    v = torch.as_tensor(values, dtype=torch.float32)
    if v.ndim and v.numel() != len(latents):
        raise ValueError(f"{v.numel()} clamp values for {len(latents)} latents; give one value or one per latent")
    v = v.expand(len(latents)).clone()
    # decode(f') + (x - decode(f)) = x + (f'_L - f_L) @ W_dec[L] for the plain affine decoder:
    # only the clamped rows of the decoder are needed (the full decode would double the cost).
    linear = getattr(sae.cfg, "normalize_activations", "none") == "none" and getattr(
        sae.cfg, "reshape_activations", "none") == "none"
    rows = sae.W_dec[latents].detach()
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):  # SAELens' TopK decodes f / ||W_dec||
        rows = rows / sae.W_dec[latents].detach().norm(dim=-1, keepdim=True)

    _check_positions(positions)
    idx = torch.tensor(latents)
    cast = {}  # the clamp values, decoder rows and indices on the activation's device, made once
    few_topk = linear and _is_plain_topk(sae) and len(latents) <= 32

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        dev = sae.W_enc.device
        if dev not in cast:
            cast[dev] = (v.to(dev, sae.W_enc.dtype), rows.to(dev, sae.W_enc.dtype), idx.to(dev))
        target, r, i = cast[dev]
        # the clamped latents' activations without the full top-k (slow on CPU); it compares
        # every (row, clamped latent) with all d_sae pre-activations: bounded to ~128 MB
        if few_topk and x.numel() // x.shape[-1] * len(latents) * sae.cfg.d_sae <= 2 ** 25:
            delta = (target - _topk_acts_at(sae, x, i)) @ r
            steered = x + delta.to(x.dtype)
        elif linear:
            feats = sae.encode(x.to(sae.W_enc.dtype))
            delta = (target - feats.index_select(-1, i)) @ r
            steered = x + delta.to(x.dtype)
        else:
            feats = sae.encode(x.to(sae.W_enc.dtype))
            error = x - sae.decode(feats).to(x.dtype)
            feats = feats.clone()
            feats[..., latents] = target
            steered = sae.decode(feats).to(x.dtype) + error
        return _apply(positions, steered, x)

    return fn


def _is_plain_topk(sae) -> bool:
    from sae_lens.saes.topk_sae import TopK, TopKSAE

    return type(sae).encode is TopKSAE.encode and isinstance(sae.activation_fn, TopK) and not getattr(
        sae.activation_fn, "use_sparse_activations", False)


def _topk_acts_at(sae, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(..., len(idx)): SAELens TopK `encode(x)[..., idx]` without the top-k over all latents
    (torch.topk costs ~10x the encoder matmul on CPU): latent j is active iff fewer than k
    pre-activations exceed its own (ties have probability zero), and then ReLU(pre_j)."""
    pre = sae.process_sae_in(x) @ sae.W_enc + sae.b_enc
    if sae.cfg.rescale_acts_by_decoder_norm:
        pre = pre * sae.W_dec.norm(dim=-1)
    sel = pre.index_select(-1, idx)
    # float 0/1 and a float sum: summing a bool tensor is ~10x slower on CPU
    above = (pre.unsqueeze(-2) - sel.unsqueeze(-1)).gt_(0).sum(-1)  # (..., len(idx))
    return sel.relu() * (above < sae.activation_fn.k)


def ablate_latents(sae, latents: Sequence[int], positions: Positions = "all") -> Callable:
    return clamp_latents(sae, latents, 0.0, positions)


def add_direction(direction: torch.Tensor, alpha: float, positions: Positions = "all") -> Callable:
    _check_positions(positions)
    d = direction.detach().float()

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        return _apply(positions, x + alpha * d.to(x.device, x.dtype), x)

    return fn


def project_out(direction: torch.Tensor, positions: Positions = "all") -> Callable:
    _check_positions(positions)
    u = direction.detach().float()
    u = u / u.norm().clamp_min(1e-12)

    def fn(x: torch.Tensor, hook=None) -> torch.Tensor:
        uu = u.to(x.device, x.dtype)
        return _apply(positions, x - (x @ uu)[..., None] * uu, x)

    return fn


def mean_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The difference-of-means steering vector mean_n (a_n - b_n) over N paired rows (N, d)
    (Azizi et al. 2025 use 50 pairs)."""
    if a.shape != b.shape or a.ndim != 2 or len(a) == 0:
        raise ValueError(f"mean_difference needs two (N, d) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (a.float() - b.float()).mean(0)


@torch.no_grad()
def latent_max(sae, batches) -> torch.Tensor:
    """(d_sae,) the largest activation of each latent over batches of (B, d_in) rows: the scale
    clamping strengths are multiples of."""
    out = torch.zeros(sae.cfg.d_sae)
    for x in batches:
        out = torch.maximum(out, sae.encode(x.to(sae.W_enc.device, sae.W_enc.dtype)).amax(0).float().cpu())
    return out
