"""The causal effect of latents on an answer: ablate latent i (set to 0, SAE error kept) at
chosen positions and measure the change in log p(target token) at each sequence's last
position, averaged over sequences.

Attribution patching is the first pass: with the SAE spliced in as x = decode(f) + error
(error held fixed), the first-order change of log p from ablating latent i is
-sum_positions f_i * d log p / d f_i, one backward pass for every latent at once. Exact
ablation then checks the top candidates one forward each.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from activations.tokens import right_pad


def _mask(masks: Sequence[np.ndarray], shape) -> torch.Tensor:
    m = torch.zeros(shape, dtype=torch.bool)
    for r, mk in enumerate(masks):
        m[r, :len(mk)] = torch.as_tensor(np.asarray(mk, bool))
    return m


def _target_logprob(logits: torch.Tensor, valid: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    last = valid.sum(1) - 1
    lp = logits[torch.arange(len(last)), last.to(logits.device)].float().log_softmax(-1)
    return lp[torch.arange(len(last)), targets.to(lp.device)]


def attribution(model, sae, hook: str, token_ids: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                targets: np.ndarray, batch_size: int = 64) -> torch.Tensor:
    """(d_sae,) mean over sequences of the first-order change in log p(target) when each
    latent is ablated at the masked positions."""
    total = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    dev = next(model.parameters()).device
    for b in range(0, len(token_ids), batch_size):
        tokens, valid = right_pad(token_ids[b:b + batch_size])
        m = (_mask(masks[b:b + batch_size], tokens.shape) & valid.bool()).to(dev)
        store = {}

        def splice(x, hook):
            f = sae.encode(x.detach()).detach().requires_grad_(True)
            recon = sae.decode(f)
            store["f"] = f
            return recon + (x - recon).detach()

        with torch.enable_grad():
            logits = model.run_with_hooks(tokens.to(dev), fwd_hooks=[(hook, splice)])
            lp = _target_logprob(logits, valid, torch.as_tensor(targets[b:b + batch_size]))
            (grad,) = torch.autograd.grad(lp.sum(), store["f"])
        f = store["f"].detach()
        total += (-(f * grad) * m[..., None]).sum((0, 1)).double().cpu()
    return total / len(token_ids)


@torch.no_grad()
def ablation_effect(model, sae, hook: str, token_ids: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                    targets: np.ndarray, latents: Sequence[int], batch_size: int = 128) -> dict[int, float]:
    """Exact mean change in log p(target) when each latent (one at a time) is ablated at the
    masked positions, the SAE error kept."""
    from features.steer import ablate_latents

    dev = next(model.parameters()).device

    def mean_logprob(hook_fn_for) -> float:
        s = 0.0
        for b in range(0, len(token_ids), batch_size):
            tokens, valid = right_pad(token_ids[b:b + batch_size])
            m = (_mask(masks[b:b + batch_size], tokens.shape) & valid.bool()).to(dev)
            hooks = [(hook, hook_fn_for(m))] if hook_fn_for else []
            logits = model.run_with_hooks(tokens.to(dev), fwd_hooks=hooks)
            s += _target_logprob(logits, valid, torch.as_tensor(targets[b:b + batch_size])).sum().item()
        return s / len(token_ids)

    clean = mean_logprob(None)
    return {int(i): mean_logprob(lambda m, i=i: ablate_latents(sae, [int(i)], m)) - clean for i in latents}
