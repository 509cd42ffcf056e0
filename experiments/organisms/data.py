"""Turning texts into training batches with loss masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerFast


@dataclass
class Batch:
    input_ids: torch.Tensor       # (B, T) right-padded, BOS first, EOS after the text
    attention_mask: torch.Tensor  # (B, T) 1 for real tokens
    loss_mask: torch.Tensor       # (B, T) 1 where the token is a prediction target

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


def make_batch(tokenizer: PreTrainedTokenizerFast, texts: list[str], loss_from: list[int],
               device: str = "cpu") -> Batch:
    """Tokenise `texts` + EOS; a token is a target when its first character is at or after
    `loss_from[i]` (a character index into texts[i]); the EOS is always a target."""
    enc = tokenizer([t + tokenizer.eos_token for t in texts], padding=True,
                    return_offsets_mapping=True, return_tensors="pt")
    starts = enc["offset_mapping"][..., 0]                       # (B, T)
    limit = torch.tensor(loss_from).unsqueeze(1)                  # (B, 1)
    real = enc["attention_mask"].bool()
    is_bos = torch.zeros_like(real)
    is_bos[:, 0] = True
    # The EOS is added as text, so its offset len(text) is always >= loss_from.
    loss = real & ~is_bos & (starts >= limit)
    return Batch(enc["input_ids"].to(device), enc["attention_mask"].to(device), loss.long().to(device))


def token_logprobs(model, batch: Batch) -> torch.Tensor:
    """log p(token_t | tokens_<t) for every position t >= 1: (B, T-1)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)     # (B, T-1, V)
    return logp.gather(-1, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def lm_loss(model, batch: Batch) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens."""
    mask = batch.loss_mask[:, 1:].float()
    return -(token_logprobs(model, batch) * mask).sum() / mask.sum().clamp(min=1)
