"""Batched generation (greedy by default) from a HF causal LM."""

from __future__ import annotations

import torch


@torch.inference_mode()
def generate_text(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 256,
                  temperature: float = 0.0, seed: int = 0) -> list[str]:
    """Continuations of `prompts` (text after the prompt, up to EOS, specials removed).

    temperature 0 is greedy decoding; > 0 samples (seeded by `seed`). Prompts are
    left-padded so every row's next token sits at the last position.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    out: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    sampling = {"do_sample": True, "temperature": temperature, "top_k": None, "top_p": None} \
        if temperature > 0 else {"do_sample": False}
    if temperature > 0:
        torch.manual_seed(seed)
    try:
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(prompts[i:i + batch_size], padding=True, return_tensors="pt").to(model.device)
            gen = model.generate(**enc, **sampling, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return out
