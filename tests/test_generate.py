"""Generation equals step-by-step argmax decoding without a KV cache, token for token."""

import pytest
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


PROMPTS = ["Q:7+5=", "Q:1*3-4=", "Q:9-?="]


@pytest.fixture(scope="module")
def base_pair(quick_run):
    """The quick base as HF model and as bridge, its tokenizer, and its greedy outputs."""
    from activations.models import load_bridge

    path = str(quick_run[0] / "models" / "base")
    model, tok = load_hf(path)
    return model, load_bridge(path), tok, generate_text(model, tok, PROMPTS, max_new_tokens=20)


def test_bridge_cached_generation_is_exact_and_hooks_fire(base_pair):
    _, bridge, tok, want = base_pair
    prompts = PROMPTS
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


def test_hooked_generation_noop_is_exact_and_steering_changes_it(base_pair):
    _, bridge, tok, want = base_pair
    prompts = PROMPTS
    noop = [("blocks.0.hook_resid_post", lambda x, hook: x)]
    assert generate_text(bridge, tok, prompts, max_new_tokens=20, fwd_hooks=noop) == want
    d_model = bridge.cfg.d_model
    push = [("blocks.0.hook_resid_post", lambda x, hook: x + 50.0 * torch.ones(d_model))]
    assert generate_text(bridge, tok, prompts, max_new_tokens=20, fwd_hooks=push) != want
    # hooks are gone afterwards, also after an error inside the hooked block
    def boom(x, hook):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        generate_text(bridge, tok, prompts, max_new_tokens=2, fwd_hooks=[("blocks.0.hook_resid_post", boom)])
    assert generate_text(bridge, tok, prompts, max_new_tokens=20) == want


def test_hooks_need_a_bridge():
    from tests.helpers import make_tiny_model

    model, tok = make_tiny_model()
    with pytest.raises(ValueError, match="hooks need a TransformerBridge"):
        generate_text(model, tok, ["Q:1+1="], 3, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: x)])


def test_continuation_logprobs_by_hand():
    from activations.generate import continuation_logprobs
    from tests.helpers import make_tiny_model

    model, tok = make_tiny_model()
    pairs = [("Q:1+2=", "1+2=3"), ("Q:9*9*9=", "9"), ("Q:1=", "7;A:")]
    got = continuation_logprobs(model, tok, [p for p, _ in pairs], [c for _, c in pairs], batch_size=2)
    for (prefix, cont), lp in zip(pairs, got):
        ids = tok(prefix + cont, return_tensors="pt")["input_ids"]  # one token per character
        n = len(cont)
        with torch.no_grad():
            logp = model(ids).logits[0].log_softmax(-1)
        want = sum(logp[t - 1, ids[0, t]].item() for t in range(ids.shape[1] - n, ids.shape[1]))
        assert abs(lp - want) < 1e-4


def test_turn_end_tokens_of_the_generation_config_stop_generation_too():
    from types import SimpleNamespace

    from activations.generate import _eos_ids

    tok = SimpleNamespace(eos_token_id=2)
    assert _eos_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 2, 5])), tok) == [2, 5, 7]
    assert _eos_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=9)), tok) == [2, 9]
    assert _eos_ids(SimpleNamespace(), tok) == [2]
