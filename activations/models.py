"""Loading a causal LM (a HF id or a local `save_pretrained` folder), as HF or as a
TransformerLens `TransformerBridge`."""

from __future__ import annotations

import torch


def load_hf(path_or_id: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer) with HF's Auto classes, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path_or_id)


def load_bridge(path_or_id: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """The model as a TransformerLens `TransformerBridge` (raw HF numerics, hook points
    such as `blocks.{l}.hook_resid_post`)."""
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(path_or_id, device=device, dtype=dtype)
