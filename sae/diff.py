"""Model diffing with a crosscoder: which latents belong to the base, to the fine-tuned model,
or to both, and whether a "fine-tuned-only" latent is really absent from the base.

Relative decoder norm (Anthropic 2024): r_j = ||d_j^ft|| / (||d_j^base|| + ||d_j^ft||);
0 = base-only, 1/2 = shared, 1 = fine-tuned-only.

Latent Scaling (Minder et al. 2025, "Robustly identifying concepts introduced during chat
fine-tuning using crosscoders"): for latent j with direction d_j (its decoder in the model
where it is larger, its "own" model), the best scale beta with which f_j(x) d_j explains a
target y in model m,

    beta_j^m = d_j . sum_n f_j(x_n) y_n  /  (||d_j||^2 sum_n f_j(x_n)^2)     (1-D least squares)

with y = the reconstruction error of m plus latent j's own contribution (epsilon) or the
reconstruction of m without latent j (r). nu_j = beta_j^other / beta_j^own: near 0 for a
latent the other model truly lacks; large nu^eps means the other model still carries the
direction in what the crosscoder failed to reconstruct (a spurious model-specific latent),
large nu^r that the other model's decoder shrank while the encoder still uses it.
All in each model's normalised units, as the crosscoder reconstructs them.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

BASE_ONLY, FINETUNED_ONLY = 0.1, 0.9  # r thresholds of the latent classes


def relative_decoder_norm(cc) -> torch.Tensor:
    """(d_sae,) r_j = ||d_j^1|| / (||d_j^0|| + ||d_j^1||), model 0 the base, model 1 the fine-tuned."""
    n = cc.decoder_norms().detach()
    return n[:, 1] / n.sum(-1).clamp_min(1e-12)


@torch.no_grad()
def latent_scaling(cc, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Over batches of raw paired activations (B, 2, d_in): beta_eps, beta_rec of shape
    (2, d_sae) per model, and nu_eps, nu_rec (d_sae,) = beta of the other model / own model."""
    W = cc.W_dec.detach()                                        # (d_sae, 2, d_in)
    own = (relative_decoder_norm(cc) >= 0.5).long()              # (d_sae,)
    D = W[torch.arange(cc.d_sae), own]                           # (d_sae, d_in) own directions
    c = torch.einsum("sd,smd->ms", D, W)                         # (2, d_sae) d_j . W_dec[j, m]
    f2 = torch.zeros(cc.d_sae, dtype=torch.float64)
    num_eps = torch.zeros(2, cc.d_sae, dtype=torch.float64)
    num_rec = torch.zeros(2, cc.d_sae, dtype=torch.float64)
    for x in batches:
        x = x.to(W.device)
        f = cc.encode(x)                                         # (B, d_sae)
        xs = x * cc.scale[:, None]
        xs_hat = torch.einsum("bs,smd->bmd", f, W) + cc.b_dec    # (B, 2, d_in)
        f2 += f.double().pow(2).sum(0).cpu()
        for m in range(2):
            # sum_n f_nj d_j . y_n, with y = e + f_j W_dec[j, m] or x_hat - f_j W_dec[j, m]
            proj_err = (xs[:, m] - xs_hat[:, m]) @ D.T           # (B, d_sae)
            proj_rec = xs_hat[:, m] @ D.T
            own_part = f.pow(2) * c[m]
            num_eps[m] += (f * proj_err + own_part).double().sum(0).cpu()
            num_rec[m] += (f * proj_rec - own_part).double().sum(0).cpu()
    den = D.double().pow(2).sum(-1).cpu() * f2
    den = torch.where(den > 0, den, torch.nan)
    beta_eps, beta_rec = num_eps / den, num_rec / den
    idx = own.cpu()
    take = lambda b, which: b[which, torch.arange(cc.d_sae)]  # noqa: E731
    return {"beta_eps": beta_eps, "beta_rec": beta_rec,
            "nu_eps": take(beta_eps, 1 - idx) / take(beta_eps, idx),
            "nu_rec": take(beta_rec, 1 - idx) / take(beta_rec, idx)}


@torch.no_grad()
def firing_rates(cc, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """(d_sae,) fraction of tokens on which each latent fires."""
    fires, n = torch.zeros(cc.d_sae, dtype=torch.float64), 0
    for x in batches:
        fires += (cc.encode(x.to(cc.W_dec.device)) > 0).double().sum(0).cpu()
        n += len(x)
    return fires / max(n, 1)


def classify(r: torch.Tensor, rates: torch.Tensor) -> np.ndarray:
    """Per latent: 'dead' (never fired), 'base_only' (r < 0.1), 'finetuned_only' (r > 0.9) or 'shared'."""
    out = np.where(r.numpy() < BASE_ONLY, "base_only", np.where(r.numpy() > FINETUNED_ONLY, "finetuned_only", "shared"))
    return np.where(rates.numpy() == 0, "dead", out).astype(object)


def diff_table(cc, batches_factory) -> dict:
    """Per-latent r, class, firing rate and Latent Scaling ratios, and the class counts.
    `batches_factory()` returns a fresh iterable of (B, 2, d_in) raw paired batches."""
    r = relative_decoder_norm(cc).cpu()
    rates = firing_rates(cc, batches_factory())
    ls = latent_scaling(cc, batches_factory())
    cls = classify(r, rates)
    nu_eps, nu_rec = ls["nu_eps"].tolist(), ls["nu_rec"].tolist()
    nan = lambda v: v if np.isfinite(v) else None  # noqa: E731  (JSON has no NaN)
    latents = [{"latent": j, "r": float(r[j]), "class": str(cls[j]), "rate": float(rates[j]),
                "nu_eps": nan(nu_eps[j]), "nu_rec": nan(nu_rec[j])} for j in range(cc.d_sae)]
    counts = {c: int((cls == c).sum()) for c in ("base_only", "shared", "finetuned_only", "dead")}
    return {"models": cc.models, "thresholds": {"base_only": BASE_ONLY, "finetuned_only": FINETUNED_ONLY},
            "counts": counts, "latents": latents}
