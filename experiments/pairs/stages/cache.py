"""The pairs' hooks into the shared cache stage: the token set (per problem the gold text,
a mistake text and every model's own generated CoT, all in the base tokenizer's encoding,
reasoning words labelled) and what each cache records of its model."""

from __future__ import annotations

from experiments.rundir import RunDir


def pair_tokens(run: RunDir, cfg) -> tuple[list, dict]:
    from experiments.pairs.stages.load import load_behavior, problems, prompts as prompts_of, tokenizer_of
    from experiments.pairs.tokens import texts, token_set

    items = problems(cfg)
    base_tok = tokenizer_of(run, cfg, "base")
    prompts = prompts_of(cfg, base_tok, items)
    gens = {m: b["generations"] for m, b in load_behavior(run, cfg).items()}
    return token_set(base_tok, texts(items, prompts, gens, cfg.task, cfg.cache.texts, cfg.seed), cfg.cache.words)


def pair_provenance(run: RunDir, cfg, name: str, model) -> dict:
    from activations.models import provenance
    from experiments.config import to_dict

    spec = cfg.spec(name, run)
    # the whole spec: a cache of the same tokens from other weights (dtype) is another cache
    return provenance(spec.path, model) | {"name": name, "spec": to_dict(spec), "task": to_dict(cfg.task),
                                          "seed": cfg.seed, "texts": cfg.cache.texts, "words": cfg.cache.words}
