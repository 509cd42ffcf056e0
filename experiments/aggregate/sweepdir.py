"""The layout of a sweep folder, `runs/NAME/`, and writing an aggregate into it.

    seed-<S>/                       one ordinary run directory per seed (`experiments.rundir`)
    aggregate.json                  `combine.aggregate_report` + the command and the runs
    aggregate.md                    its table (`markdown.render_markdown`)
    aggregate.png                   its figure (`figure.draw`)
    aggregate-figure.json           the numbers the figure draws

    SweepDir(root)                  these paths; `foreign()` names what else the folder holds
    claim_sweep(out)                before `saelab sweep` runs anything: new, empty or a sweep's
    claim_aggregate(out, overwrite) before `saelab aggregate` writes: new, empty, a sweep's
                                    runs, or an aggregate (replaced with --overwrite)
    write_aggregate(out, seeds, command) -> aggregate.json's content

The rule is the lab's one rule for output folders (`activations.atomic.claim_out_dir`): a
folder holding anything saelab did not write there is refused, --overwrite or not.
"""

from __future__ import annotations

import re
from pathlib import Path

from activations.atomic import claim_out_dir, write_atomic, write_json_atomic

AGGREGATE_JSON = "aggregate.json"
AGGREGATE_MD = "aggregate.md"
AGGREGATE_PNG = "aggregate.png"
AGGREGATE_FIGURE = "aggregate-figure.json"
_SEED_DIR = re.compile(r"-?\d+")
_TEMPORARY = re.compile(r"\..+\.(tmp|old)-\d+")  # what an interrupted write_atomic leaves


class SweepDir:
    """The paths of one sweep folder (nothing is created or read here)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.json = self.root / AGGREGATE_JSON
        self.md = self.root / AGGREGATE_MD
        self.png = self.root / AGGREGATE_PNG
        self.figure_json = self.root / AGGREGATE_FIGURE

    def seed(self, seed: int) -> Path:
        """The run directory of one seed."""
        return self.root / f"seed-{seed}"

    def outputs(self) -> list[Path]:
        """The aggregate's files (aggregate.json last: written last, it marks a finished one)."""
        return [self.png, self.figure_json, self.md, self.json]

    def _ours(self, p: Path) -> bool:
        name = p.name
        if p.is_dir() and not p.is_symlink():
            return name.startswith("seed-") and bool(_SEED_DIR.fullmatch(name.removeprefix("seed-")))
        return name in {o.name for o in self.outputs()} or bool(_TEMPORARY.fullmatch(name))

    def owned(self) -> set[str]:
        """The entries of the folder saelab writes in a sweep folder."""
        return {p.name for p in self.root.iterdir() if self._ours(p)} if self.root.is_dir() else set()

    def foreign(self) -> list[str]:
        """The entries of the folder a sweep or an aggregate does not write (sorted)."""
        return sorted({p.name for p in self.root.iterdir()} - self.owned()) if self.root.is_dir() else []


def claim_sweep(out: SweepDir) -> None:
    """`saelab sweep` takes up its own folder again (the runs resume, the aggregate is
    rewritten); a folder holding anything else is refused before any seed runs."""
    claim_out_dir(out.root, "a sweep (seed-<S>/ run directories and an aggregate)", lambda d: not out.foreign(),
                  overwrite=True, owns=lambda d: out.owned())


def claim_aggregate(out: SweepDir, overwrite: bool) -> None:
    """`saelab aggregate --out`: a folder of a sweep's runs without an aggregate takes one;
    an aggregate there is replaced only with `overwrite`."""
    if out.root.is_dir() and not out.root.is_symlink() and not out.foreign() \
            and not any(p.exists() for p in out.outputs()):
        return
    claim_out_dir(out.root, "a seed aggregate", lambda d: out.json.is_file(), overwrite, owns=lambda d: out.owned())


def write_aggregate(out: SweepDir, seeds: list, command: str) -> dict:
    """Aggregate the reports of `seeds` (`runs.Seed`s) into `out`'s four files; returns
    aggregate.json's content. `command` is the command line that made it (the markdown's
    first line)."""
    from experiments.aggregate import figure
    from experiments.aggregate.combine import aggregate_report
    from experiments.aggregate.markdown import render_markdown

    from experiments.claims import evaluate, over_seeds

    agg = aggregate_report([s.report for s in seeds])
    paths = {str(s.seed): str(s.run.root) for s in seeds}
    # each claim checked on every seed's report, then combined (holds on every seed, ...)
    claims = over_seeds({str(s.seed): evaluate(s.report) for s in seeds})
    result = {"command": command, "runs": {s: paths[s] for s in agg["seeds"]}, **agg, "claims": claims}
    out.root.mkdir(parents=True, exist_ok=True)
    data = figure.figure_data(result)
    figure.save(data, out.png)
    write_json_atomic(out.figure_json, data)
    write_atomic(out.md, render_markdown(result))
    write_json_atomic(out.json, result)
    return result
