"""Model diffing with a crosscoder: which latents belong to the base, to the fine-tuned model,
or to both, and whether a "fine-tuned-only" latent is really absent from the base.

Latent classes (Minder et al. 2025, "Robustly identifying concepts introduced during chat
fine-tuning using crosscoders"; science-of-finetuning/diffing-toolkit
`src/diffing/utils/dictionary/analysis.py` L59-63 and L101-122): with |b|, |f| the norms of
latent j's base and fine-tuned decoders, the relative norm difference

    Delta_j = ((|b| - |f|) / max(|b|, |f|) + 1) / 2       0 = fine-tuned only, 1/2 = shared, 1 = base only

and the classes fine-tuned-only Delta < 0.1 (|f| > 5 |b|), base-only Delta > 0.9 (|b| > 5 |f|),
shared |Delta - 0.5| < 0.1 (the norms within a factor 1.25), "other" in between, and saelab's
"dead" for a latent that never fired. The relative decoder norm of Anthropic 2024,
r_j = |f| / (|b| + |f|), is kept as a column for comparison: its old 0.1 / 0.9 classes needed a
norm ratio above 9 for "fine-tuned-only" and had no "other" class.

Latent Scaling (Minder et al. 2025): for latent j with direction d_j (its decoder in the model
where it is larger, its "own" model; the reference fits the fine-tuned decoder,
`latent_scaling/closed_form.py` L645, and saelab mirrors it for base-own latents), the best
scale beta with which f_j(x) d_j explains a target y in model m,

    beta_j^m = d_j . sum_n f_j(x_n) y_n  /  (||d_j||^2 sum_n f_j(x_n)^2)     (1-D least squares)

(`latent_scaling/closed_form.py` L157-163), with y = the reconstruction error of m plus
latent j's own contribution (epsilon; `latent_scaling/utils.py` L122-163) or the crosscoder's
full reconstruction of m, decoder bias included (r; `utils.py` L166-197). nu_j = beta_j^other /
beta_j^own (`beta_analysis.py` L141, L159-161): near 0 for a latent the other model truly
lacks; large nu^eps means the other model still carries the direction in what the crosscoder
failed to reconstruct (a spurious model-specific latent), large nu^r that the other model's
reconstruction carries it through other latents (latent decoupling).

saelab used to regress nu^r on the reconstruction without latent j. That differs from the
reference by exactly d_j . W_dec[j, m] / ||d_j||^2 in beta^m (1 in the own model), and its
own-model beta, the rest of the reconstruction along d_j, is near 0 for a latent that alone
carries its direction, so the ratio was ill-conditioned (up to 4.8 apart); it is not kept.
All in each model's normalised units, as the crosscoder reconstructs them.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

# Delta thresholds of the latent classes (diffing-toolkit analysis.py L104-109)
FINETUNED_ONLY_BELOW, BASE_ONLY_ABOVE, SHARED_WITHIN = 0.1, 0.9, 0.1
CLASSES = ("base_only", "shared", "finetuned_only", "other", "dead")


def relative_decoder_norm(cc) -> torch.Tensor:
    """(d_sae,) r_j = ||d_j^1|| / (||d_j^0|| + ||d_j^1||), model 0 the base, model 1 the fine-tuned."""
    n = cc.decoder_norms().detach()
    return n[:, 1] / n.sum(-1).clamp_min(1e-12)


def norm_difference(cc) -> torch.Tensor:
    """(d_sae,) Delta_j = ((||d_j^0|| - ||d_j^1||) / max(...) + 1) / 2, model 0 the base
    (analysis.py L59-63); 1/2 for a latent with both decoders zero (NaN there)."""
    n = cc.decoder_norms().detach()
    return ((n[:, 0] - n[:, 1]) / n.max(-1).values.clamp_min(1e-12) + 1) / 2


@torch.no_grad()
def latent_scaling(cc, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Over batches of raw paired activations (B, 2, d_in): beta_eps, beta_rec of shape
    (2, d_sae) per model, and nu_eps, nu_rec (d_sae,) = beta of the other model / own model."""
    W = cc.W_dec.detach()                                        # (d_sae, 2, d_in)
    norms = cc.decoder_norms().detach()
    own = (norms[:, 1] >= norms[:, 0]).long()                    # (d_sae,) 1: fine-tuned (Delta <= 1/2)
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
            # sum_n f_nj d_j . y_n, with y = e + f_j W_dec[j, m] (eps) or x_hat (r)
            proj_err = (xs[:, m] - xs_hat[:, m]) @ D.T           # (B, d_sae)
            num_eps[m] += (f * proj_err + f.pow(2) * c[m]).double().sum(0).cpu()
            num_rec[m] += (f * (xs_hat[:, m] @ D.T)).double().sum(0).cpu()
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


def classify(delta: torch.Tensor, rates: torch.Tensor) -> np.ndarray:
    """Per latent from Delta (`norm_difference`): 'dead' (never fired), 'finetuned_only'
    (Delta < 0.1), 'base_only' (Delta > 0.9), 'shared' (|Delta - 0.5| < 0.1) or 'other'
    (analysis.py L104-122)."""
    d = delta.numpy()
    out = np.where(d < FINETUNED_ONLY_BELOW, "finetuned_only",
                   np.where(d > BASE_ONLY_ABOVE, "base_only",
                            np.where(np.abs(d - 0.5) < SHARED_WITHIN, "shared", "other")))
    return np.where(rates.numpy() == 0, "dead", out).astype(object)


def diff_table(cc, batches_factory) -> dict:
    """Per-latent Delta, class, r (for comparison), firing rate and Latent Scaling ratios, and
    the class counts. `batches_factory()` returns a fresh iterable of (B, 2, d_in) raw paired batches."""
    r = relative_decoder_norm(cc).cpu()
    delta = norm_difference(cc).cpu()
    rates = firing_rates(cc, batches_factory())
    ls = latent_scaling(cc, batches_factory())
    cls = classify(delta, rates)
    nu_eps, nu_rec = ls["nu_eps"].tolist(), ls["nu_rec"].tolist()
    nan = lambda v: v if np.isfinite(v) else None  # noqa: E731  (JSON has no NaN)
    latents = [{"latent": j, "delta": float(delta[j]), "r": float(r[j]), "class": str(cls[j]), "rate": float(rates[j]),
                "nu_eps": nan(nu_eps[j]), "nu_rec": nan(nu_rec[j])} for j in range(cc.d_sae)]
    counts = {c: int((cls == c).sum()) for c in CLASSES}
    return {"models": cc.models,
            "thresholds": {"of": "delta", "finetuned_only_below": FINETUNED_ONLY_BELOW,
                           "base_only_above": BASE_ONLY_ABOVE, "shared_within": SHARED_WITHIN},
            "counts": counts, "latents": latents}
