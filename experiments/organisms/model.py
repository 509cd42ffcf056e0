"""Tiny LlamaForCausalLM configs for model organisms."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


@dataclass
class ModelConfig:
    """Shape of a model organism (a HF `LlamaForCausalLM`)."""

    d_model: int = 128
    """Residual stream width (HF `hidden_size`)."""
    n_layers: int = 3
    """Number of transformer blocks."""
    n_heads: int = 4
    """Attention heads per block (d_model must be divisible by it)."""
    d_mlp: int = 512
    """MLP hidden width (HF `intermediate_size`)."""
    max_len: int = 96
    """Longest sequence the model will see (RoPE needs no table, this is only recorded)."""

    def __post_init__(self):
        if min(self.d_model, self.n_layers, self.n_heads, self.d_mlp, self.max_len) < 1:
            raise ValueError("model sizes must all be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model with untied embeddings (as the prototypes used)."""
    import torch

    hf = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads, max_position_embeddings=cfg.max_len,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(hf)
