"""`saelab claims`: the claims table of a finished run (or of several seeds' runs)."""

from __future__ import annotations

from dataclasses import dataclass

from simple_parsing import field as simple_field


@dataclass
class ClaimsArgs:
    """Check the statements the README and report make in words on finished runs: one table
    (claim, status, the numbers it used, the statement). With several run directories (seeds
    of one config) each is checked and the claims combined: holds on every seed, fails on at
    least half, else undecided. Exits 1 when a claim fails."""

    runs: list[str] = simple_field(positional=True, nargs="+", metavar="RUN_DIR")
    """Run directories with a report.json (`saelab run` or `saelab sweep` made them)."""


def cmd_claims(args: ClaimsArgs) -> int:
    import json

    from experiments.claims import evaluate, failed, format_table, over_seeds
    from experiments.studies import open_run

    tables = {}
    for path in args.runs:
        run, _, _ = open_run(path)
        run.require({"report": [run.report_json]}, "saelab claims")
        report = json.loads(run.report_json.read_text())
        tables[str(report.get("seed", path))] = evaluate(report)  # evaluated now: claims edited since count
    table = next(iter(tables.values())) if len(tables) == 1 else over_seeds(tables)
    print(format_table(table))
    return 1 if failed(table) else 0
