"""The `report` stage: report.json (every number, for programs) and report.md (for people,
rendered from templates by `experiments.report`), both rendered before either is written.

The study builds both from the run's files (`build`: (run, config) -> (report, markdown))."""

from __future__ import annotations

import json
from typing import Any, Callable

from experiments.engine.stage import Stage
from experiments.rundir import RunDir

Build = Callable[[RunDir, Any], tuple[dict, str]]


def report_stage(build: Build, inputs: Callable[[RunDir, Any], list]) -> Stage:
    """The report stage of a study (it reads every config section)."""

    def outputs(run: RunDir, cfg) -> list:
        return [run.report_json, run.report_md]

    def run_report(run: RunDir, cfg, force: bool) -> None:
        from activations.atomic import write_atomic

        report, md = build(run, cfg)
        text = json.dumps(report, indent=1)
        write_atomic(run.report_json, text)
        write_atomic(run.report_md, md)

    return Stage("report", ("*",), inputs, outputs, run_report, calls=(build,))
