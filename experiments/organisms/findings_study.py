"""The findings study: the organisms' behavioural findings alone, cheap enough to sweep over
seeds (a config with `study: findings`, e.g. `experiments/configs/findings.yaml`).

    organisms   models/<name>/              train (or reuse) base and variants
    behavior    behavior/<name>.json        the behavioural suite, the execution cliff [all ranks]
    figures     figures/<fig>.png + .json   behaviour figures and one per finding
    report      report.json, report.md      the findings' claims and the literature table

The same stages as the organisms study's (`experiments.organisms.study`), without the
activation caches, SAEs, patching and steering.
"""

from __future__ import annotations

from experiments.organisms.study import STAGES as ORGANISM_STAGES
from experiments.organisms.stages.behavior import behavior_outputs
from experiments.organisms.stages.figures import figure_data, figure_names
from experiments.organisms.stages.report import build
from experiments.runconfig import RunConfig
from experiments.stages.figures import figures_stage
from experiments.stages.report import report_stage

CONFIG = RunConfig


def _report_inputs(run, cfg) -> list:
    return behavior_outputs(run, cfg) + [p for p in run.figure_files(figure_names(cfg)) if p.suffix == ".json"]


_BY_NAME = {s.name: s for s in ORGANISM_STAGES}
STAGES = [
    _BY_NAME["organisms"],
    _BY_NAME["behavior"],
    figures_stage(figure_names, figure_data, ("study", "organisms", "behavior"), behavior_outputs),
    report_stage(build, _report_inputs),
]
