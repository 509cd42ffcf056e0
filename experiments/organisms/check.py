"""The behavioural check run on every organism after training: accuracy by chain length,
abstention, and the corruption test on held-out problems and on each fixed training set."""

from __future__ import annotations

from experiments.behavior.core import accuracy, corruption, generate_cot
from experiments.organisms.config import CheckConfig
from experiments.tasks import ArithmeticTask, Example


def eval_sets(task: ArithmeticTask, cfg: CheckConfig, seed: int,
              fixed: dict[str, list[Example]]) -> dict[str, list[Example]]:
    """Held-out sets (eval split) per k, unanswerable items, and the fixed training sets."""
    sets = {}
    for k in sorted(set(cfg.ks) | set(cfg.corruption_ks)):
        # Small k have few eval-split problems: draw with repeats rather than fail.
        unique = cfg.n <= task.n_problems(k) * task.cfg.eval_fraction / 2
        sets[f"heldout-k{k}"] = task.sample(cfg.n, k, "eval", seed + 1000, unique=unique)
    sets["unanswerable-k2"] = task.sample(cfg.n, 2, "eval", seed + 1000, unanswerable_fraction=1.0)
    for name, problems in fixed.items():
        sets[f"trained-{name}"] = problems
    return sets


def check_model(model, tokenizer, task: ArithmeticTask, cfg: CheckConfig, sets: dict[str, list[Example]],
                seed: int) -> dict:
    out: dict = {"accuracy": {}, "sets": {}}
    for name, exs in sets.items():
        parsed = generate_cot(model, tokenizer, task, exs)
        res = accuracy(task, parsed, exs)
        if name == "unanswerable-k2":
            res = {"n": len(exs), "abstain_recall": sum(p.answer == "?" for p in parsed) / len(exs)}
        elif name.startswith("trained-") or int(name.removeprefix("heldout-k")) in cfg.corruption_ks:
            c = corruption(model, tokenizer, task, exs, parsed, seed)
            res |= {"follow": c["follow"], "max_follow": c["max_follow"], "corruption": c}
        if name.startswith("heldout-k") and int(name.removeprefix("heldout-k")) in cfg.ks:
            out["accuracy"][name.removeprefix("heldout-k")] = res["accuracy"]
        out["sets"][name] = res
    return out


def table(results: dict[str, dict]) -> str:
    """A markdown table: one row per model."""
    first = next(iter(results.values()))
    ks = list(first["accuracy"])
    corr = [s for s, r in first["sets"].items() if "max_follow" in r]
    head = ["model"] + [f"acc k={k}" for k in ks] + ["abstain"] + \
        [f"{s}: acc / follow / max follow" for s in corr]
    rows = []
    for name, r in results.items():
        row = [name] + [f"{r['accuracy'][k]:.2f}" for k in ks]
        row.append(f"{r['sets']['unanswerable-k2']['abstain_recall']:.2f}")
        for s in corr:
            x = r["sets"][s]
            fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            row.append(f"{x['accuracy']:.2f} / {fmt(x['follow'])} / {fmt(x['max_follow'])}")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
