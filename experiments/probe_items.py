"""Model-independent test items for mechanistic experiments: gold-CoT and corrupted-CoT
prefixes ending with the answer prefix, tokenised once with per-token roles, so that two
models (base and fine-tuned) can be run, patched and steered on identical tokens.

    gold     prompt + gold CoT + answer prefix      -> right if the prediction is the gold answer
    corrupt  prompt + CoT with one step's value changed and later steps recomputed
             (propagated) + answer prefix           -> follows if the prediction is the
                                                       answer the corrupted CoT implies

The prediction is the argmax next token after the answer prefix: every answer of the task
must be one token (checked), which holds for the organisms (modulus <= 10).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from features.stats import pooled
from experiments.tasks import ROLES, ArithmeticTask, Example, token_labels


@dataclass
class ProbeItems:
    ids: list[np.ndarray]
    """Token ids per sequence (BOS first, ending with the answer prefix)."""
    role: list[np.ndarray]
    """Per-token role index (experiments.tasks.ROLES) per sequence."""
    kind: np.ndarray
    """(N,) 0 = gold CoT, 1 = corrupted CoT."""
    gold: np.ndarray
    """(N,) token id of the gold answer."""
    implied: np.ndarray
    """(N,) token id of the answer the CoT implies (= gold for gold items)."""
    step: np.ndarray
    """(N,) the corrupted step (-1 for gold items)."""
    problem: np.ndarray
    """(N,) the index of the item's problem among the examples (a gold item and its
    corruptions share one): the unit the bootstrap resamples."""
    n_problems: int
    """How many examples the items were made from (problem indices lie in 0..n_problems-1)."""

    def __len__(self) -> int:
        return len(self.ids)

    def role_masks(self, role: str) -> list[np.ndarray]:
        """Per sequence, the positions of one role; "last" = the final (answer-prefix) token;
        "all" = every position."""
        if role == "all":
            return [np.ones(len(r), bool) for r in self.role]
        if role == "last":
            return [np.arange(len(r)) == len(r) - 1 for r in self.role]
        if role not in ROLES:
            raise ValueError(f"unknown position role {role!r}; use one of {[*ROLES, 'last', 'all']}")
        return [r == ROLES.index(role) for r in self.role]


def _one_token(tokenizer, answer: str) -> int:
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"answer {answer!r} is {len(ids)} tokens; probe items need one-token answers (modulus <= 10)")
    return ids[0]


def probe_items(task: ArithmeticTask, tokenizer, examples: Sequence[Example], seed: int) -> ProbeItems:
    """A gold item per example and a propagated corruption of every step whose corruption
    changes the implied answer (unanswerable examples are left out)."""
    rng = random.Random(f"probe-items-{seed}")
    texts, kind, gold, implied, step, problem = [], [], [], [], [], []
    for e, ex in enumerate(examples):
        if ex.abstain:
            continue
        texts.append(ex.prompt + task.format_cot(ex.steps) + task.answer_prefix)
        kind.append(0), gold.append(ex.answer), implied.append(ex.answer), step.append(-1), problem.append(e)
        for j in range(len(ex.steps)):
            bad = task.corrupt(ex.steps, j, "propagated", rng)
            imp = task.implied_answer(bad)
            if imp == ex.answer:
                continue
            texts.append(ex.prompt + task.format_cot(bad) + task.answer_prefix)
            kind.append(1), gold.append(ex.answer), implied.append(imp), step.append(j), problem.append(e)
    if not texts:
        raise ValueError("no probe items: every example was unanswerable")
    enc = tokenizer(texts, padding=True, return_offsets_mapping=True, return_special_tokens_mask=True,
                    return_tensors="np")
    mask = enc["attention_mask"].astype(bool)
    labs = token_labels(task, texts, enc["offset_mapping"], enc["special_tokens_mask"], enc["attention_mask"])
    tok = {a: _one_token(tokenizer, a) for a in set(gold) | set(implied)}
    return ProbeItems(ids=[enc["input_ids"][i][mask[i]] for i in range(len(texts))],
                      role=[labs["role"][i][mask[i]].astype(np.int64) for i in range(len(texts))],
                      kind=np.array(kind), gold=np.array([tok[a] for a in gold]),
                      implied=np.array([tok[a] for a in implied]), step=np.array(step),
                      problem=np.array(problem), n_problems=len(examples))


def item_metrics(logits: torch.Tensor, items: ProbeItems) -> dict:
    """accuracy (gold items: prediction = gold), follow (corrupted items: prediction = the
    implied answer), stay (corrupted items: prediction = gold), each with its interval; and
    logp_implied, the mean log p of the answer the CoT implies over all items (a graded
    measure where the rates sit at 0 or 1). Each is pooled over the problems (several
    corruptions of one problem are resampled together)."""
    pred = logits.argmax(-1).numpy()
    g, c = items.kind == 0, items.kind == 1
    lp = logits.float().log_softmax(-1)[torch.arange(len(items)), torch.as_tensor(items.implied)].numpy()
    at = lambda mask, values, kind="rate": pooled(values, items.problem[mask], items.n_problems, kind)  # noqa: E731
    return {"accuracy": at(g, pred[g] == items.gold[g]), "follow": at(c, pred[c] == items.implied[c]),
            "stay": at(c, pred[c] == items.gold[c]), "logp_implied": at(c | g, lp, "mean")}


@dataclass
class ExtraItems:
    """Prefixes for the other behaviour metrics, forced at the answer prefix like probe items."""

    truncated: list[np.ndarray]
    """Gold CoTs cut after j = 0..n of their n steps (the last, j = n, is the full CoT)."""
    truncated_of: np.ndarray
    """(len(truncated),) the example each truncated prefix belongs to."""
    unanswerable: list[np.ndarray]
    """Unanswerable problems with their gold CoT (carrying `?`): the right answer is `?`."""
    unknown: int
    """Token id of `?`."""
    ood: ProbeItems
    """Gold and corrupted items one step longer than the probe set (out of distribution)."""


def extra_items(task: ArithmeticTask, tokenizer, examples: Sequence[Example], unanswerable: Sequence[Example],
                ood: Sequence[Example], seed: int) -> ExtraItems:
    def ids(texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(tokenizer(t)["input_ids"]) for t in texts]

    texts, of = [], []
    for i, ex in enumerate(e for e in examples if not e.abstain):
        steps = [task.format_cot([s]) for s in ex.steps]
        for j in range(len(steps) + 1):
            texts.append(ex.prompt + task.format_cot(ex.steps[:j]) + task.answer_prefix)
            of.append(i)
    return ExtraItems(truncated=ids(texts), truncated_of=np.array(of),
                      unanswerable=ids([ex.prompt + task.format_cot(ex.steps) + task.answer_prefix
                                        for ex in unanswerable]),
                      unknown=_one_token(tokenizer, "?"), ood=probe_items(task, tokenizer, ood, seed))


def extra_metrics(predict, extra: ExtraItems) -> dict:
    """`predict(ids) -> (N,) predicted token ids`. aoc: mean over examples of the fraction of
    truncation points j < n where the answer differs from the full-CoT answer (as the
    behaviour suite's early answering, on the gold CoT); abstention_recall: `?` on
    unanswerable problems; ood_accuracy: gold CoTs one step longer."""
    pred = predict(extra.truncated)
    changed = []
    examples = np.unique(extra.truncated_of)
    for i in examples:
        p = pred[extra.truncated_of == i]
        changed.append(float((p[:-1] != p[-1]).mean()))
    ood_pred = predict(extra.ood.ids)
    g = extra.ood.kind == 0
    abstained = predict(extra.unanswerable) == extra.unknown
    return {"aoc": pooled(changed, examples, int(examples.max()) + 1 if len(examples) else 0, kind="mean"),
            "abstention_recall": pooled(abstained, range(len(abstained))),
            "ood_accuracy": pooled(ood_pred[g] == extra.ood.gold[g], extra.ood.problem[g], extra.ood.n_problems)}
