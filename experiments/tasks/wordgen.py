"""A generator of multi-step word problems with ground truth at every step, for text models.

Each problem follows one quantity of one entity through 2-6 typed steps `a op b = c`
(+, -, *, / with exact division; every intermediate value a whole number in [0, max_value]),
each step told by a sentence of a templated event, with distractor sentences about other
entities mixed in. An unanswerable variant drops one step's quantity ("buys some more"),
so the right output is to abstain. The gold CoT is written in one of several styles, every
style carrying the step's equation, so the text suite's corruption test can recompute the
answer a changed value implies (`experiments.tasks.text_steps`) and the value labels work.

The split into train and eval is by a hash of the problem's text, so it is the same
whatever the number of problems generated or their order. Rows are JSONL in the text
task's GSM8K-like format plus `ops` (the typed steps), `split` and `style`.

    python -m experiments.tasks.wordgen --out data/wordgen.jsonl --n 4000
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Literal, get_args

CotStyle = Literal["equation", "sentence", "verbose", "reasoning"]
STYLES = get_args(CotStyle)

NAMES = ("Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena", "Milo", "Nora",
         "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara")
ITEMS = ("apples", "stamps", "marbles", "coins", "books", "shells", "cards", "pencils", "stickers", "beads")
PLACES = ("the market", "school", "the park", "the library", "the fair")

# (op, event template): {n} the entity, {b} the quantity, {item}
EVENTS = {
    "+": ("{n} buys {b} more {item}.", "{n} finds {b} more {item} at {place}.", "A friend gives {n} {b} {item}."),
    "-": ("{n} gives away {b} {item}.", "{n} sells {b} {item} at {place}.", "{n} loses {b} {item}."),
    "*": ("{n}'s pile of {item} grows to {b} times its size.", "{n} ends up with {b} times as many {item}."),
    "/": ("{n} shares the {item} equally with friends so each of {b} people gets the same; {n} keeps one share.",
          "{n} splits the {item} into {b} equal groups and keeps one group."),
}
MISSING = {"+": "{n} buys some more {item}.", "-": "{n} gives away some {item}.",
           "*": "{n}'s pile of {item} grows several times its size.",
           "/": "{n} splits the {item} into some equal groups and keeps one group."}
DISTRACTORS = ("{m} has {k} {item2} at home.", "{m} walks {k} minutes to {place}.",
               "It is {k} degrees outside.", "{m} reads {k} pages of a book.")
VERB = {"+": "adds", "-": "takes away", "*": "multiplies by", "/": "divides by"}


@dataclass
class WordGenConfig:
    """How many problems of what shape."""

    n: int = 2000
    """Problems generated."""
    min_steps: int = 2
    """Fewest steps (typed operations) per problem."""
    max_steps: int = 6
    """Most steps per problem."""
    distractor_rate: float = 0.5
    """Chance of a distractor sentence after each event sentence."""
    unanswerable_rate: float = 0.1
    """Share of problems with one quantity missing (the right output is to abstain)."""
    eval_fraction: float = 0.2
    """Share of problems in the eval split (by hash of the question)."""
    styles: tuple[str, ...] = STYLES
    """Gold CoT styles, one drawn per problem: equation, sentence, verbose, reasoning (steps
    linked by First / Then / But / Therefore: Galichin et al.'s reasoning words, so ReasonScore
    has anchors)."""
    ops: tuple[str, ...] = ("+", "-", "*", "/")
    """The operations steps may use (e.g. + and - only: arithmetic a small model can do)."""
    max_value: int = 200
    """Largest value any step may produce."""
    seed: int = 0
    """Seeds the generator."""

    def __post_init__(self):
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"wordgen: need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        bad = sorted(set(self.styles) - set(STYLES))
        if bad or not self.styles:
            raise ValueError(f"wordgen: styles must be a non-empty subset of {list(STYLES)}, got {bad}")
        bad_ops = sorted(set(self.ops) - set(VERB))
        if bad_ops or not self.ops or not set(self.ops) & {"+", "-"}:
            raise ValueError(f"wordgen: ops must be a subset of {list(VERB)} holding + or -, got {list(self.ops)}")
        for name in ("distractor_rate", "unanswerable_rate", "eval_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"wordgen: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.n < 1 or self.max_value < 10:
            raise ValueError("wordgen: n must be >= 1 and max_value >= 10")


def apply(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]


def _step(rng: random.Random, a: int, cfg: WordGenConfig) -> tuple[str, int] | None:
    """An operation on `a` whose result stays a whole number in [0, max_value]."""
    choices = []
    if a < cfg.max_value and "+" in cfg.ops:
        choices.append(("+", rng.randint(1, min(30, cfg.max_value - a))))
    if a > 1 and "-" in cfg.ops:
        choices.append(("-", rng.randint(1, min(30, a - 1))))
    if 1 < a <= cfg.max_value // 2 and "*" in cfg.ops:
        choices.append(("*", rng.randint(2, max(2, min(5, cfg.max_value // a)))))
    divisors = [d for d in range(2, 7) if a % d == 0 and a // d > 0]
    if divisors and "/" in cfg.ops:
        choices.append(("/", rng.choice(divisors)))
    if not choices:
        return None
    op, b = rng.choice(choices)
    return (op, b) if 0 <= apply(a, op, b) <= cfg.max_value else None


def render_step(style: str, a: int, op: str, b: int, c: int, item: str, name: str, j: int = 0, n: int = 1) -> str:
    """Step j of n of a gold CoT in a style; every style holds the equation `a op b = c`."""
    eq = f"{a} {op} {b} = {c}"
    if style == "equation":
        return eq
    if style == "sentence":
        return f"{name} now has {eq} {item}."
    if style == "reasoning":
        lead = "Therefore" if j == n - 1 else "First" if j == 0 else "But" if op == "-" else "Then"
        return f"{lead}, {eq} {item}."
    return f"{name} had {a} {item} and this {VERB[op]} {b}, so {eq} {item}; {name} has {c} {item} now."


def problem(rng: random.Random, cfg: WordGenConfig, index: int) -> dict:
    """One problem as a JSONL row."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    other = rng.choice([m for m in NAMES if m != name])
    n_steps = rng.randint(cfg.min_steps, cfg.max_steps)
    while True:  # a chain of n_steps valid operations (a few retries at most)
        start = rng.randint(2, min(40, cfg.max_value))
        ops, a = [], start
        for _ in range(n_steps):
            s = _step(rng, a, cfg)
            if s is None:
                break
            c = apply(a, *s)
            ops.append([a, s[0], s[1], c])
            a = c
        if len(ops) == n_steps:
            break
    unanswerable = rng.random() < cfg.unanswerable_rate
    missing = rng.randrange(n_steps) if unanswerable else None
    fill = lambda t, **kw: t.format(n=name, item=item, place=rng.choice(PLACES), m=other,  # noqa: E731
                                    item2=rng.choice([i for i in ITEMS if i != item]), k=rng.randint(2, 60), **kw)
    sentences = [f"{name} has {start} {item}."]
    for j, (x, op, b, c) in enumerate(ops):
        sentences.append(fill(MISSING[op]) if j == missing else fill(rng.choice(EVENTS[op]), b=b))
        if rng.random() < cfg.distractor_rate:
            sentences.append(fill(rng.choice(DISTRACTORS)))
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    style = rng.choice(cfg.styles)
    split = "eval" if _unit(question) < cfg.eval_fraction else "train"
    row = {"id": f"wg-{cfg.seed}-{index:05d}", "question": question, "split": split, "style": style,
           "n_steps": n_steps, "ops": ops}
    if unanswerable:
        row["unanswerable"] = True
        row["answer"] = f"The quantity of step {missing + 1} is not given, so the answer cannot be determined."
    else:
        steps = [render_step(style, x, op, b, c, item, name, j, n_steps) for j, (x, op, b, c) in enumerate(ops)]
        row["answer"] = "\n".join(steps) + f"\n#### {ops[-1][3]}"
    return row


def _unit(text: str) -> float:
    """A number in [0, 1) from the text's hash: the split, independent of order and count."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16 ** 12


def generate(cfg: WordGenConfig) -> list[dict]:
    """`cfg.n` problems (questions distinct), seeded."""
    rng = random.Random(f"wordgen-{cfg.seed}")
    rows, seen = [], set()
    tries = 0
    while len(rows) < cfg.n:
        tries += 1
        if tries > 20 * cfg.n:
            raise ValueError(f"wordgen: could not make {cfg.n} distinct problems; lower n or raise max_value")
        row = problem(rng, cfg, len(rows))
        if row["question"] not in seen:
            seen.add(row["question"])
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    from activations.atomic import write_atomic

    ap = argparse.ArgumentParser(prog="python -m experiments.tasks.wordgen", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSONL file to write")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min_steps", type=int, default=2)
    ap.add_argument("--max_steps", type=int, default=6)
    ap.add_argument("--styles", default=",".join(STYLES), help="comma-separated CoT styles")
    ap.add_argument("--ops", default="+-*/", help="the operations steps may use, e.g. +- (one string)")
    a = ap.parse_args(argv)
    try:
        cfg = WordGenConfig(n=a.n, seed=a.seed, min_steps=a.min_steps, max_steps=a.max_steps,
                            styles=tuple(a.styles.split(",")), ops=tuple(a.ops))
    except ValueError as e:
        print(f"wordgen: error: {e}", file=sys.stderr)
        return 2
    rows = generate(cfg)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "".join(json.dumps(r) + "\n" for r in rows))
    n_eval = sum(r["split"] == "eval" for r in rows)
    print(f"wordgen: wrote {out}: {len(rows)} problems ({n_eval} eval, "
          f"{sum('unanswerable' in r for r in rows)} unanswerable)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
