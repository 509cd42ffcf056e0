"""Tiny random-weight checkpoints of real architectures (Llama, Qwen2, GPT-2, Gemma-2) with a
small BPE tokenizer, saved as HF folders: the pair pipeline's CPU stand-ins for real model
pairs (`saelab tiny-pair`), and the tests' fixtures. Nothing is downloaded."""

from __future__ import annotations


def tiny_tokenizer():
    """A small byte-level BPE tokenizer (vocabulary ~400) trained in milliseconds on the
    shipped word problems: real subword behaviour for text-task tests, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from experiments.tasks.text import BUILTIN

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([BUILTIN.read_text(), "Question: Answer: Let's think step by step. The answer is ..."],
                            trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|pad|>")


TINY_ARCHS = ("llama", "qwen2", "gpt2", "gemma2")


def save_tiny_arch(path, arch: str, seed: int = 0, perturb: float = 0.0) -> str:
    """A random-weight checkpoint of a real architecture (transformers' own config class, small
    sizes) with `tiny_tokenizer`, saved as a HF folder; `perturb` adds seeded noise of that
    relative size to every weight (a stand-in "fine-tuned" model of the same base)."""
    import torch
    from transformers import (AutoModelForCausalLM, Gemma2Config, GPT2Config, LlamaConfig, Qwen2Config)

    tok = tiny_tokenizer()
    common = {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
              "pad_token_id": tok.pad_token_id}
    cfg = {
        "llama": lambda: LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, max_position_embeddings=256, **common),
        "qwen2": lambda: Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, max_position_embeddings=256, **common),
        "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=256, **common),
        "gemma2": lambda: Gemma2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                                       sliding_window=64, **common),
    }[arch]()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    if perturb:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(perturb * p.std().nan_to_num(0.02) * torch.randn(p.shape, generator=g))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


PAIR_MARKER = "tiny-pair.json"


def is_tiny_pair(folder) -> bool:
    """A folder `save_tiny_pair` wrote: its marker file."""
    from pathlib import Path

    return (Path(folder) / PAIR_MARKER).is_file()


def save_tiny_pair(out, arch: str, seed: int = 0, perturb: float = 0.05, overwrite: bool = False) -> None:
    """OUT/base and OUT/perturbed (`save_tiny_arch`), written into a temporary folder renamed
    when both are whole, so a failure (a full disk) leaves no half-written model."""
    import json
    from pathlib import Path

    from activations.atomic import building, claim_out_dir

    if arch not in TINY_ARCHS:
        raise ValueError(f"--arch must be one of {', '.join(TINY_ARCHS)}, got {arch!r}")
    if perturb < 0:
        raise ValueError(f"--perturb must be >= 0 (a relative noise size), got {perturb}")
    out = Path(out)
    claim_out_dir(out, "a tiny model pair", is_tiny_pair, overwrite, owns=lambda f: {"base", "perturbed", PAIR_MARKER})
    with building(out) as tmp:
        for name, p in (("base", 0.0), ("perturbed", perturb)):
            save_tiny_arch(tmp / name, arch, seed, p)
        (tmp / PAIR_MARKER).write_text(json.dumps({"arch": arch, "seed": seed, "perturb": perturb}, indent=1))
