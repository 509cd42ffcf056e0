"""The `figures` stage: every figure the study's data gives, NAME.png with NAME.json (the
numbers it draws) beside it, so `saelab figures RUN` redraws any of them from the JSON alone.

The study says which figures a config gives (`names`, to list the outputs before drawing)
and computes their data from the run's files (`data`: figure name -> its JSON)."""

from __future__ import annotations

from typing import Any, Callable

from experiments.engine.stage import Stage
from experiments.rundir import RunDir

Names = Callable[[Any], list[str]]
"""config -> the figures this run draws, in order."""
Data = Callable[[RunDir, Any], dict[str, dict]]
"""(run, config) -> {figure name: the numbers it draws}."""


def figures_stage(names: Names, data: Data, sections: tuple[str, ...], inputs: Callable[[RunDir, Any], list]) -> Stage:
    """The figures stage of a study."""

    def outputs(run: RunDir, cfg) -> list:
        return run.figure_files(names(cfg))

    def run_figures(run: RunDir, cfg, force: bool) -> None:
        from activations.atomic import replace_dir, temp_dir
        from experiments.figures.registry import write_figures

        tmp = temp_dir(run.figures)
        write_figures(data(run, cfg), tmp)
        replace_dir(tmp, run.figures)

    return Stage("figures", sections, inputs, outputs, run_figures, calls=(names, data))
