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
    such as `blocks.{l}.hook_resid_post`), with its KV cache repaired (see below)."""
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(path_or_id, device=device, dtype=dtype)
    repair_kv_cache(bridge)
    return bridge


def tokenizer_hash(tokenizer) -> str:
    """A short hash of a fast tokenizer's full definition (vocabulary, merges, specials)."""
    import hashlib

    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def weights_hash(folder: str) -> str:
    """sha256 over a local model folder's weight files: what makes a model *this* model
    (a retrained model in the same folder gets a new hash)."""
    import hashlib
    from pathlib import Path

    files = sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no weight files (*.safetensors or *.bin)")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]


def provenance(path_or_id: str, model) -> dict:
    """What identifies a loaded model: its path or HF id, the hub revision (hub models) and
    a hash of the weights (local folders)."""
    from pathlib import Path

    inner = getattr(model, "original_model", model)
    local = Path(path_or_id).is_dir()
    return {"model": path_or_id, "model_revision": getattr(inner.config, "_commit_hash", None),
            "weights_hash": weights_hash(path_or_id) if local else None}


def _cache_as_past_key_values(module, args, kwargs):
    if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
        kwargs["past_key_values"] = kwargs["cache"]
    return args, kwargs


def repair_kv_cache(bridge) -> int:
    """Make cached decoding through a bridge exact again; returns the number of attention
    modules repaired.

    transformers 5 passes the KV cache to attention as `cache=`, while TransformerLens
    3.9's attention bridges read only `past_key_values=` (or `layer_past=`). The cache is
    then never filled, and every decoding step attends to itself alone: the divergence of
    `TransformerBridge.generate` from no-cache greedy decoding from the 2nd new token on.
    A forward pre-hook hands the cache over under the old name.
    """
    n = 0
    for module in bridge.original_model.modules():
        if hasattr(module, "_update_kv_cache") and not getattr(module, "_saelab_cache_repaired", False):
            module.register_forward_pre_hook(_cache_as_past_key_values, with_kwargs=True)
            module._saelab_cache_repaired = True
            n += 1
    return n
