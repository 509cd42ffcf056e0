"""The behavioural suite: every measurement of one model, in the shape `report.json` keeps
under `behavior.<variant>`.

    accuracy[k]            greedy CoT, then the parsed answer, on held-out problems
    well_formed[k]         rate of outputs that parse (every step and an answer)
    cot_length             mean generated CoT tokens (and per k)
    early_answering_aoc    faithfulness_ks; see faithfulness.early_answering
    corruption_follow_rate / corruption_stay_rate     see faithfulness.corruption
    paraphrase_accuracy / filler_accuracy / no_cot_accuracy
    info_gain_per_step     answer-token nats per step, scored by the reference model (and `self`)
    info_gain_ppl          Wu et al.'s definition (perplexity of the whole text), reference-scored
    abstention             recall and precision on answerable + unanswerable items
    cliff[k]               cliff_ks: accuracy with plain decoding and with a calculator in the
                           loop, per-step accuracy of the model's own steps (behavior.cliff)
    switch                 the models in switch.models: the thought-switch penalty's sweep
    compress               the models in compress.models: activation-steered compression
    format                 the models in format.models: the new output format of a task change
    instruction            the models in instruction.models: seen and held-out instructions
                           (the four added by `model_eval.evaluate_model`, which knows the name)
    trained                the same faithfulness tests on a variant's own training problems

Every value is `{"value", "n", "ci95", ...}` (`features.stats`); the numbers of one held-out
set are `pooled` over its problems (index in the set), the same problems for every model, so
that two models' numbers compare paired.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from activations.progress import progress
from experiments.behavior.cliff import cliff
from experiments.behavior.compress import CompressConfig
from experiments.behavior.format_eval import FormatConfig
from experiments.behavior.instruction_eval import InstructionConfig
from experiments.behavior.switch import SwitchConfig
from experiments.behavior.core import Subject, cot_tokens, generate_cot
from experiments.behavior.faithfulness import corruption, early_answering, rewritten_answers
from experiments.behavior.info_gain import info_gain, info_gain_ppl
from features.stats import pooled, rate
from experiments.tasks import Example, Task


@dataclass
class BehaviorConfig:
    """What the behavioural suite measures, and on how many problems."""

    n: int = 200
    """Problems per held-out set (one set per k, plus unanswerable sets)."""
    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    """Chain lengths at which accuracy is measured (include one beyond training as OOD)."""
    faithfulness_ks: list[int] = field(default_factory=lambda: [2])
    """Chain lengths on which the CoT faithfulness tests and InfoGain run."""
    abstention_ks: list[int] = field(default_factory=lambda: [2])
    """Chain lengths of the unanswerable sets (scored against answerable sets of the same k)."""
    reference: str = "base"
    """The model that scores InfoGain besides the model itself (a variant name of the run)."""
    info_gain_min_steps: int = 0
    """Wu et al.'s InfoGain skips CoTs of at most this many steps (their code means 2; 0 keeps all)."""
    cot_budget: float = 1.0
    """Generation budget in multiples of a k-step CoT plus a spare step (2: room for a model
    that writes every step twice); an output cut by the budget has no answer."""
    cliff_ks: list[int] = field(default_factory=list)
    """Chain lengths of the execution cliff (`experiments.behavior.cliff`: plain decoding
    against a calculator in the loop, and per-step accuracy); empty: not measured."""
    cliff_n: int = 100
    """Problems per chain length of the cliff."""
    switch: SwitchConfig = field(default_factory=SwitchConfig)
    """The thought-switch penalty against its strength, on the variants it names
    (`experiments.behavior.switch`)."""
    compress: CompressConfig = field(default_factory=CompressConfig)
    """Activation-steered compression of the CoT, on the variants it names
    (`experiments.behavior.compress`)."""
    format: FormatConfig = field(default_factory=FormatConfig)
    """The new output format of a task change, on the models it names
    (`experiments.behavior.format_eval`)."""
    instruction: InstructionConfig = field(default_factory=InstructionConfig)
    """Instruction following, seen and held-out instructions, on the models it names
    (`experiments.behavior.instruction_eval`)."""
    trained_set: bool = True
    """Also run the faithfulness tests on a variant's own fixed training problems, if any."""
    batch_size: int = 256
    """Rows per forward / generate call."""

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"behavior.n must be >= 1, got {self.n}")
        for name in ("ks", "faithfulness_ks", "abstention_ks"):
            ks = getattr(self, name)
            if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
                raise ValueError(f"behavior.{name} must be a non-empty list of distinct chain lengths >= 1, got {ks}")
        if self.cliff_ks and (min(self.cliff_ks) < 1 or len(set(self.cliff_ks)) != len(self.cliff_ks)):
            raise ValueError(f"behavior.cliff_ks must be distinct chain lengths >= 1, got {self.cliff_ks}")
        if self.cliff_n < 1:
            raise ValueError(f"behavior.cliff_n must be >= 1, got {self.cliff_n}")
        if self.cot_budget < 1:
            raise ValueError(f"behavior.cot_budget must be >= 1, got {self.cot_budget}")
        if self.batch_size < 1:
            raise ValueError(f"behavior.batch_size must be >= 1, got {self.batch_size}")
        if self.info_gain_min_steps < 0:
            raise ValueError(f"behavior.info_gain_min_steps must be >= 0, got {self.info_gain_min_steps}")


ENUMERATE_BELOW = 50_000  # problem spaces this small are enumerated rather than sampled


def distinct_problems(task: Task, n: int, k: int, seed: int, unanswerable: bool = False) -> list[Example]:
    """n distinct eval-split problems, or all of them when the split holds fewer (so every
    sample size counts distinct problems and the intervals are honest)."""
    if task.n_problems(k, unanswerable) <= ENUMERATE_BELOW:
        pool = task.all_problems(k, "eval", unanswerable)
        return pool if len(pool) <= n else random.Random(f"heldout-{seed}-{k}-{unanswerable}").sample(pool, n)
    return task.sample(n, k, "eval", seed, unanswerable_fraction=float(unanswerable), unique=True)


def heldout_sets(task: Task, cfg: BehaviorConfig, seed: int) -> dict[str, list[Example]]:
    """`k<k>` answerable and `unanswerable-k<k>` sets of distinct eval-split problems."""
    sets = {f"k{k}": distinct_problems(task, cfg.n, k, seed + 1000)
            for k in sorted(set(cfg.ks) | set(cfg.faithfulness_ks) | set(cfg.abstention_ks))}
    for k in sorted(set(cfg.abstention_ks)):
        sets[f"unanswerable-k{k}"] = distinct_problems(task, cfg.n, k, seed + 1000, unanswerable=True)
    return sets


def faithfulness(subject: Subject, task: Task, examples: Sequence[Example], parsed, seed: int) -> dict:
    """The CoT tests on one pool of items, flattened to report keys."""
    early = early_answering(subject, task, examples, parsed)
    corr = corruption(subject, task, examples, parsed, seed)
    rew = rewritten_answers(subject, task, examples, parsed)
    return {
        "accuracy": rate(p.answer == ex.answer for ex, p in zip(examples, parsed)),
        "early_answering_aoc": early["aoc"] | {"curve": early["curve"], "skipped": early["skipped"]},
        "corruption_follow_rate": corr["follow"] | {"per_step": {m: {j: c["follow"] for j, c in v.items()}
                                                                 for m, v in corr["per_step"].items()},
                                                    "max_follow": corr["max_follow"], "skipped": corr["skipped"],
                                                    "ambiguous": corr["ambiguous"]},
        "corruption_stay_rate": corr["stay"] | {"per_step": {m: {j: c["stay"] for j, c in v.items()}
                                                             for m, v in corr["per_step"].items()}},
        "paraphrase_accuracy": rew["paraphrase"]["accuracy"] | {"same_answer": rew["paraphrase"]["same_answer"]},
        "filler_accuracy": rew["filler"]["accuracy"] | {"same_answer": rew["filler"]["same_answer"]},
        "no_cot_accuracy": rew["no_cot"]["accuracy"] | {"same_answer": rew["no_cot"]["same_answer"]},
        "own_cot_accuracy": rew["own"]["accuracy"],
    }


def evaluate(subject: Subject, task: Task, cfg: BehaviorConfig, seed: int, reference: Subject | None = None,
             trained: Sequence[Example] | None = None, desc: str = "behavior") -> dict:
    """Every behavioural measurement of `subject`. `reference` scores InfoGain (None: the
    subject itself is the reference, as for the base); `trained` is the variant's own fixed
    training set, if it has one."""
    sets = heldout_sets(task, cfg, seed)
    n_steps = len(sets) + 2 + (trained is not None and cfg.trained_set) + bool(cfg.cliff_ks)
    bar = progress(total=n_steps, desc=desc, leave=False)  # in logs: a line every 30 s

    def step(label: str):
        bar.set_postfix_str(label)
        bar.update(1)

    parsed = {}
    for name, examples in sets.items():
        parsed[name] = generate_cot(subject, task, examples, cfg.cot_budget)
        step(name)
    tok = subject.tokenizer
    answerable = [f"k{k}" for k in cfg.ks]
    per = lambda values: pooled(values, range(len(values)), kind="rate")  # noqa: E731  (one item per problem)
    lengths = {s: [cot_tokens(tok, p.cot) for p in parsed[s]] for s in answerable}
    all_lengths = [x for s in answerable for x in lengths[s]]
    out: dict = {
        "accuracy": {str(k): per([p.answer == ex.answer for ex, p in zip(sets[f"k{k}"], parsed[f"k{k}"])])
                     for k in cfg.ks},
        "well_formed": {str(k): per([p.well_formed for p in parsed[f"k{k}"]]) for k in cfg.ks},
        "cot_length": pooled(all_lengths, range(len(all_lengths)), kind="mean")
        | {"by_k": {s[1:]: pooled(v, range(len(v)), kind="mean") for s, v in lengths.items()}},
    }

    # The faithfulness tests pool the faithfulness_ks sets.
    pool = [ex for k in cfg.faithfulness_ks for ex in sets[f"k{k}"]]
    pool_parsed = [p for k in cfg.faithfulness_ks for p in parsed[f"k{k}"]]
    faith = faithfulness(subject, task, pool, pool_parsed, seed)
    del faith["accuracy"]
    out |= faith
    step("faithfulness")

    gain_self = info_gain(subject, task, pool, pool_parsed)
    gain_ref = info_gain(reference, task, pool, pool_parsed) if reference is not None else gain_self
    out["info_gain_per_step"] = gain_ref | {"scorer": "reference" if reference is not None else "self",
                                            "self": gain_self}
    # Wu et al.'s own definition, under the one fixed scorer (the reference) as in the paper
    out["info_gain_ppl"] = info_gain_ppl(reference or subject, task, pool, pool_parsed, cfg.info_gain_min_steps) | {
        "scorer": "reference" if reference is not None else "self"}
    step("info gain")

    # Abstention (AbstentionBench's definitions): recall = abstained / should abstain,
    # precision = should abstain / abstained, over answerable + unanswerable items.
    # Recall is pooled over the unanswerable problems (the same for every model: paired);
    # precision over what this model abstained on (its own items: a plain Wilson rate).
    should, did = [], []
    for k in cfg.abstention_ks:
        for s in (f"k{k}", f"unanswerable-k{k}"):
            should += [ex.abstain for ex in sets[s]]
            did += [p.answer == "?" for p in parsed[s]]
    recall = [d for s, d in zip(should, did) if s]
    out["abstention"] = {"recall": pooled(recall, range(len(recall))),
                         "precision": rate(s for s, d in zip(should, did) if d),
                         "n": len(should)}

    if cfg.cliff_ks:  # its own problem sets: k past the base's training lengths are sampled here only
        out["cliff"] = cliff(subject, task, {k: distinct_problems(task, cfg.cliff_n, k, seed + 2000)
                                             for k in cfg.cliff_ks}, cfg.cot_budget)
        step("cliff")

    if trained is not None and cfg.trained_set:
        trained = list(trained)
        tp = generate_cot(subject, task, trained, cfg.cot_budget)
        out["trained"] = faithfulness(subject, task, trained, tp, seed) | {"n": len(trained)}
        step("trained set")
    bar.close()
    return out
