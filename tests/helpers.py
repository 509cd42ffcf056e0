"""Tiny-object factories for tests."""

from __future__ import annotations

from experiments.organisms.model import ModelConfig, build_model
from experiments.organisms.tokenizer import build_tokenizer
from experiments.pairs.tiny import TINY_ARCHS, save_tiny_arch, tiny_tokenizer  # noqa: F401 (the tests' fixtures)


def make_tiny_model(seed: int = 0, **overrides):
    """(model, tokenizer): a random-weight d32, 2-layer Llama organism."""
    tok = build_tokenizer()
    cfg = ModelConfig(**{"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64, **overrides})
    return build_model(cfg, tok, seed).eval(), tok


def save_tiny_model(path, seed: int = 0, **overrides) -> str:
    """A random-weight tiny organism saved as a HF folder (model + tokenizer); returns the path."""
    model, tok = make_tiny_model(seed, **overrides)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def plus_minus_sae(d: int, keep: int):
    """A hand-built standard SAE: latents +e_i and -e_i for the first `keep` dimensions, so it
    reconstructs exactly the part of x in those dimensions and nothing else."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=2 * keep))
    eye = torch.eye(d)[:, :keep]                       # (d, keep)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))     # (d, 2 keep)
        sae.W_dec.copy_(torch.cat([eye, -eye], 1).T)   # (2 keep, d)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae
