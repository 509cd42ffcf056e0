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

    def length_chunks(self, n_chunks: int) -> list["Batch"]:
        """The rows sorted by length in `n_chunks` groups, each cut to its longest row, so
        short rows stop paying for the padding of the longest (right padding: the cut
        only drops padding)."""
        lengths = self.attention_mask.sum(1)
        order = lengths.argsort()
        out = []
        for idx in order.tensor_split(min(n_chunks, len(order))):
            T = int(lengths[idx].max())
            out.append(Batch(self.input_ids[idx, :T], self.attention_mask[idx, :T], self.loss_mask[idx, :T]))
        return out


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


def lm_loss(model, batch: Batch, n_chunks: int = 3) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens.

    Computed over `n_chunks` length-sorted chunks of the batch (one backward through all
    of them): the same loss as one pass, with less compute spent on padding when row
    lengths differ (k = 1..5 chains: 16 to 48 tokens)."""
    total = sum((token_logprobs(model, c) * c.loss_mask[:, 1:]).sum() for c in batch.length_chunks(n_chunks))
    return -total / batch.loss_mask[:, 1:].sum().clamp(min=1)
