"""The engine's code fingerprints: a stage's code is the import closure of the modules it
runs, so editing one of them re-runs it and editing anything else does not. Checked on a
temporary copy of the project (its sources hashed in place of the checkout's), so the
edits never touch the checkout."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from experiments.engine.code import PACKAGES, ROOT, closure, closure_hash, imports
from experiments.studies import study

@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("project")
    for p in PACKAGES:
        shutil.copytree(ROOT / p, dest / p, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _hashes(root: Path) -> dict:
    """Every stage's code hash, with the sources read from the project copy at `root`."""
    return {name: {s.name: closure_hash(s.code_roots(), root) for s in study(name).stages}
            for name in ("organisms", "pairs")}


def _edit(root: Path, module: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + "\n# an edit\n")
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)  # a new mtime even on a coarse clock


def _changed(before: dict, after: dict) -> dict[str, list[str]]:
    return {s: [n for n in before[s] if before[s][n] != after[s][n]] for s in before}


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(copy):
    before = _hashes(copy)
    assert before == _hashes(ROOT)  # the copy hashes as the checkout does
    _edit(copy, "experiments.behavior.faithfulness")  # the organisms' behaviour suite (and the elicitation's probes)
    after = _hashes(copy)
    changed = _changed(before, after)
    assert "behavior" in changed["organisms"] and "cache" not in changed["organisms"] \
        and "sae" not in changed["organisms"] and "organisms" not in changed["organisms"]

    _edit(copy, "sae.evaluate")  # used by the shared SAE stage of both studies
    again = _hashes(copy)
    changed = _changed(after, again)
    assert "sae" in changed["organisms"] and "sae" in changed["pairs"]
    assert "behavior" not in changed["organisms"] and "behavior" not in changed["pairs"]

    _edit(copy, "experiments.pairs.behavior")  # the text suite: the pairs' stages that run it
    changed = _changed(again, third := _hashes(copy))
    assert changed["organisms"] == [] and {"behavior", "steer"} <= set(changed["pairs"])

    template = copy / "experiments" / "report" / "templates" / "organisms.md.j2"
    # a template is source of the package that renders it (experiments.report): both reports
    template.write_text(template.read_text() + "\n")
    changed = _changed(third, fourth := _hashes(copy))
    assert changed == {"organisms": ["report"], "pairs": ["report"]}

    _edit(copy, "experiments.cli")  # no stage runs the command line
    assert _changed(fourth, _hashes(copy)) == {"organisms": [], "pairs": []}


def test_the_closure_follows_imports_inside_functions_and_parent_packages():
    found = closure(["experiments.organisms.stages.behavior"])
    # imported inside run_behavior only, and their packages, whose __init__ runs on import
    assert {"experiments.behavior.model_eval", "experiments.behavior", "experiments.tasks.arithmetic"} <= found
    assert not any(m.startswith(("sae", "experiments.elicit")) for m in found)
    # of features, only the statistics every summary is made with (features.stats imports nothing of saelab)
    # and the decoding interventions the compress and switch sweeps apply (none reads an SAE)
    assert {m for m in found if m.startswith("features")} == {"features", "features.stats", "features.steer",
                                                               "features.compress", "features.thought_switch"}
    # `from pkg import module` imports the module; `from module import name` only the module
    assert "experiments.engine.stage" in imports("experiments.stages.cache")


def test_an_unknown_module_is_refused():
    with pytest.raises(ValueError, match="'torch' is not a module of this project"):
        imports("torch")
