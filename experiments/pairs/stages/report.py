"""report.json and report.md of a pair run (`experiments.report.pairs`), from the stages' JSON."""

from __future__ import annotations

import json

from experiments.rundir import RunDir


def build(run: RunDir, cfg) -> tuple[dict, str]:
    from experiments.pairs.stages.load import load_behavior
    from experiments.report.pairs import build_report, render_markdown

    names = cfg.model_names()
    read = lambda p: json.loads(p.read_text())  # noqa: E731
    ev = read(run.sae_eval)
    report = build_report({m: b["metrics"] for m, b in load_behavior(run, cfg).items()}, ev,
                          {m: read(run.features(m)) for m in names},
                          {v: read(run.steering(v)) for v in cfg.models.variants},
                          {m: read(run.model_record(m)) for m in names}, cfg)
    findings = {part: read(run.finding(part)) for part in cfg.findings.parts()}
    if findings:
        report["findings"], report["findings_split"] = findings, cfg.findings.split
    from experiments.claims import evaluate

    report["claims"] = evaluate(report)
    return report, render_markdown(report, f"saelab pair report: {run.root.name}")
