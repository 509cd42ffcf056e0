"""Golden outputs: the quick organisms run and the tiny pair run give the report.json and
figures recorded in tests/golden/ (written by the commit named in tests/golden/machine.json:
re-recorded when the bootstrap intervals, null draws, claims and reference metrics changed
the numbers on purpose), field by field and pixel for pixel.

Two halves, because float training differs between CPUs:
- the data (report.json, figures/*.json) is compared only on a machine like the one that
  recorded it (same torch CPU capability, torch and numpy); elsewhere that test is skipped,
  naming the difference;
- the drawing (each golden figures/NAME.json redrawn -> the golden PNG's pixels) needs only
  the same matplotlib, so it runs everywhere it can.

Fields the rebuilt engine adds, or whose value changed on purpose, are listed in CHANGED.
To record new goldens after a change of numbers on purpose: `python -m tests.test_golden DIR`
with DIR holding a finished quick run and a finished tiny pair run (see `record`).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

GOLDEN = Path(__file__).parent / "golden"
MACHINE = json.loads((GOLDEN / "machine.json").read_text())
CHANGED: set[str] = set()
"""Top-level report fields whose value changed on purpose since the goldens were recorded
(e.g. "config_fingerprint" when the config gains a field): none now."""


def _machine() -> dict:
    import matplotlib
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__}


def _same_machine(keys=("cpu_capability", "torch", "numpy")) -> None:
    here = _machine()
    diff = {k: (MACHINE[k], here[k]) for k in keys if MACHINE[k] != here[k]}
    if diff:
        pytest.skip(f"goldens were recorded with {', '.join(f'{k} {a}' for k, (a, _) in diff.items())}; "
                    f"this machine has {', '.join(f'{k} {b}' for k, (_, b) in diff.items())}")


WALL_CLOCK = ("seconds", "speedup")
"""Keys whose values are wall-clock times (the compression study's timing): present in both,
never equal across runs, so only their presence is compared."""


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ, as paths (floats exactly; NaN equals NaN; the values of
    `WALL_CLOCK` keys not compared)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in golden" for k in a.keys() - b.keys()]
        out += [f"{path}.{k}: new" for k in b.keys() - a.keys()]
        for k in a.keys() & b.keys() - set(WALL_CLOCK):
            out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in golden, {len(b)} now"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b and type(a) is type(b) else [f"{path}: golden {a!r}, now {b!r}"]


def _compare_run(run: Path, golden: Path) -> None:
    from matplotlib.image import imread

    new, old = (json.loads((d / "report.json").read_text()) for d in (run, golden))
    for k in CHANGED:
        new.pop(k, None), old.pop(k, None)
    for r in (new, old):  # paths name where this checkout and the tiny pair are, not numbers
        if isinstance(r.get("task", {}).get("path"), str):
            r["task"]["path"] = r["task"]["path"][r["task"]["path"].find("experiments/tasks/"):]
        for m in r.get("models", {}).values():
            m["path"] = Path(m["path"]).name
    assert differences(old, new) == []
    for png in sorted((golden / "figures").glob("*.png")):
        data = json.loads(png.with_suffix(".json").read_text())
        assert differences(data, json.loads((run / "figures" / f"{png.stem}.json").read_text())) == [], png.stem
        assert np.array_equal(imread(png), imread(run / "figures" / png.name)), f"{png.stem}: other pixels"


def test_quick_run_gives_the_golden_report_and_figures(quick_run):
    _same_machine()
    _compare_run(quick_run[0], GOLDEN / "quick")


def pair_tiny_run(tmp: Path) -> Path:
    """The pair-tiny config (as `make pair-demo` runs it) on a fresh tiny qwen2 pair."""
    from experiments.cli import main
    from experiments.config import CONFIG_DIR
    from experiments.pairs.tiny import save_tiny_pair

    save_tiny_pair(tmp / "tiny-qwen2", "qwen2", 0, 0.05)
    data = yaml.safe_load((CONFIG_DIR / "pair-tiny.yaml").read_text())
    data["models"]["base"]["path"] = str(tmp / "tiny-qwen2" / "base")
    data["models"]["variants"]["perturbed"]["path"] = str(tmp / "tiny-qwen2" / "perturbed")
    (tmp / "pair-tiny.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(tmp / "pair-tiny.yaml"), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_pair_tiny_run_gives_the_golden_report_and_figures(tmp_path):
    _same_machine()
    _compare_run(pair_tiny_run(tmp_path), GOLDEN / "pair-tiny")


@pytest.mark.parametrize("run", ["quick", "pair-tiny"])
def test_golden_figure_data_redraws_to_the_golden_pixels(run, tmp_path):
    """The drawing alone: figures/NAME.json -> NAME.png, through today's figure code."""
    from matplotlib.image import imread

    from experiments.figures.registry import render_figure, save_figure

    _same_machine(("matplotlib",))
    out = GOLDEN / run / "figures"
    for png in sorted(out.glob("*.png")):
        data = json.loads(png.with_suffix(".json").read_text())
        save_figure(render_figure(png.stem, data), data, tmp_path, png.stem)
        assert np.array_equal(imread(png), imread(tmp_path / png.name)), f"{run}/{png.stem}: other pixels"


def test_differences_names_every_changed_field():
    a = {"x": 1.0, "y": [1, 2], "z": {"w": float("nan")}, "gone": 1}
    b = {"x": 1.0000001, "y": [1, 2, 3], "z": {"w": float("nan")}, "new": 2}
    assert sorted(differences(a, b)) == [".gone: only in golden", ".new: new", ".x: golden 1.0, now 1.0000001",
                                         ".y: 2 items in golden, 3 now"]
    assert differences({"n": 1}, {"n": 1.0}) == [".n: golden 1, now 1.0"]  # an int turned float is a change


def record(src: Path) -> None:
    """Copy report.json and figures of SRC/quick and SRC/pair-tiny into tests/golden/."""
    import subprocess

    for name in ("quick", "pair-tiny"):
        dest = GOLDEN / name
        shutil.rmtree(dest, ignore_errors=True)
        (dest / "figures").mkdir(parents=True)
        shutil.copy(src / name / "report.json", dest)
        for f in (src / name / "figures").iterdir():
            shutil.copy(f, dest / "figures")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (GOLDEN / "machine.json").write_text(json.dumps({"commit": commit, **_machine()}, indent=1))


if __name__ == "__main__":
    record(Path(sys.argv[1]))
