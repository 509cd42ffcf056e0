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
