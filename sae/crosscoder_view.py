"""A crosscoder read from one model alone: an SAE-like view of one model's activation.

A base x variant crosscoder's code needs both models' activations of the token
(`sae.crosscoder`): f = TopK-by-threshold(ReLU(sum_m (s_m x_m - b_dec_m) W_enc[m] + b_enc)).
An intervention that runs the variant alone (steering, not patching) has no base
activation, so the view replaces the other model's encoder term by its mean over rows
like those it acts on (a constant vector, computed once from a cache: mean imputation),

    f(x) = ReLU((s x - b_dec[m]) W_enc[m] + c_other + b_enc) * (score > threshold)     (B, d_sae)
    decode(f) = (f W_dec[:, m] + b_dec[m]) / s                                           (B, d_in)

with the crosscoder's own selection score (activation x summed decoder norms) and
inference threshold. It exposes what the elicitation hooks use of an SAE: `encode`,
`decode`, `W_dec` (raw-unit decoder rows of model m) and `cfg.d_sae`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterable

import torch


@torch.no_grad()
def other_term(cc, batches: Iterable[torch.Tensor], other: int) -> torch.Tensor:
    """(d_sae,) the mean over the rows of raw paired batches (B, n_models, d_in) of model
    `other`'s encoder term (s x - b_dec) @ W_enc[other]."""
    total, n = torch.zeros(cc.d_sae, dtype=torch.float64), 0
    for x in batches:
        xo = x[:, other].to(cc.W_enc.device).float()
        total += ((xo * cc.scale[other] - cc.b_dec[other]) @ cc.W_enc[other]).double().sum(0).cpu()
        n += len(x)
    if not n:
        raise ValueError("no rows to average the other model's encoder term over (check the filter)")
    return (total / n).float()


class OneModelView:
    """Crosscoder `cc` as an SAE of model `m`'s activation, the other model's encoder term
    fixed to `c_other` (d_sae,) (from `other_term`)."""

    def __init__(self, cc, m: int, c_other: torch.Tensor):
        if cc.n_models != 2:
            raise ValueError(f"OneModelView needs a crosscoder of 2 models, got {cc.n_models}")
        if cc.threshold < 0:
            raise ValueError("the crosscoder has no inference threshold (calibrate it after training)")
        self.cc, self.m = cc, m
        self.c_other = c_other.to(cc.W_enc.device).float()
        self.cfg = SimpleNamespace(d_sae=cc.d_sae)

    @property
    def W_dec(self) -> torch.Tensor:
        """(d_sae, d_in) model m's decoder rows in raw units."""
        return self.cc.W_dec[:, self.m] / self.cc.scale[self.m]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        cc, m = self.cc, self.m
        pre = torch.relu((x.float() * cc.scale[m] - cc.b_dec[m]) @ cc.W_enc[m] + self.c_other + cc.b_enc)
        return pre * (pre * cc.decoder_norms().sum(-1) > cc.threshold)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        cc, m = self.cc, self.m
        return (f @ cc.W_dec[:, m] + cc.b_dec[m]) / cc.scale[m]
