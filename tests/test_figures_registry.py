"""The figures package: the registry finds every figure module itself, each group's entry
gives data its figure draws, figures redraw from their saved data with the same pixels, and
patching, steering and chosen_latents draw one row per variant. Synthetic data, no run."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import experiments.figures.registry as registry
from experiments.figures.behaviour import BEHAVIOUR, behaviour_figures
from experiments.figures.elicit import ELICIT, elicit_figures
from experiments.figures.pairs import PAIR, pair_figures
from experiments.figures.findings import FINDING_FIGURES
from experiments.figures.sae import SAE, sae_figures
from experiments.figures.style import PANEL, error_bars, interval, model_colors

PACKAGE = Path(registry.__file__).parent
MODELS = ["base", "sft", "dpo"]


def c(value: float | None, n: int = 10) -> dict:
    return {"value": value, "ci95": None if value is None else [value - 0.1, value + 0.1], "n": n}


def behaviour_results() -> dict:
    def metrics(x: float) -> dict:
        nll = {"2": {"0": c(3.0 - x), "1": c(2.0 - x), "2": c(1.0 - x)}}
        return {"accuracy": {"1": c(x), "2": c(x / 2)},
                "early_answering_aoc": c(x) | {"curve": {"2": {"1": c(0.5)}}},
                "corruption_follow_rate": c(x) | {"per_step": {"local": {"0": c(x), "1": c(x)}, "recompute": {"0": c(x)}}},
                "info_gain_per_step": c(x) | {"scorer": "base", "nll": nll, "self": c(x / 2) | {"nll": nll}},
                "abstention": {"recall": c(x), "precision": c(None, 0)}}
    return {m: metrics(0.9 - 0.2 * i) for i, m in enumerate(MODELS)}


def sae_eval() -> dict:
    ev = {"explained_variance": 0.8}
    return {"hook": "blocks.1.hook_resid_post",
            "frontier": {a: {"train": {"architecture": a}, "heldout": {"l0": 8.0 + i, "explained_variance": 0.7, "n": 5}}
                         for i, a in enumerate(("topk", "gated"))},
            "transfer": {s: {a: ev for a in MODELS} for s in MODELS},
            "crosscoders": {"sft": {"r": [0.05, 0.5, 0.95, 0.5], "class": ["base_only", "shared", "finetuned_only", "dead"],
                                    "counts": {"base_only": 1, "shared": 1, "finetuned_only": 1, "dead": 1}}}}


def patching(v: str) -> dict:
    return {"sites": ["resid@0", "resid@1"], "roles": ["question", "answer"], "follow": [[0.1, 0.9], [0.2, None]],
            "accuracy": [[0.5, 0.6], [0.7, 0.8]],
            "unpatched": {m: {"follow": c(0.5), "accuracy": c(0.4)} for m in ("base", "variant")}}


def steering(v: str) -> dict:
    curve = {"strength": [1, 2, 4], "follow_heldout": [0.1, None, 0.5], "accuracy_heldout": [0.2, 0.3, 0.4]}
    return {"curves": {"mean_difference": curve, "random_direction": curve},
            "single": {"patching_oracle": {"follow_heldout": 1.0, "accuracy_heldout": 0.9}}}


def chosen(v: str) -> dict:
    return {"latents": [3, 7], "roles": ["question", "step", "answer"], "base": [[0.1, 0.2]] * 3, "variant": [[0.3, 0.1]] * 3}


def elicit_datas(variants: list[str]) -> dict[str, dict]:
    title = {"title": "t", "models": MODELS}
    return {"patching": title | {"variants": {v: patching(v) for v in variants}},
            "steering": title | {"variants": {v: steering(v) for v in variants}},
            "chosen_latents": title | {"variants": {v: chosen(v) for v in variants}},
            "reason_latents": title | {"models_top": {m: [[1, 0.3], [2, 0.2]] for m in MODELS}}}


def test_the_registry_imports_no_figure_module_and_finds_them_all():
    tree = ast.parse((PACKAGE / "registry.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith("experiments")} == {"experiments.figures.style"}
    assert registry.figure_names() == sorted([*BEHAVIOUR, *SAE, *ELICIT, *PAIR, *FINDING_FIGURES])


def test_figure_modules_import_each_other_by_full_name():
    for f in PACKAGE.glob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.ImportFrom):
                assert n.level == 0 and n.module != "experiments.figures", f"{f.name}: import {n.module}"
                assert not any(a.name.startswith("_") for a in n.names), f"{f.name}: private {n.module}"


def test_style_helpers():
    assert interval(c(0.5)) == {"value": 0.5, "lo": 0.4, "hi": 0.6, "n": 10}
    assert interval(c(None, 0)) == {"value": None, "lo": None, "hi": None, "n": 0}
    lo, hi = error_bars([{"value": 0.5, "lo": 0.25, "hi": 1.0}, {"value": 0.5, "lo": None, "hi": None}])
    assert (lo, hi) == ([0.25, 0.0], [0.5, 0.0])
    assert model_colors(["sft", "base", "dpo"]) == {"sft": "#1f77b4", "base": "black", "dpo": "#ff7f0e"}


def test_unknown_figures_and_missing_fields_are_value_errors():
    with pytest.raises(ValueError, match="unknown figure 'nope'; saelab draws"):
        registry.render_figure("nope", {})
    with pytest.raises(ValueError, match="the data of figure 'abstention' has no field 'recall'"):
        registry.render_figure("abstention", {"title": "t", "models": MODELS})


def test_every_group_writes_data_that_redraws_with_the_same_pixels(tmp_path):
    behaviour = behaviour_figures(behaviour_results(), n_steps=2)
    sae = sae_figures(sae_eval(), MODELS)
    pairs = pair_figures({m: {"accuracy": c(0.5), "answered": c(0.9), "abstains_unanswerable": None,
                              "faithfulness": {k: c(0.3) for k in ("early_same", "mistake_changes", "filler_same",
                                                                   "no_cot_same")}} for m in ("base", "ft")},
                         {"ft": {"base": {"accuracy": c(0.5), "mistake_changes": c(0.2)},
                                 "variant_metrics": {"accuracy": c(0.4), "mistake_changes": None},
                                 "steered": [{"latents": "reasoning", "strength": 2.0, "accuracy": c(0.5),
                                              "mistake_changes": c(0.1)}]}})
    assert (tuple(behaviour), tuple(sae), tuple(pairs)) == (BEHAVIOUR, SAE, PAIR)
    assert all(d["models"] == MODELS for d in [*behaviour.values(), *sae.values()])
    assert pairs["pair_steering"]["variants"]["ft"]["conditions"] == ["base", "ft", "reasoning x2"]
    datas = behaviour | sae | pairs | elicit_datas(["sft"])
    written = registry.write_figures(datas, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}.{ext}" for n in datas for ext in ("png", "json"))
    assert json.loads((tmp_path / "accuracy_by_k.json").read_text()) == json.loads(json.dumps(datas["accuracy_by_k"]))
    assert registry.redraw_run(tmp_path, check=True) == {n: True for n in sorted(datas)}


def test_per_variant_figures_draw_a_row_per_variant():
    one, two = elicit_datas(["sft"]), elicit_datas(["sft", "dpo"])
    for name, panels in (("patching", 2), ("steering", 3), ("chosen_latents", 3)):
        fig1, fig2 = registry.render_figure(name, one[name]), registry.render_figure(name, two[name])
        assert tuple(fig1.get_size_inches()) == pytest.approx((PANEL[0] * panels, PANEL[1] * 1.1))
        assert tuple(fig2.get_size_inches()) == pytest.approx((PANEL[0] * panels, 2 * PANEL[1] * 1.1))
        rows = [ax for ax in fig2.axes if ax.get_label() != "<colorbar>"]
        assert len(rows) == 2 * panels, name
        titles = " ".join(ax.get_title() for ax in rows)
        assert "sft" in titles and "dpo" in titles, name


def test_elicit_figures_skip_what_a_run_has_no_data_for():
    features = {m: {"reason_score": {"top": [{"latent": 1, "value": 0.5}]}} for m in MODELS}
    assert list(elicit_figures(features, {})) == ["reason_latents"]
    assert elicit_figures(features, {})["reason_latents"]["models"] == MODELS
