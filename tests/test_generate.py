"""Generation equals step-by-step argmax decoding without a KV cache, token for token."""

import torch

from activations.generate import generate_text
from activations.models import load_hf


def argmax_no_cache(model, tok, prompt: str, n: int) -> str:
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    for _ in range(n):
        with torch.no_grad():
            nxt = model(ids, use_cache=False).logits[0, -1].argmax()
        if nxt.item() == tok.eos_token_id:
            break
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return tok.decode(ids[0, 1:], skip_special_tokens=True)[len(prompt):]


def test_batched_left_padded_generation_is_exact(quick_run):
    model, tok = load_hf(str(quick_run[0] / "models" / "base"))
    # Prompts of different lengths, so the batch is left-padded; some unanswerable.
    prompts = ["Q:7+5=", "Q:1*3-4=", "Q:9-?=", "Q:2+2*2+2=", "Q:8=", "Q:3*?-1="]
    got = generate_text(model, tok, prompts, max_new_tokens=20, batch_size=4)
    assert got == [argmax_no_cache(model, tok, p, 20) for p in prompts]
    assert got[0].startswith("7+5=2")  # and the quick base does the sum


def test_bridge_cached_generation_is_exact_and_hooks_fire(quick_run):
    from activations.models import load_bridge

    path = str(quick_run[0] / "models" / "base")
    model, tok = load_hf(path)
    bridge = load_bridge(path)
    prompts = ["Q:7+5=", "Q:1*3-4=", "Q:9-?="]
    want = generate_text(model, tok, prompts, max_new_tokens=20)
    # HF's cached decoding through the bridge's modules (where its hooks live) ...
    assert generate_text(bridge.original_model, tok, prompts, max_new_tokens=20) == want
    # ... and TransformerLens' own generate with its default KV cache.
    for p, w in zip(prompts, want):
        out = bridge.generate(p, max_new_tokens=20, do_sample=False, verbose=False)
        assert out.startswith(p + w)
    fired = []
    with bridge.hooks(fwd_hooks=[("blocks.1.hook_resid_post", lambda x, hook: fired.append(x.shape) or x)]):
        generate_text(bridge.original_model, tok, prompts[:1], max_new_tokens=5)
    assert len(fired) >= 2 and fired[1][1] == 1  # prefill, then one token per cached step
