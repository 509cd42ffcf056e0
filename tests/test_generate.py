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


def test_a_bridge_that_computes_otherwise_keeps_its_own_path(tmp_path):
    """GPT-2's bridge re-implements its joint-QKV attention (other floats than HF's): no twin."""
    from activations.generate import hooked
    from activations.models import load_bridge
    from activations.plain import plain_model
    from experiments.pairs.tiny import save_tiny_arch

    bridge = load_bridge(save_tiny_arch(tmp_path / "g", "gpt2", seed=0))
    assert plain_model(bridge) is None
    with hooked(bridge, [("blocks.1.hook_resid_post", lambda x, hook: None)]) as lm:
        assert lm is bridge.original_model


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2"])
def test_residual_hooks_run_on_the_plain_twin_exactly(tmp_path, arch):
    """Residual-stream hooks run on the bridge's plain HF twin (`activations.plain`): the same
    tensors (no copy), the same logits, the same text as the bridge's own hooks, an edit
    applied on every forward, and nothing left attached afterwards."""
    from activations.generate import hooked
    from activations.models import load_bridge, load_tokenizer
    from activations.plain import plain_model
    from experiments.pairs.tiny import save_tiny_arch

    path = save_tiny_arch(tmp_path / "m", arch, seed=0)
    bridge, tok = load_bridge(path), load_tokenizer(path)
    plain = plain_model(bridge)
    assert plain is not None and plain_model(bridge) is plain  # built once
    ours = {p.data_ptr() for p in plain.parameters()}
    assert ours <= {p.data_ptr() for p in bridge.original_model.parameters()}  # shared, not copied
    prompts = ["Question: How many apples?", "A tank holds 120 liters."]
    enc = tok(prompts, padding=True, return_tensors="pt")
    with torch.no_grad(), bridge.hooks(fwd_hooks=[]):
        want = bridge.original_model(**enc).logits
    with torch.no_grad():
        assert torch.equal(plain(**enc).logits, want)
    calls = {"plain": 0, "bridge": 0}

    def push(who):
        def fn(x, hook):
            calls[who] += 1
            assert hook.name == bridge.hook_dict["blocks.1.hook_resid_post"].name  # as the bridge names it
            return x + 0.5
        return fn

    fast = generate_text(bridge, tok, prompts, 5, fwd_hooks=[("blocks.1.hook_resid_post", push("plain"))])
    # a name filter needs the bridge's own hook points: the bridge path, the same edit
    slow = generate_text(bridge, tok, prompts, 5, fwd_hooks=[(lambda n: n == "blocks.1.hook_resid_post",
                                                              push("bridge"))])
    assert fast == slow and calls["plain"] == calls["bridge"] >= 2  # the prefill, then every cached step
    assert fast != generate_text(bridge, tok, prompts, 5)  # the edit changed something
    decoder = plain.get_decoder()
    blocks = decoder.layers if hasattr(decoder, "layers") else decoder.h
    before = [len(b._forward_hooks) for b in blocks]  # transformers' own output recorders
    with hooked(bridge, [("blocks.1.hook_resid_post", push("plain"))]) as lm:
        assert lm is plain and len(blocks[1]._forward_hooks) == before[1] + 1
    assert [len(b._forward_hooks) for b in blocks] == before  # removed on exit
    with hooked(bridge, [("blocks.0.hook_mlp_out", lambda x, hook: None)]) as lm:
        assert lm is bridge.original_model  # any other hook: the bridge itself
