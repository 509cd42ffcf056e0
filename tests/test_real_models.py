"""Real architectures, tiny and random: Llama, Qwen2, GPT-2 and Gemma-2 checkpoints built
from transformers' own configs load through the TransformerBridge by `ModelSpec`, expose the
hooks saelab reads, generate exactly with the KV cache, and pair only with a model of the
same tokenizer. Missing models fail at once with the fix."""

from __future__ import annotations

import time

import pytest
import torch

from activations.models import ModelSpec, check_same_tokenizer, load_bridge
from tests.helpers import TINY_ARCHS, save_tiny_arch, save_tiny_model


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_architecture_loads_hooks_and_generates_exactly(tmp_path, arch):
    from transformers import AutoTokenizer

    from activations.generate import generate_text

    path = save_tiny_arch(tmp_path / "base", arch)
    bridge = load_bridge(ModelSpec(path))
    tok = AutoTokenizer.from_pretrained(path)
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(bridge.cfg.n_layers)]
    assert set(hooks) <= set(bridge.hook_dict)
    ids = tok(["A tank holds 120 liters."], return_tensors="pt")["input_ids"]
    _, cache = bridge.run_with_cache(ids, names_filter=hooks)
    assert cache[hooks[-1]].shape == (1, ids.shape[1], bridge.cfg.d_model)
    # cached greedy generation = argmax decoding without a cache, token for token
    prompt = "Question: How many apples?"
    cached = generate_text(bridge, tok, [prompt], 6)[0]
    x = tok([prompt], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for _ in range(6):
            nxt = bridge(x)[:, -1].argmax(-1, keepdim=True)
            if int(nxt) == tok.eos_token_id:
                break
            x = torch.cat([x, nxt], 1)
    assert cached == tok.decode(x[0, -(x.shape[1] - tok([prompt], return_tensors="pt")["input_ids"].shape[1]):],
                                skip_special_tokens=True)
    # a perturbed copy is another model of the same tokenizer: a valid pair
    variant = save_tiny_arch(tmp_path / "ft", arch, perturb=0.05)
    check_same_tokenizer(path, variant)
    assert not torch.allclose(load_bridge(variant)(ids), bridge(ids))


def test_pairs_with_different_tokenizers_are_refused(tmp_path):
    a = save_tiny_arch(tmp_path / "a", "llama")
    b = save_tiny_model(tmp_path / "b")  # the arithmetic organisms' character tokenizer
    with pytest.raises(ValueError, match=r"have different tokenizers \(\d+ vs \d+ tokens\); a pair must share one"):
        check_same_tokenizer(a, b)


def test_missing_models_fail_at_once_with_the_fix(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="model folder ./nowhere does not exist"):
        load_bridge("./nowhere")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    t = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"'org/not-a-model' is neither a local folder nor in the local "
                                                r"Hugging Face cache, and the hub is offline.*huggingface-cli download"):
        load_bridge(ModelSpec("org/not-a-model"))
    assert time.perf_counter() - t < 5  # no retries
    with pytest.raises(ValueError, match="dtype must be one of"):
        ModelSpec("x", dtype="fp8")


def test_sae_hook_names_map_to_bridge_hooks(tmp_path):
    from sae.load import bridge_hook_name

    llama = load_bridge(save_tiny_arch(tmp_path / "l", "llama")).hook_dict
    gpt2 = load_bridge(save_tiny_arch(tmp_path / "g", "gpt2")).hook_dict
    assert bridge_hook_name("blocks.1.hook_resid_post", llama) == "blocks.1.hook_resid_post"
    assert bridge_hook_name("blocks.0.attn.hook_z", llama) == "blocks.0.attn.hook_z"  # HookedTransformer alias
    assert bridge_hook_name("model.layers.1", llama) == "blocks.1.hook_resid_post"   # sparsify / HF module paths
    assert bridge_hook_name("layers.0.mlp", llama) == "blocks.0.hook_mlp_out"
    assert bridge_hook_name("model.layers.0.self_attn", llama) == "blocks.0.hook_attn_out"
    assert bridge_hook_name("transformer.h.1", gpt2) == "blocks.1.hook_resid_post"
    # check_fits accepts an SAE recorded under the HF path of the hook it is given
    from sae_lens import TopKSAE, TopKSAEConfig

    from sae.load import check_fits

    sae = TopKSAE(TopKSAEConfig(d_in=32, d_sae=64, k=4))
    sae.cfg.metadata.hook_name = "model.layers.1"
    check_fits(sae, 32, "blocks.1.hook_resid_post")
    with pytest.raises(ValueError, match="the SAE was trained on 'model.layers.1', not 'blocks.0.hook_resid_post'"):
        check_fits(sae, 32, "blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match=r"the SAE's hook 'model.layers.7' is not a hook of this model"):
        bridge_hook_name("model.layers.7", llama)
    with pytest.raises(ValueError, match=r"'blocks.1.hook_nope' is not a hook of this model; e.g. \['blocks.1"):
        bridge_hook_name("blocks.1.hook_nope", llama)


def test_tokenizers_differing_only_in_special_tokens_pair_with_a_note(tmp_path):
    """A distilled model that renames or adds special tokens (DeepSeek-R1-Distill-Llama-8B vs
    Llama 3.1) still tokenizes ordinary text the same: accepted, with a note; an added
    ordinary token is not."""
    from transformers import AutoTokenizer

    a = save_tiny_arch(tmp_path / "a", "qwen2")
    assert check_same_tokenizer(a, a) is None
    special = AutoTokenizer.from_pretrained(a)
    special.add_special_tokens({"additional_special_tokens": ["<|think|>"]})
    note = check_same_tokenizer(a, special, "base", "distilled")
    assert note == ("base and distilled differ only in 1 special or control token(s) (e.g. ['<|think|>']); ordinary "
                    "text tokenizes the same")
    text = "Wait, 23 - 17 = 6."
    assert AutoTokenizer.from_pretrained(a)(text)["input_ids"] == special(text)["input_ids"]
    for word in ("wait", "Therefore"):  # an added ordinary word: text containing it tokenizes differently
        ordinary = AutoTokenizer.from_pretrained(a)
        ordinary.add_tokens([word])
        with pytest.raises(ValueError, match=r"base and ft have different tokenizers \(\d+ vs \d+ tokens\)"):
            check_same_tokenizer(a, ordinary, "base", "ft")


def test_r1_style_renamed_chat_tokens_pair_and_a_changed_bos_does_not(tmp_path):
    """DeepSeek's R1 distills rename the base's chat tokens (same ids) and mark them
    non-special, and may add a BOS the base does not: valid pairs, with a note."""
    import json

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from experiments.pairs.tiny import tiny_tokenizer

    base = tiny_tokenizer()
    base.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    spec = json.loads(base.backend_tokenizer.to_str())
    for t in spec["added_tokens"]:
        if t["content"] in ("<|im_start|>", "<|im_end|>"):
            t["content"] = {"<|im_start|>": "<\uff5cUser\uff5c>", "<|im_end|>": "<\uff5cAssistant\uff5c>"}[t["content"]]
            t["special"] = False
    r1 = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token="<|bos|>",
                                 eos_token="<|eos|>", pad_token="<|pad|>")
    assert r1.convert_tokens_to_ids("<\uff5cUser\uff5c>") == base.convert_tokens_to_ids("<|im_start|>")
    assert check_same_tokenizer(base, r1, "base", "r1").endswith("differ only in 4 special or control token(s) (e.g. "
                                                                 "['<|im_end|>', '<|im_start|>', '<\uff5cAssistant\uff5c>']); "
                                                                 "ordinary text tokenizes the same")

    from tokenizers import processors

    bos_first = tiny_tokenizer()
    bos_first.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", special_tokens=[("<|bos|>", bos_first.bos_token_id)])
    assert bos_first("7")["input_ids"][0] == bos_first.bos_token_id != tiny_tokenizer()("7")["input_ids"][0]
    # R1-Distill-Qwen adds a BOS that Qwen2.5-Math does not: a valid pair, and the note says so
    note = check_same_tokenizer(tiny_tokenizer(), bos_first, "base", "ft")
    assert note.startswith("base and ft have the same vocabulary and differ only in their special-token definitions; "
                           "ordinary text tokenizes the same, but they add different special tokens around it")
    assert note.endswith("the caches use base's")
