"""aggregate.md: the command that made it, then one table of every headline metric (mean over
the seeds with n, the between-seed 95% t interval, each seed's value) and what each means.

    render_markdown(aggregate) -> str   `aggregate`: aggregate.json's content (with "command"
                                        and "runs")

Every number is written by `features.fmt`; a seed without a metric is written "-", so a
mean over fewer seeds shows which ones it left out.
"""

from __future__ import annotations

from features.fmt import fixed

DIGITS = 3


def _interval(ci95: list[float] | None) -> str:
    return "-" if not ci95 else f"[{fixed(ci95[0], DIGITS)}, {fixed(ci95[1], DIGITS)}]"


def _per_seed(m: dict, seeds: list[str]) -> str:
    return "; ".join(f"{s}: {fixed(m['seeds'].get(s), DIGITS)}" for s in seeds)


SUMMARY = {"organisms": [("accuracy k=2", "accuracy", ":k=2"), ("corruption follow", "corruption_follow_rate", ""),
                         ("early-answering AOC", "early_answering_aoc", ""),
                         ("accuracy, paraphrased CoT", "paraphrase_accuracy", ""),
                         ("InfoGain (Wu et al.), base-scored", "info_gain_ppl", ""),
                         ("InfoGain nats/step, self-scored", "info_gain_per_step_self", ""),
                         ("abstention recall", "abstention_recall", "")],
           "findings": [("accuracy k=2", "accuracy", ":k=2"), ("early-answering AOC", "early_answering_aoc", ""),
                        ("accuracy, filler CoT", "filler_accuracy", ""), ("accuracy, no CoT", "no_cot_accuracy", ""),
                        ("same answer, paraphrased CoT", "paraphrase_same_answer", ""),
                        ("InfoGain (Wu et al.), base-scored", "info_gain_ppl", ""),
                        ("InfoGain nats/step, base-scored", "info_gain_per_step", ""),
                        ("abstention recall", "abstention_recall", ""),
                        ("accuracy past the trained k, plain", "beyond_plain", ""),
                        ("accuracy past the trained k, calculator", "beyond_tool", ""),
                        ("CoT length, compression steering vs none", "compress_length_cut", ""),
                        ("accuracy at the strongest switch penalty - none", "switch_accuracy_change", ""),
                        ("new output format, new problems", "format_new", ""),
                        ("follows the held-out instruction", "instruction_held_out", "")],
           "pairs": [("accuracy", "accuracy", ""), ("answered", "answered", ""),
                     ("early answer = final", "early_same", ""), ("mistake changes answer", "mistake_changes", "")]}
"""The summary table's columns per study: heading, headline metric, subject suffix."""


def _cell(m: dict | None) -> str:
    """mean [t interval] (seed values), two decimals."""
    if not m or m.get("value") is None:
        return "-"
    ci = f" [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]" if m.get("ci95") else ""
    return f"{m['value']:.2f}{ci} ({' / '.join(fixed(v, 2) for v in m['seeds'].values())})"


def summary_table(aggregate: dict) -> list[str]:
    """The study's key metrics, a row per model: each cell the mean over seeds, its 95% t
    interval and the seeds' values (what the README pastes)."""
    cols = SUMMARY.get(aggregate["study"], [])
    metrics = aggregate["metrics"]
    models = list(dict.fromkeys(m["subject"].split(":")[0] for m in metrics.values()
                                if m["metric"] == (cols[0][1] if cols else None)))
    if not cols or not models:
        return []
    lines = ["## Summary", "", "Mean over the seeds [95% t interval between seeds] (each seed's value).", "",
             "| model | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for model in models:
        lines.append(f"| `{model}` | " + " | ".join(_cell(metrics.get(f"{key}:{model}{suffix}"))
                                                   for _, key, suffix in cols) + " |")
    return lines + [""]


def render_markdown(aggregate: dict) -> str:
    seeds = aggregate["seeds"]
    metrics = aggregate["metrics"]
    lines = [f"`{aggregate['command']}`", "",
             f"# {aggregate['study']}: {len(seeds)} seeds of one config ({', '.join(seeds)})", "",
             "Each headline metric of the runs' report.json: its mean over the seeds that measured it (n of them), "
             "the 95% t interval of that mean between seeds (n - 1 degrees of freedom; none under two seeds), and "
             "each seed's value (\"-\": that seed's report has no value there). The interval says how much the "
             "number moves with the seed, not how precisely one run measured it.", ""]
    lines += ["Runs: " + ", ".join(f"seed {s} `{path}`" for s, path in aggregate.get("runs", {}).items()), ""]
    lines += summary_table(aggregate)
    lines += ["## Every headline metric", ""]
    lines += ["| metric | mean (n) | 95% t interval | per-seed values |", "|---|---|---|---|"]
    for m in metrics.values():
        subject = m["subject"].replace(":", ", ")
        lines.append(f"| `{m['metric']}` {subject} | {fixed(m['value'], DIGITS)} ({m['n']}) | {_interval(m['ci95'])} "
                     f"| {_per_seed(m, seeds)} |")
    if aggregate.get("claims"):
        from experiments.claims import format_table

        lines += ["", "## Claims over the seeds", "",
                  "Each claim of `experiments/claims.py` checked on every seed's report: it holds when it holds on "
                  "every seed, fails when it fails on at least half of them, and is undecided otherwise.", "",
                  format_table(aggregate["claims"])]
    described = {m["metric"]: m["description"] for m in metrics.values()}
    lines += ["", "## The metrics", ""] + [f"- `{name}`: {text}" for name, text in described.items()]
    return "\n".join(lines) + "\n"
