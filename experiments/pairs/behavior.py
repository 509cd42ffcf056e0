"""The behavioural suite on a text chain-of-thought task, for one model of a pair.

Every problem is prompted (chat template when the tokenizer has one, few-shot examples as
earlier turns when the task asks for them), a CoT generated greedily and cut into steps at
its first answer marker (or to `max_steps`), and its answer read. By default the answer is
forced: the answer prefix is put in the model's mouth after its own CoT and the answer read
from a short continuation, so a small model that writes "So, the answer is 6." or never
states an answer is still scored (the answer it stated itself is kept as `stated_answer`).
Answers are compared with math-verify (0.75 = 3/4). Then, on every CoT that has steps
and an answer, the answer is forced (prompt + edited CoT + answer prefix) after each
faithfulness intervention and compared with the answer forced after the unedited CoT:

    early      truncated after j steps (j < n)     same answer = the CoT was not needed
    mistake    a number of step j changed          changed answer = the CoT is followed
    filler     " ..." of the CoT's token length    same answer = only length mattered
    no_cot     no CoT at all                       same answer
    paraphrase every step paraphrased              same answer = the wording did not matter
    corrupt    a step's result changed, later      answer = the implied one: the CoT is followed
               steps recomputed (typed chains)     (`corruption_follow`; `corruption_stay`: gold)

A forced answer that cannot be read after the unedited CoT leaves the item out (no reference
to compare with). After an edit, an unreadable answer counts as "not the same answer", as in
the arithmetic suite's early answering; only in the mistake test is it left out (there
"changed" would read as following the mistake). The counts are reported. Every rate is
pooled over the problems (`features.stats.pooled`: cut points and mistakes of one problem
are resampled together). InfoGain per step (on the gold CoTs): (log p(gold answer | all n gold steps) - log p(gold
answer | no step)) / n, each log p with the answer forced after the steps; and Wu et al.'s
perplexity version on the same gold CoTs (`info_gain_ppl`, scored by this model: the text is
fixed, the scorer varies, so it is not the paper's fixed-scorer comparison). Accuracy,
answered, faithfulness and InfoGain are over the answerable problems; abstention is
reported on the unanswerable ones (where it is right) and the answerable ones (where it is
not); CoT length over all problems.
"""

from __future__ import annotations

import importlib
import random
from typing import Callable, Sequence

from activations.models import load_tokenizer  # noqa: F401 (the pairs' stages import it from here)
from activations.perplexity import perplexities
from features.stats import mean, pooled, rate
from experiments.engine.distributed import split_map
from experiments.pairs.config import PairBehaviorConfig
from experiments.tasks.text_steps import chain, corrupt_chain, number_text
from experiments.tasks.text import (
    TextProblem, TextTaskConfig, extract_answer, filler, insert_mistake, is_abstention, paraphrase, render_cot,
    render_prompt, same_answer, segment_steps, truncate,
)


def split_output(output: str, task: TextTaskConfig) -> tuple[str, list[str]]:
    """(the CoT: text before the first answer marker, its steps). Without a marker the whole
    output is the CoT (a model that never states an answer). Markers match in any case."""
    cut = len(output)
    low = output.lower()  # "So, the answer is 6." states an answer as much as "The answer is 6."
    for marker in (task.answer_prefix, "####", "\\boxed{"):
        if marker and marker.lower() in low:
            cut = min(cut, low.index(marker.lower()))
    cot = output[:cut]
    return cot, segment_steps(cot, task.segment)


def cut_points(n: int, most: int) -> list[int]:
    """At most `most` of 0..n-1, evenly spread (all of them when n <= most)."""
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)}) if most > 1 else [0]


def paraphraser(spec: str | None) -> Callable[[list[str]], list[str]] | None:
    """The configured paraphrase: a JSON file {step: paraphrase} or `module:function`."""
    if spec is None:
        return None
    if ":" in spec and not spec.endswith(".json"):
        mod, fn = spec.split(":", 1)
        try:
            f = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"behavior.paraphrase {spec!r}: cannot import it ({e})") from None
        return lambda steps: paraphrase(steps, f)
    return lambda steps: paraphrase(steps, spec)


def generate(model, tok, prompts: Sequence[str], max_new_tokens: int, batch_size: int, fwd_hooks=()) -> list[str]:
    """Greedy continuations; under torchrun each rank generates its slice of the prompts."""
    from activations import generate as g

    return split_map(lambda part: g.generate_text(model, tok, part, max_new_tokens, batch_size, fwd_hooks=fwd_hooks),
                     prompts)


def logprobs(model, tok, prefixes: Sequence[str], continuations: Sequence[str], batch_size: int,
             fwd_hooks=()) -> list[float]:
    """log p(continuation | prefix) per pair; under torchrun each rank scores its slice."""
    from activations import generate as g

    return split_map(lambda part: g.continuation_logprobs(model, tok, [p for p, _ in part], [c for _, c in part],
                                                          batch_size, fwd_hooks=fwd_hooks),
                     list(zip(prefixes, continuations)))


def forced_answers(model, tok, prefixes: Sequence[str], task: TextTaskConfig, cfg: PairBehaviorConfig,
                   fwd_hooks=()) -> list[str | None]:
    """The answer a model gives when the answer prefix is put in its mouth after each prefix."""
    if not prefixes:
        return []
    outs = generate(model, tok, prefixes, cfg.answer_tokens, cfg.batch_size, fwd_hooks)
    return [extract_answer(task.answer_prefix + o, task) for o in outs]


def forced_prefix(prompt: str, steps: Sequence[str], task: TextTaskConfig) -> str:
    return prompt + render_cot(steps, None, task) + task.answer_prefix


def evaluate_text(model, tok, problems: Sequence[TextProblem], task: TextTaskConfig, cfg: PairBehaviorConfig,
                  seed: int, log=print, examples: Sequence[TextProblem] = ()) -> dict:
    """{"metrics": ..., "generations": one record per problem}. `examples`: few-shot examples
    in every prompt (`experiments.tasks.text.split_examples`)."""
    prompts = [render_prompt(p.question, task, tok, examples) for p in problems]
    log(f"    generating {len(prompts)} CoTs (up to {cfg.max_new_tokens} tokens)")
    outputs = generate(model, tok, prompts, cfg.max_new_tokens, cfg.batch_size)
    cots = [split_output(out, task)[1][:cfg.max_steps] for out in outputs]
    stated = [extract_answer(out, task) for out in outputs]
    if cfg.answer == "forced":
        log(f"    forcing {len(prompts)} answers after the CoTs")
        answers = forced_answers(model, tok, [forced_prefix(pr, st, task) for pr, st in zip(prompts, cots)], task, cfg)
    else:
        answers = stated
    gens = []
    for p, prompt, out, steps, answer, own in zip(problems, prompts, outputs, cots, answers, stated):
        gens.append({"id": p.id, "prompt": prompt, "output": out, "steps": steps, "answer": answer,
                     "stated_answer": own, "gold": p.answer, "answerable": p.answerable,
                     "correct": p.answerable and same_answer(answer, p.answer), "abstained": is_abstention(out, task),
                     "n_tokens": len(tok(out, add_special_tokens=False)["input_ids"])})

    usable = [(g, p) for g, p in zip(gens, problems) if p.answerable and g["steps"] and g["answer"] is not None]
    problem_of = [k for k, (g, p) in enumerate(zip(gens, problems)) if p.answerable and g["steps"]
                  and g["answer"] is not None]  # usable item i -> its problem's index
    para = paraphraser(cfg.paraphrase)
    jobs: list[tuple[str, int]] = []  # (test, usable item) per forced prefix
    prefixes: list[str] = []

    def add(test: str, i: int, prefix: str) -> None:
        jobs.append((test, i))
        prefixes.append(prefix)

    para_missing = corrupt_skipped = 0
    implied: dict[int, str] = {}  # forced prefix index -> the answer its corrupted chain implies
    for i, (g, _) in enumerate(usable):
        steps, prompt = g["steps"], g["prompt"]
        if cfg.answer == "stated":  # forced: the reference is the answer already forced after these steps
            add("clean", i, forced_prefix(prompt, steps, task))
        for j in cut_points(len(steps), cfg.max_cuts):
            add("early", i, forced_prefix(prompt, truncate(steps, j), task))
        numbered = [j for j, s in enumerate(steps) if any(c.isdigit() for c in s)]
        rng = random.Random(f"pair-behavior-{seed}-{g['id']}")  # per problem: the same however the work is split
        for j in cut_points(len(numbered), cfg.max_cuts):
            add("mistake", i, forced_prefix(prompt, insert_mistake(steps, numbered[j], rng.randrange(1 << 30)), task))
        if (ch := chain(steps)) is not None:  # typed steps: the answer a corrupted CoT implies is known
            implied0 = number_text(ch[-1][3])
            for j in cut_points(len(steps), cfg.max_cuts):
                bad = corrupt_chain(steps, j, rng.choice([-1, 1]) * rng.randint(1, 9))
                if bad is None or same_answer(bad[1], implied0) or same_answer(bad[1], g["gold"]):
                    corrupt_skipped += 1  # implies the same answer, or the gold one: cannot tell follow from stay
                    continue
                add("corrupt", i, forced_prefix(prompt, bad[0], task))
                implied[len(prefixes) - 1] = bad[1]
        add("filler", i, prompt + filler(steps, tok, task) + task.answer_prefix)
        add("no_cot", i, prompt + task.answer_prefix)
        if para is not None:
            try:
                add("paraphrase", i, forced_prefix(prompt, para(steps), task))
            except KeyError:
                para_missing += 1
    log(f"    {len(prefixes)} forced answers on {len(usable)} usable CoTs")
    edited = forced_answers(model, tok, prefixes, task, cfg)
    clean = {i: a for (test, i), a in zip(jobs, edited) if test == "clean"} if cfg.answer == "stated" else \
        {i: g["answer"] for i, (g, _) in enumerate(usable)}
    tests = ("early", "mistake", "filler", "no_cot", "paraphrase")
    flags: dict[str, list[bool]] = {t: [] for t in tests}
    owner: dict[str, list[int]] = {t: [] for t in tests}  # the problem of each flag
    # No readable answer after the unedited CoT: no reference, the item is left out. An
    # unreadable answer after an edit is "not the same" (the arithmetic suite's rule), except
    # for the mistake test, where it is left out: "changed" would read as following it.
    unanswered = {t: 0 for t in tests}
    unreadable = {t: 0 for t in tests}
    corrupt = {"follow": [], "stay": [], "owner": []}
    for k, ((test, i), a) in enumerate(zip(jobs, edited)):
        if test == "corrupt":
            corrupt["follow"].append(same_answer(a, implied[k]))
            corrupt["stay"].append(same_answer(a, usable[i][0]["gold"]))
            corrupt["owner"].append(problem_of[i])
            continue
        if test == "clean":
            continue
        if clean[i] is None or (a is None and test == "mistake"):
            unanswered[test] += 1
            continue
        unreadable[test] += a is None
        same = same_answer(a, clean[i])
        flags[test].append(not same if test == "mistake" else same)
        owner[test].append(problem_of[i])
    per = lambda t: pooled(flags[t], owner[t], len(problems))  # noqa: E731
    faith = {"early_same": per("early"), "mistake_changes": per("mistake"),
             "filler_same": per("filler"), "no_cot_same": per("no_cot"),
             "paraphrase_same": per("paraphrase") if para is not None else None,
             "usable_cots": len(usable), "left_out_unanswered": unanswered, "unreadable_after_edit": unreadable,
             # typed chains (`a op b = c` steps, each from the last result): a corrupted result with every
             # later step recomputed; follow = the forced answer is the corrupted chain's implied answer
             "corruption_follow": pooled(corrupt["follow"], corrupt["owner"], len(problems)),
             "corruption_stay": pooled(corrupt["stay"], corrupt["owner"], len(problems)),
             "corruption_skipped": corrupt_skipped}
    if para is not None:
        faith["paraphrase_missing"] = para_missing

    # InfoGain on the gold CoTs of the answerable problems: every model scored on the same text
    scored = [(pr, p) for pr, p in zip(prompts, problems) if p.answerable and p.steps]
    pre = [forced_prefix(pr, p.steps, task) for pr, p in scored]
    none = [pr + task.answer_prefix for pr, _ in scored]
    ans = [" " + p.answer for _, p in scored]
    lp_all = logprobs(model, tok, pre, ans, cfg.batch_size) if scored else []
    lp_none = logprobs(model, tok, none, ans, cfg.batch_size) if scored else []
    gain = [(a - b) / len(p.steps) for a, b, (_, p) in zip(lp_all, lp_none, scored)]
    # Wu et al.'s version: the perplexity of question + first j steps + answer, j = 0..n
    texts, owner_j = [], []
    for k, (pr, p) in enumerate(scored):
        for j in range(len(p.steps) + 1):
            texts.append(forced_prefix(pr, truncate(p.steps, j), task) + " " + p.answer)
            owner_j.append(k)
    ppl = perplexities(model, tok, texts, cfg.batch_size) if texts else []
    by_item: dict[int, list[float]] = {}
    for k, x in zip(owner_j, ppl):
        by_item.setdefault(k, []).append(x)
    gain_ppl = [(v[0] - v[-1]) / len(v) for _, v in sorted(by_item.items())]
    scored_of = [k for k, p in enumerate(problems) if p.answerable and p.steps]

    by_steps: dict[int, list[bool]] = {}
    answerable = [g for g in gens if g["answerable"]]
    for g, p in zip(gens, problems):
        if p.answerable:
            by_steps.setdefault(len(p.steps), []).append(g["correct"])
    answerable_of = [k for k, p in enumerate(problems) if p.answerable]
    unanswerable_of = [k for k, p in enumerate(problems) if not p.answerable]
    metrics = {
        "accuracy": pooled([g["correct"] for g in answerable], answerable_of, len(problems)),
        "accuracy_by_steps": {str(k): rate(v) for k, v in sorted(by_steps.items())},
        "answered": pooled([g["answer"] is not None for g in answerable], answerable_of, len(problems)),
        # the right output on an unanswerable problem is to abstain; on an answerable one, not
        "abstains_unanswerable": pooled([g["abstained"] for g in gens if not g["answerable"]], unanswerable_of,
                                        len(problems)),
        "abstains_answerable": pooled([g["abstained"] for g in answerable], answerable_of, len(problems)),
        "cot_tokens": mean(g["n_tokens"] for g in gens),
        "cot_steps": mean(len(g["steps"]) for g in gens),
        "faithfulness": faith,
        "info_gain_per_step": pooled(gain, scored_of, len(problems), kind="mean"),
        "info_gain_ppl": pooled(gain_ppl, scored_of, len(problems), kind="mean") | {
            "scorer": "self", "definition": "Wu et al. 2025: (PPL_0 - PPL_n) / (n + 1) on the gold CoT"},
        "gold_answer_logprob": {"no_cot": mean(lp_none), "gold_cot": mean(lp_all)},
    }
    return {"metrics": metrics, "generations": gens}
