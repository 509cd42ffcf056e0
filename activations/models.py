"""Loading a causal LM (a HF id or a local `save_pretrained` folder), as HF or as a
TransformerLens `TransformerBridge`.

A `ModelSpec` says which model and how (revision, dtype, device, multi-GPU placement);
`load_bridge` takes one or a plain path/id. `check_same_tokenizer` refuses a base and a
fine-tuned model whose tokenizers differ (their activations would not be token-aligned).
An HF id that is not in the local cache fails at once when the hub is offline, with a
message saying how to fix it, instead of retrying.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch

ModelDtype = Literal["float32", "bfloat16", "float16"]
DTYPES = {name: getattr(torch, name) for name in get_args(ModelDtype)}


@dataclass
class ModelSpec:
    """One model of a pair: where it is and how to load it."""

    path: str
    """A HF id (e.g. Qwen/Qwen2.5-0.5B-Instruct) or a local save_pretrained folder."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of a HF id; ignored for a folder."""
    dtype: ModelDtype = "float32"
    """Weights dtype: float32, bfloat16 (GPU) or float16."""
    device: str | None = None
    """Torch device (cpu, cuda, cuda:1, ...); None: the run's device (the `device` argument)."""
    device_map: str | None = None
    """HF device map (e.g. auto) to spread a large model over several GPUs; overrides device."""
    n_devices: int | None = None
    """Number of GPUs TransformerLens spreads the layers over (with device_map)."""

    def __post_init__(self):  # a config file is checked against ModelDtype when read; this names the model
        if self.dtype not in DTYPES:
            raise ValueError(f"model {self.path}: dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")


def _spec(path_or_spec, device: str, dtype) -> ModelSpec:
    if isinstance(path_or_spec, ModelSpec):
        return path_or_spec if path_or_spec.device else replace(path_or_spec, device=device)
    name = next((k for k, v in DTYPES.items() if v == dtype), "float32")
    return ModelSpec(str(path_or_spec), device=device, dtype=name)


def load_tokenizer(path: str, revision: str | None = None):
    """The model's tokenizer, with a pad token (its EOS when it has none, as for GPT-2 and Llama)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def check_available(spec: ModelSpec) -> None:
    """Fail at once, with the fix, when a model cannot be loaded: a missing folder, or a HF id
    that is neither cached nor reachable (one quick connection instead of transformers' retries)."""
    from pathlib import Path

    p = Path(spec.path).expanduser()
    if p.is_dir():
        return
    if p.exists():
        raise FileNotFoundError(f"model {spec.path} is a file; give a save_pretrained folder or a HF id")
    if spec.path.startswith((".", "/", "~")) or spec.path.count("/") != 1:
        raise FileNotFoundError(f"model folder {spec.path} does not exist")
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(spec.path, "config.json", revision=spec.revision), str):
        return
    where = f"{spec.path!r} is neither a local folder nor in the local Hugging Face cache"
    fix = f"download it first (huggingface-cli download {spec.path}) or give a local folder"
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{where}, and the hub is offline (HF_HUB_OFFLINE=1): {fix}")
    if not hub_reachable():
        raise FileNotFoundError(f"{where}, and huggingface.co cannot be reached: {fix}")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a download from huggingface.co can start: one TCP connection (through a proxy
    or a mirror, assumed yes), instead of the libraries' minutes of retries."""
    import os
    import socket

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HF_ENDPOINT")):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_hf(path_or_id: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer) with HF's Auto classes, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path_or_id)


def load_bridge(path_or_spec: "str | ModelSpec", device: str = "cpu", dtype: torch.dtype = torch.float32,
                hf_model=None):
    """The model as a TransformerLens `TransformerBridge` (raw HF numerics, hook points
    such as `blocks.{l}.hook_resid_post`), with its KV cache repaired (see below).
    `path_or_spec`: a path or HF id (then `device` and `dtype` apply) or a `ModelSpec`.
    `hf_model`: an already loaded HF model to wrap (e.g. a LoRA merged into its base)."""
    from transformer_lens.model_bridge import TransformerBridge

    spec = _spec(path_or_spec, device, dtype)
    if hf_model is None:
        check_available(spec)
    placement = {"device_map": spec.device_map, "n_devices": spec.n_devices} if spec.device_map else {
        "device": spec.device}
    bridge = TransformerBridge.boot_transformers(spec.path, dtype=DTYPES[spec.dtype], revision=spec.revision,
                                                 hf_model=hf_model, **placement)
    repair_kv_cache(bridge)
    return bridge


def check_same_tokenizer(base, finetuned, base_name: str | None = None, finetuned_name: str | None = None
                         ) -> str | None:
    """Refuse a pair whose tokenizers differ: their token ids (and so their activations,
    position by position) would not be comparable. `base`, `finetuned`: paths / HF ids, or
    loaded tokenizers (then the names say which models they are).

    Tokenizers that differ only in special or control tokens (`<...>`) pass, with a note
    (returned): distilled models rename or add them (DeepSeek's R1 distills rename Llama's and
    Qwen's chat tokens, keeping their ids), and ordinary text then tokenizes the same, which is
    probed. A different BOS convention is said in the note (the caches use the base's token
    ids). None when the tokenizers are identical."""
    from transformers import AutoTokenizer

    a = AutoTokenizer.from_pretrained(base) if isinstance(base, str) else base
    b = AutoTokenizer.from_pretrained(finetuned) if isinstance(finetuned, str) else finetuned
    if tokenizer_hash(a) == tokenizer_hash(b):
        return None
    na = base_name or (base if isinstance(base, str) else "the base")
    nb = finetuned_name or (finetuned if isinstance(finetuned, str) else "the fine-tuned model")
    va, vb = a.get_vocab(), b.get_vocab()
    differ = {t for t in set(va) | set(vb) if va.get(t) != vb.get(t)}
    control = _control_tokens(a) | _control_tokens(b)
    if differ <= control and _same_ordinary(a, b):
        what = (f"differ only in {len(differ)} special or control token(s) (e.g. {sorted(differ)[:3]})" if differ
                else "have the same vocabulary and differ only in their special-token definitions")
        note = f"{na} and {nb} {what}; ordinary text tokenizes the same"
        ia, ib = a(_PROBE)["input_ids"], b(_PROBE)["input_ids"]
        if ia != ib:  # e.g. R1-Distill-Qwen adds a BOS that Qwen2.5-Math does not
            extra = lambda ids: a.convert_ids_to_tokens(ids[:1] + ids[-1:])  # noqa: E731
            note += (f", but they add different special tokens around it ({na}: {extra(ia)}, {nb}: {extra(ib)} "
                     f"first/last); the caches use {na}'s")
        return note
    ordinary = sorted(differ - control)
    detail = (f"{len(va)} vs {len(vb)} tokens" if len(va) != len(vb) else
              f"{len(ordinary)} tokens with other ids (e.g. {ordinary[:3]})" if ordinary else
              "same vocabulary, other merges or normaliser")
    raise ValueError(f"{na} and {nb} have different tokenizers ({detail}); a pair must share one "
                     "(use the fine-tune of that base, or the base it was fine-tuned from)")


# Ordinary text with the things tokenizers disagree on: digits, punctuation, spaces,
# newlines, and the reasoning words ReasonScore anchors on.
_PROBE = ("Question: 12 + 30 = 42, but wait... maybe 7.5%? Hmm, therefore however perhaps another.\n"
          "  Let me see. Alternatively, The answer is 42.\n\n#### 42")


def _control_tokens(tok) -> set[str]:
    """Special tokens, and added tokens that look like control tokens (`<...>`): R1 distills
    rename Qwen's chat tokens to `<｜User｜>` and friends and mark them non-special. An
    added ordinary word (`Therefore`) is not one: text containing it tokenizes differently."""
    added = {t.content for t in tok.added_tokens_decoder.values()}
    return set(tok.all_special_tokens) | {t for t in added if t.startswith("<") and t.endswith(">")}


def _same_ordinary(a, b) -> bool:
    """Whether the two tokenizers agree on everything but their control tokens: the model,
    pre-tokenizer and normaliser of their definitions without the added tokens, and the ids
    of an ordinary text (special tokens not added: their BOS is compared by the caller)."""
    import json

    def core(tok) -> dict:
        d = json.loads(tok.backend_tokenizer.to_str())
        d.pop("added_tokens", None)
        d.pop("post_processor", None)  # names the BOS / EOS strings; compared by the caller
        vocab = d.get("model", {}).get("vocab")
        if isinstance(vocab, dict):
            control = _control_tokens(tok)
            d["model"]["vocab"] = {t: i for t, i in vocab.items() if t not in control}
        return d

    return core(a) == core(b) and (a(_PROBE, add_special_tokens=False)["input_ids"]
                                   == b(_PROBE, add_special_tokens=False)["input_ids"])


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
