"""Drawing any figure of a run from its saved data, and saving it.

A figure module registers each figure it draws with the `figure(name)` decorator on a
function `draw(data) -> matplotlib figure`. This module imports none of them: on the first
lookup it imports every module of the `experiments.figures` package (`pkgutil`), which
registers them all, so a new figure module needs no list to be added to.

    render_figure(name, data) -> Figure      figure `name` from its data (NAME.json), in the shared style
    save_figure(fig, data, out, name) -> [Path]   NAME.png (no date or version in it) + NAME.json
    write_figures(datas, out) -> [Path]      render + save every {name: data}; the files written
    redraw_run(figures_dir, check=False) -> {name: same pixels}   redraw a run's figures from their JSON
    figure_names() -> [str]                  every figure saelab draws, sorted

`render_figure` raises ValueError for an unknown name, and for data missing a field (written
by another saelab version or edited by hand), saying how to redraw it.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import tempfile
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from experiments.figures.style import STYLE  # noqa: E402

_FIGURES: dict[str, Callable[[dict], object]] = {}
_FOUND = False
_SHARED = ("registry", "style")  # the package's modules that draw no figure


def figure(name: str):
    """Register the decorated `draw(data) -> figure` as figure `name` (returns it unchanged)."""
    def register(draw: Callable[[dict], object]) -> Callable[[dict], object]:
        old = _FIGURES.get(name)
        if old is not None and old.__module__ != draw.__module__:  # (a module reloaded registers again)
            raise ValueError(f"figure {name!r} is registered twice: {old.__module__} and {draw.__module__}")
        _FIGURES[name] = draw
        return draw
    return register


def _figures() -> dict[str, Callable[[dict], object]]:
    """Every registered figure, after importing every figure module of this package once."""
    global _FOUND
    if not _FOUND:
        package = __name__.rpartition(".")[0]
        for m in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if m.name not in _SHARED and not m.name.startswith("_"):
                importlib.import_module(f"{package}.{m.name}")
        _FOUND = True
    return _FIGURES


def figure_names() -> list[str]:
    """Every figure saelab draws, sorted."""
    return sorted(_figures())


def render_figure(name: str, data: dict):
    """Figure `name` drawn from its data (what NAME.json holds), in the shared style."""
    figures = _figures()
    if name not in figures:
        raise ValueError(f"unknown figure {name!r}; saelab draws {sorted(figures)}")
    try:
        with plt.rc_context(STYLE):
            fig = figures[name](data)
            fig.tight_layout()
    except KeyError as e:  # data written by an older saelab, or edited by hand
        plt.close("all")
        raise ValueError(f"the data of figure {name!r} has no field {e}: it was written by another saelab "
                         "version; redraw it with the figures stage (saelab run --config RUN/config.yaml "
                         "--out RUN --force figures)") from None
    return fig


def save_figure(fig, data: dict, out: Path, name: str) -> list[Path]:
    """NAME.png and, beside it, NAME.json with the numbers it draws (`render_figure(name, data)`
    draws it again). PNG metadata carries no date or version, so equal pixels mean equal files."""
    with plt.rc_context(STYLE):
        fig.savefig(out / f"{name}.png", metadata={"Software": None})
    plt.close(fig)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    return [out / f"{name}.png", out / f"{name}.json"]


def write_figures(datas: dict[str, dict], out: Path) -> list[Path]:
    """Draw and save every figure of `datas` ({name: data}, as a group's `*_figures` returns)
    into `out`, in order. Returns the files written (PNG, JSON per figure)."""
    written = []
    for name, data in datas.items():
        written += save_figure(render_figure(name, data), data, out, name)
    return written


def redraw_run(figures_dir: Path, check: bool = False) -> dict[str, bool]:
    """Redraw every figure in `figures_dir` from its NAME.json alone. Returns name -> whether
    the new image has the same pixels as the NAME.png there; with `check` nothing is written,
    else each PNG is replaced (by an atomic rename)."""
    import numpy as np
    from matplotlib.image import imread

    names = sorted(p.stem for p in figures_dir.glob("*.json"))
    unknown = [n for n in names if n not in _figures()]
    if unknown:
        raise ValueError(f"{figures_dir} has data of figures saelab does not draw: {unknown}")
    same = {}
    with tempfile.TemporaryDirectory(dir=figures_dir.parent, prefix=".figures-redraw-") as tmp:
        tmp = Path(tmp)
        for name in names:
            data = json.loads((figures_dir / f"{name}.json").read_text())
            save_figure(render_figure(name, data), data, tmp, name)
            old = figures_dir / f"{name}.png"
            same[name] = old.exists() and np.array_equal(imread(old), imread(tmp / f"{name}.png"))
        if not check:
            for name in names:
                os.replace(tmp / f"{name}.png", figures_dir / f"{name}.png")
    return same
