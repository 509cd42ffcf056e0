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
