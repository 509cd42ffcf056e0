"""A stage: what it reads (config sections, files), what it writes, and the function that
writes it. The engine (`experiments.engine.runner`) decides from these alone whether a
stage is up to date; it knows nothing of any study."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from experiments.engine.code import modules_of
from experiments.rundir import RunDir


@dataclass
class Stage:
    name: str
    """The stage's name (`--force NAME`, `--until NAME`, the manifest's key)."""
    sections: tuple[str, ...]
    """Config sections (top-level fields of the study's config) the stage reads; ("*",) = all.
    `seed` always counts."""
    inputs: Callable[[RunDir, Any], list[Path]]
    """Files the stage reads (outputs of earlier stages)."""
    outputs: Callable[[RunDir, Any], list[Path]]
    """Files the stage writes; all must exist for the stage to count as finished."""
    run: Callable[[RunDir, Any, bool], None]
    """(run directory, config, force) -> None; writes the outputs atomically."""
    calls: tuple[Callable, ...] = ()
    """Study functions the stage calls besides `run` (a shared stage's hooks): their modules'
    import closures count in the stage's code fingerprint with `run`'s."""
    distributed: bool = False
    """Under torchrun, every rank runs the stage (it splits the work); otherwise rank 0 alone."""

    def code_roots(self) -> list[str]:
        """The modules whose import closure is the code this stage runs."""
        return modules_of(self.run, *self.calls)
