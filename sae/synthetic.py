"""Ground truth for the whole SAE data path: SAELens' synthetic data (`sae_lens.synthetic`,
known feature directions) written into an activation cache by saelab's own writer, an SAE
trained by saelab's trainer from it, and the mean correlation coefficient (MCC: Hungarian
matching of decoder rows to true features, mean |cos|) of what it learned.

A failure here is a failure of saelab's writing, storage dtype, shuffling, normalisation or
export, not of SAELens alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

HOOK = "blocks.0.hook_resid_post"


class SyntheticActivations:
    """Stands in for a language model in `write_cache`: every token position gets a fresh
    sample of SAELens' synthetic model at one hook, whatever the token."""

    def __init__(self, synthetic_model):
        self.synthetic = synthetic_model
        self.cfg = type("Cfg", (), {"n_layers": 1, "d_model": synthetic_model.cfg.hidden_dim})()
        self.hook_dict = {HOOK: None}
        self._p = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._p])

    @torch.no_grad()
    def run_with_cache(self, tokens, names_filter, stop_at_layer=None):
        b, t = tokens.shape
        return None, {h: self.synthetic.sample(b * t).view(b, t, -1) for h in names_filter}


def synthetic_model(n_features: int = 256, d_model: int = 64, seed: int = 0):
    """SAELens' synthetic model with its defaults (Zipfian firing probabilities between 0.01
    and 0.3, unit magnitudes, a bias of norm 1), seeded."""
    from sae_lens.synthetic.synthetic_model import SyntheticModel, SyntheticModelConfig

    torch.manual_seed(seed)
    return SyntheticModel(SyntheticModelConfig(num_features=n_features, hidden_dim=d_model, seed=seed))


def write_synthetic_cache(model, out: str | Path, rows: int, seq_len: int = 128, seed: int = 0) -> None:
    """A cache of `rows` synthetic activations (rows // seq_len sequences) at HOOK."""
    from activations.cache import CacheWriteConfig, write_cache

    torch.manual_seed(seed)
    ids = [np.zeros(seq_len, np.int64) for _ in range(rows // seq_len)]
    write_cache(SyntheticActivations(model), ids, {}, out, CacheWriteConfig(hooks=[HOOK]),
                {"model": f"sae_lens.synthetic {model.cfg.num_features}x{model.cfg.hidden_dim}"}, progress=False)


def feature_mcc(sae, model) -> float:
    """MCC between the SAE's decoder rows and the true feature directions."""
    from sae_lens.synthetic.evals import mean_correlation_coefficient

    return mean_correlation_coefficient(sae.W_dec.detach().float().cpu(),
                                        model.feature_dict.feature_vectors.detach().float().cpu())
