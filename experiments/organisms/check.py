"""The behavioural check run on every organism after training: accuracy by chain length,
abstention, and the corruption test on held-out problems and on each fixed training set."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.behavior.core import accuracy, corruption, early_answering, generate_cot
from experiments.organisms.config import CheckConfig
from experiments.tasks import ArithmeticTask, Example


@dataclass
class EvalSet:
    examples: list[Example]
    corrupt: bool = False       # run the corruption test on it
    abstain: bool = False       # every item is unanswerable: measure abstention recall
    accuracy_k: int | None = None  # report its accuracy as "accuracy at k"


def eval_sets(task: ArithmeticTask, cfg: CheckConfig, seed: int,
              fixed: dict[str, list[Example]]) -> dict[str, EvalSet]:
    """Held-out sets (eval split) per k, unanswerable items, and the distinct fixed training
    sets (variants trained on the same problems share one set, named after the first)."""
    def unique(k: int, unanswerable: bool = False) -> bool:
        # Small k have few eval-split problems: draw with repeats rather than fail (or spend
        # ages rejecting duplicates) when n is over half of what the split holds.
        return cfg.n <= task.n_problems(k, unanswerable) * task.cfg.eval_fraction / 2

    sets = {}
    for k in sorted(set(cfg.ks) | set(cfg.corruption_ks)):
        sets[f"heldout-k{k}"] = EvalSet(task.sample(cfg.n, k, "eval", seed + 1000, unique=unique(k)),
                                        corrupt=k in cfg.corruption_ks,
                                        accuracy_k=k if k in cfg.ks else None)
    sets["unanswerable-k2"] = EvalSet(task.sample(cfg.n, 2, "eval", seed + 1000, unanswerable_fraction=1.0,
                                                  unique=unique(2, unanswerable=True)), abstain=True)
    seen: list[list[Example]] = []
    for name, problems in fixed.items():
        if problems not in seen:
            seen.append(problems)
            sets[f"trained-{name}"] = EvalSet(problems, corrupt=True)
    return sets


def check_model(model, tokenizer, task: ArithmeticTask, sets: dict[str, EvalSet], seed: int) -> dict:
    out: dict = {"accuracy": {}, "sets": {}}
    for name, s in sets.items():
        parsed = generate_cot(model, tokenizer, task, s.examples)
        if s.abstain:
            res = {"n": len(s.examples), "abstain_recall": sum(p.answer == "?" for p in parsed) / len(parsed)}
        else:
            res = accuracy(task, parsed, s.examples)
        if s.corrupt:
            c = corruption(model, tokenizer, task, s.examples, parsed, seed)
            early = early_answering(model, tokenizer, task, s.examples, parsed)
            res |= {"follow": c["follow"], "max_follow": c["max_follow"], "corruption": c,
                    "no_cot_same_answer": early.get("step0", {}).get("same_answer"), "early_answering": early}
        if s.accuracy_k is not None:
            out["accuracy"][str(s.accuracy_k)] = res["accuracy"]
        out["sets"][name] = res
    return out


def table(results: dict[str, dict]) -> str:
    """A markdown table: one row per model."""
    first = next(iter(results.values()))
    ks = list(first["accuracy"])
    corr = [s for s, r in first["sets"].items() if "max_follow" in r]
    head = ["model"] + [f"acc k={k}" for k in ks] + ["abstain"] + \
        [f"{s}: acc / follow / max follow / no-CoT same" for s in corr]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rows = []
    for name, r in results.items():
        row = [name] + [fmt(r["accuracy"][k]) for k in ks]
        row.append(fmt(r["sets"]["unanswerable-k2"]["abstain_recall"]))
        for s in corr:
            x = r["sets"][s]
            row.append(" / ".join(fmt(x[m]) for m in ("accuracy", "follow", "max_follow", "no_cot_same_answer")))
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
