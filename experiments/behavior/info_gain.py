"""InfoGain per step, after Wu et al. 2025 ("Knowledge or Reasoning? A Close Look at How
LLMs Think Across Domains"), who report SFT cutting it by 38.9%.

For an item with the model's own n-step CoT, let NLL_j = -log p(gold answer | question +
first j steps + answer prefix) under a scorer model. The gain of step j is NLL_{j-1} -
NLL_j; an item's InfoGain per step is the mean gain over its steps, (NLL_0 - NLL_n) / n,
and the reported value is the mean over items. Where Wu et al. take the drop in the
scorer's perplexity of the whole answer string, we score the gold answer's tokens alone
(summed log-probability after the answer prefix, in nats): the answers here are a token or
two, and the answer prefix is fixed, so this isolates what the steps tell about the answer.

Scored by a reference model (default: the base), InfoGain asks whether the steps carry
information toward the answer for a reader that reasons normally; scored by the model
itself, whether the model's own probability of the gold answer still waits for its steps.

`info_gain_ppl` is Wu et al.'s own definition (UCSC-VLAA/ReasoningEval `metrics.py`
`InformationGainScorer.forward`, L338-378): PPL_j = the scorer's perplexity of the whole text
question + first j steps + answer prefix + gold answer (every token after the first), for
j = 0..n; Info_gain = sum_j (PPL_{j-1} - PPL_j) / (n + 1), the code dividing by the length of
its list of n + 1 perplexities. Two choices of the reference are kept apart from the task:
the steps are joined and the answer introduced in the task's own format (the code's "\n" and
" Answer: " would be text these models never saw), and CoTs of at most `min_steps` steps are
skipped only when asked (the code means to skip <= 2 steps, L362, but as published compares
a list with an int; at k = 2 that would skip every CoT). The literature's -38.9% is this
number under one fixed scorer, so the report compares the reference-scored one with it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from activations.perplexity import perplexities
from experiments.behavior.core import Subject, answer_nll
from experiments.behavior.faithfulness import own_steps_text, usable
from experiments.tasks import Example, Parsed, Task
from features.stats import mean, pooled


def scorable(ex: Example, p: Parsed) -> bool:
    """An answerable item with a usable own CoT."""
    return not ex.abstain and usable(p)


def info_gain(scorer: Subject, task: Task, examples: Sequence[Example], parsed: Sequence[Parsed]) -> dict:
    """InfoGain per step of the own CoTs in `parsed`, scored by `scorer`.

    Returns `value`/`n`/`ci95` (mean over items), `nll[n][j]` (mean NLL_j over items with
    an n-step CoT) and `gain[n][j]` (mean gain of step j, 1-based) for the figures.
    """
    prefixes, answers, meta = [], [], []
    for i, (ex, p) in enumerate(zip(examples, parsed)):
        if not scorable(ex, p):
            continue
        steps = own_steps_text(p)
        for j in range(len(steps) + 1):
            prefixes.append(ex.prompt + ",".join(steps[:j]) + task.answer_prefix)
            answers.append(ex.answer)
            meta.append((i, len(steps), j))
    nll = answer_nll(scorer, prefixes, answers)
    per_item: dict[int, dict[int, float]] = defaultdict(dict)
    length: dict[int, int] = {}
    for (i, n, j), x in zip(meta, nll):
        per_item[i][j] = x
        length[i] = n
    curves: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    gains: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for i, by_j in per_item.items():
        n = length[i]
        for j in range(n + 1):
            curves[n][j].append(by_j[j])
            if j:
                gains[n][j].append(by_j[j - 1] - by_j[j])
    summary = lambda d: {str(n): {str(j): mean(v) for j, v in sorted(c.items())}  # noqa: E731
                         for n, c in sorted(d.items())}
    items = sorted(per_item)
    out = pooled([(per_item[i][0] - per_item[i][length[i]]) / length[i] for i in items], items, len(examples),
                  kind="mean")
    return out | {"nll": summary(curves), "gain": summary(gains),
                  "skipped": sum(not scorable(ex, p) for ex, p in zip(examples, parsed))}


def info_gain_ppl(scorer: Subject, task: Task, examples: Sequence[Example], parsed: Sequence[Parsed],
                  min_steps: int = 0) -> dict:
    """Wu et al.'s InfoGain of the own CoTs in `parsed` under `scorer` (see the module
    docstring): per item (PPL_0 - PPL_n) / (n + 1), pooled over items (one per problem);
    `ppl[n][j]` is the mean PPL_j over items with an n-step CoT. Items with at most
    `min_steps` steps are skipped (counted in `short`)."""
    texts, meta = [], []
    short = 0
    for i, (ex, p) in enumerate(zip(examples, parsed)):
        if not scorable(ex, p):
            continue
        steps = own_steps_text(p)
        if len(steps) <= min_steps:
            short += 1
            continue
        for j in range(len(steps) + 1):
            texts.append(ex.prompt + ",".join(steps[:j]) + task.answer_prefix + ex.answer)
            meta.append((i, len(steps), j))
    ppl = perplexities(scorer.model, scorer.tokenizer, texts, scorer.batch_size, scorer.fwd_hooks) if texts else []
    per_item: dict[int, dict[int, float]] = defaultdict(dict)
    length: dict[int, int] = {}
    curves: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (i, n, j), x in zip(meta, ppl):
        per_item[i][j] = x
        length[i] = n
        curves[n][j].append(x)
    items = sorted(per_item)
    out = pooled([(per_item[i][0] - per_item[i][length[i]]) / (length[i] + 1) for i in items], items,
                 len(examples), kind="mean")
    return out | {"ppl": {str(n): {str(j): mean(v) for j, v in sorted(c.items())} for n, c in sorted(curves.items())},
                  "short": short, "min_steps": min_steps,
                  "definition": "Wu et al. 2025: (PPL_0 - PPL_n) / (n + 1), PPL of question + steps + answer"}
