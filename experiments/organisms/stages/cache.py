"""The organisms' hooks into the shared cache stage: the token set (held-out arithmetic
problems with their text variants, `experiments.cache_set`) and what each cache records."""

from __future__ import annotations

from experiments.rundir import RunDir


def _tokenizer(run: RunDir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(run.model("base"))  # every organism has the same tokenizer


def organism_tokens(run: RunDir, cfg) -> tuple[list, dict]:
    from experiments.cache_set import token_set
    from experiments.tasks import ArithmeticTask

    return token_set(ArithmeticTask(cfg.task), _tokenizer(run), cfg.cache.tokens, cfg.seed)


def organism_provenance(run: RunDir, cfg, name: str, model) -> dict:
    from activations.models import provenance, tokenizer_hash
    from experiments.config import to_dict

    return provenance(str(run.model(name)), model) | {
        "name": name, "tokenizer_hash": tokenizer_hash(_tokenizer(run)), "task": to_dict(cfg.task),
        "seed": cfg.seed, "tokens": to_dict(cfg.cache.tokens)}
