"""Tiny-object factories for tests."""

from __future__ import annotations

from experiments.organisms.model import ModelConfig, build_model
from experiments.organisms.tokenizer import build_tokenizer


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
