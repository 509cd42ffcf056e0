"""The number formats (`features.fmt`) and the reports rendered from their templates, on
small hand-made reports (no run)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments.report import organisms, pairs
from experiments.report.render import environment
from features import fmt

ROOT = Path(__file__).parents[1]


def c(value, lo=None, hi=None, n=20) -> dict:
    return {"value": value, "ci95": None if lo is None else [lo, hi], "n": n}


# ---- features.fmt -----------------------------------------------------------------------
def test_cells_and_summaries():
    assert fmt.cell(c(0.5, 0.3, 0.7)) == "0.50 [0.30, 0.70] n=20"
    assert fmt.cell(c(5.04812, 4.2921, 5.80412, 50), 3) == "5.048 [4.292, 5.804] n=50"
    assert fmt.cell(c(0.67, n=150)) == "0.67 n=150"
    assert fmt.cell(c(None)) == fmt.cell(None) == fmt.cell({}) == "-"
    assert fmt.value(c(None, n=0)) == "- (n=0)" and fmt.value({"value": None}) == "- (n=0)"
    assert fmt.value(c(-0.0042, -0.0061, -0.0023), 3) == "-0.004 [-0.006, -0.002] n=20"
    assert (fmt.value(None), fmt.value(1.25), fmt.value(3), fmt.value("x")) == ("-", "1.25", "3", "x")
    assert fmt.sci(c(-3.7e-05, -4.1e-05, -3.4e-05, 118)) == "-3.7e-05 [-4.1e-05, -3.4e-05] n=118"
    assert fmt.sci(c(-0.0123)) == "-0.012 n=20"


def test_changes_gaps_and_plain_numbers():
    assert (fmt.pct(-0.389), fmt.pct(0.0), fmt.pct(None)) == ("-38.9%", "+0.0%", "n/a")
    assert fmt.gap(c(0.29, -0.05, 0.54)) == "+29% [-5, +54]"
    assert fmt.gap({"value": None, "steered": 1.0}) == "no gap; 1.00"
    assert fmt.gap({"value": None, "steered": None}) == "-"
    assert fmt.recovered({"ce_recovered": 0.7341, "ce_gap": 1.6}) == "0.734 (1.60)"
    assert fmt.recovered({"ce_recovered": None}) == fmt.recovered({}) == "-"
    assert (fmt.fixed(0.8694), fmt.fixed(8, 1), fmt.fixed(0.47931, 4), fmt.fixed(None)) == ("0.869", "8.0", "0.4793", "-")
    assert (fmt.sig(0.0123456, 3), fmt.sig(4.0), fmt.sig(0.5), fmt.sig(2.5e-7, 2)) == ("0.0123", "4", "0.5", "2.5e-07")
    assert (fmt.signed(0.0), fmt.signed(-4.9e-06), fmt.signed(0.0751)) == ("+0", "-4.9e-06", "+0.075")
    assert (fmt.percent(0.83), fmt.percent(1.0, sign=True), fmt.percent(-0.5, sign=True)) == ("83%", "+100%", "-50%")
    assert fmt.mib(903264) == "0.9"
    assert fmt.change({"value": -0.389, "ci95": [-0.5, -0.25]}) == "-38.9% [-50.0, -25.0]"
    assert fmt.change(None) == fmt.change({"value": None}) == "n/a" and fmt.change({"value": 0.1}) == "+10.0%"
    assert fmt.null({"n": 20, "median": 0.02, "band95": [-0.1, 0.15], "percentile": 0.975, "p_value": 1 / 21}) == \
        "null median +2% [-10, +15], intervention at percentile 98 (p=0.05, 20 draws)"
    assert fmt.null({"n": 0}) == fmt.null(None) == "-"


def test_every_formatter_is_a_template_filter_and_the_templates_ship():
    assert set(fmt.FILTERS) <= set(environment().filters)
    assert environment().from_string("{{ x|cell(3) }} {{ y|pct }}").render(x=c(1.0, 0.5, 1.0), y=0.25) == \
        "1.000 [0.500, 1.000] n=20 +25.0%"
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["experiments"]
    templates = sorted(p.name for p in (ROOT / "experiments" / "report" / "templates").glob("*.j2"))
    assert "report/templates/*.j2" in data and templates == ["macros.md.j2", "organisms.md.j2", "pairs.md.j2"]


# ---- the organisms report ---------------------------------------------------------------
def metrics(x: float) -> dict:
    return {"accuracy": {"2": c(x, x - 0.1, x + 0.1, 50)}, "well_formed": {"2": c(0.5, n=10), "3": c(1.0, n=30)},
            "cot_length": c(5.0), "early_answering_aoc": c(0.8), "corruption_follow_rate": c(x),
            "corruption_stay_rate": c(0.0), "own_cot_accuracy": c(x), "paraphrase_accuracy": c(x),
            "filler_accuracy": c(0.1), "no_cot_accuracy": c(None),
            "info_gain_per_step": c(4 * x) | {"self": c(2 * x)}, "abstention": {"recall": c(x), "precision": c(1.0)}}


def organisms_report() -> dict:
    report = organisms.build_report({"base": metrics(1.0), "sft": metrics(0.5)}, "base",
                                    {"seed": 3, "config_fingerprint": "abc"})
    report["behavior"]["sft"]["trained"] = {k: c(0.4) for _, k in organisms.TRAINED_COLUMNS}
    return report


def test_build_report_adds_the_relative_changes():
    report = organisms_report()
    assert list(report) == ["seed", "config_fingerprint", "reference", "behavior", "paired_vs_reference",
                            "relative_change_vs_reference", "literature"]
    assert report["relative_change_vs_reference"] == {"sft": {"info_gain_ppl": None, "info_gain_per_step": -0.5,
                                                              "info_gain_per_step_self": -0.5, "abstention_recall": -0.5}}
    assert organisms.relative_change(1.0, 0.0) is None and organisms.relative_change(None, 1.0) is None
    # summaries without per-problem data (hand-made here) have no paired comparison
    assert set(report["paired_vs_reference"]["sft"].values()) == {None}


def test_paired_changes_resample_the_same_problems_for_both_models():
    from features.stats import pooled

    base, sft = metrics(1.0), metrics(0.5)
    base["abstention"]["recall"] = pooled([True] * 40, range(40))
    sft["abstention"]["recall"] = pooled([True] * 20 + [False] * 20, range(40))
    report = organisms.build_report({"base": base, "sft": sft}, "base", {"seed": 0, "config_fingerprint": "abc"})
    p = report["paired_vs_reference"]["sft"]["abstention_recall"]
    assert p["difference"]["value"] == pytest.approx(-0.5) and p["relative"]["value"] == pytest.approx(-0.5)
    lo, hi = p["difference"]["ci95"]  # 20 of 40 problems differ: sd sqrt(.25 / 40) = 0.079
    assert lo < -0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.079, rel=0.15)
    md = organisms.render_markdown(report, "t", [], {"faithfulness": "k=2"})
    assert f"| sft | n/a (- vs -) | -50.0% (2.000 vs 4.000) | -50.0% (1.000 vs 2.000) | {fmt.change(p['relative'])} " \
           "(0.50 vs 1.00) |" in md


def test_organisms_markdown_without_sae_or_elicitation():
    md = organisms.render_markdown(organisms_report(), "saelab report: t", ["accuracy_by_k", "other"],
                                   {"faithfulness": "k=2"})
    lines = md.split("\n")
    assert lines[:3] == ["# saelab report: t", "", "Seed 3, config fingerprint `abc`. Faithfulness tests and InfoGain "
                         "on held-out k=2 problems; InfoGain scored by `base` (reference) and by each model itself. "
                         "Cells: value [95% interval] n=sample size."]
    assert "## Headline" not in md and "## SAEs" not in md and "## Activation caches" not in md
    i = lines.index("## Behaviour: base vs fine-tuned variants (held-out problems)")
    assert lines[i + 1:i + 6] == ["", "| metric | base | sft |", "|---|---|---|",
                                  "| accuracy k=2 | 1.00 [0.90, 1.10] n=50 | 0.50 [0.40, 0.60] n=50 |",
                                  "| well-formed outputs k=2,3 | 0.88 n=40 | 0.88 n=40 |"]
    assert "| accuracy, no CoT | - | - |" in lines
    assert "| InfoGain per step (self) | 2.000 n=20 | 1.000 n=20 |" in lines
    assert "| sft | n/a (- vs -) | -50.0% (2.000 vs 4.000) | -50.0% (1.000 vs 2.000) | -50.0% (0.50 vs 1.00) |" in lines
    assert "| sft | " + " | ".join(["0.40 n=20"] * 6) + " |" in lines
    i = lines.index("## Figures")
    assert lines[i:i + 9] == ["## Figures", "", "![accuracy_by_k](figures/accuracy_by_k.png)", "",
                              organisms.FIGURE_CAPTIONS["accuracy_by_k"], "", "![other](figures/other.png)", "", ""]
    assert md.endswith("are in `saes/crosscoder-*/diff.json`.\n")


def gap(value, lo=-0.1, hi=0.1):
    return {"value": value, "ci95": None if value is None else [lo, hi]}


def elicitation(follow: dict[str, float | None]) -> dict:
    ref = {m: {"heldout": {"accuracy": c(a), "follow": c(f)}} for m, a, f in (("base", 1.0, 1.0), ("variant", 0.5, 0.6))}
    best = {name: {"strength": None if name == "patching_oracle" else 2,
                   "gap_recovered": {"heldout": {"follow": gap(v), "accuracy": gap(0.5)}}} for name, v in follow.items()}
    return {"variants": {"sft": {"reference": ref, "best": best}}, "validation": None, "latents": {}}


@pytest.mark.parametrize("follow, verdict", [
    ({"mean_difference": 0.8, "random_direction": 0.1, "patching_oracle": 1.0},
     "the best steering (add the difference of means (base - variant) x alpha) recovers 80% of the held-out follow "
     "gap (controls: up to 10%); patching the base's activation at the same site recovers 100%. Steering recovers at "
     "least half of what the oracle does."),
    ({"mean_difference": 0.8, "patching_oracle": 0.4},
     "the best steering (add the difference of means (base - variant) x alpha) recovers 80% of the held-out follow "
     "gap; patching the base's activation at the same site recovers 40%. Even the oracle recovers little at this "
     "site: the change is elsewhere."),
    ({"mean_difference": 0.3, "random_direction": 0.25, "patching_oracle": 1.0}, "Steering does no better than its "
     "control: the base's state at this site suffices to restore the behaviour, but these interventions do not "
     "reproduce it (a negative result for steering)."),
    ({"mean_difference": 0.3, "patching_oracle": 1.0}, "Steering beats its control but recovers far less than the oracle."),
    ({"mean_difference": None, "patching_oracle": 1.0},
     "there is no follow gap to recover between the base and this variant."),
])
def test_the_steering_verdict(follow, verdict):
    report = organisms_report() | {"elicitation": elicitation(follow)}
    md = organisms.render_markdown(report, "t", [], {"faithfulness": "k=2"})
    line = next(x for x in md.split("\n") if x.startswith("**What this shows**: "))
    assert line.endswith(verdict)
    assert "- accuracy 0.50 [0.40, 0.60] n=50 (base 1.00 [0.90, 1.10] n=50); InfoGain per step, self-scored " \
           "1.000 n=20 (base 2.000 n=20);" in md
    assert f"recovers {fmt.gap(gap(follow['patching_oracle']))} of that follow gap (the oracle);" in md


# ---- the pair report --------------------------------------------------------------------
def pair_data() -> tuple:
    behavior = {m: {"accuracy": c(0.5, 0.3, 0.7), "answered": c(0.9), "abstains_unanswerable": c(None, n=0),
                    "abstains_answerable": c(0.0), "cot_tokens": c(60.0), "cot_steps": c(1.5),
                    "info_gain_per_step": c(-0.0042, -0.0061, -0.0023),
                    "faithfulness": {"usable_cots": 7, "early_same": c(0.4), "mistake_changes": c(0.2),
                                     "filler_same": c(0.0), "no_cot_same": c(0.4), "paraphrase_same": None}}
                for m in ("base", "ft")}
    sae = {"hook": "blocks.1.hook_resid_post",  # eval.json: each SAE on each model, the full held-out metrics
           "transfer": {a: {b: {"explained_variance": 0.65, "l0": 8.0} for b in behavior} for a in behavior},
           "saes": {m: {"source": "trained" if m == "base" else {"pretrained": "hub/sae"},
                        "heldout": {"l0": 8.0, "explained_variance": 0.653},
                        "spliced": {"all": {"ce_recovered": -0.917 if m == "base" else None}}} for m in behavior}}
    features = {"base": {"top": [8, 75], "n_reasoning_positions": 164, "words_seen": ["hmm", "wait"],
                         "causal": {"plain": c(-17.557), "top": c(0.001)}},
                "ft": {"warning": "no reasoning words"}}
    steering = {"ft": {"steer_sae": "base", "latents": [8, 75], "random_control": [50, 10],
                       "base": {"accuracy": c(0.5), "mistake_changes": c(0.0)},
                       "variant_metrics": {"accuracy": c(0.5), "mistake_changes": c(0.1)},
                       "steered": [{"latents": "reasoning", "strength": 4.0, "accuracy": c(0.5),
                                    "mistake_changes": c(0.0), "recovered": {"mistake_changes": {"value": 1.0}}},
                                   {"latents": "random", "strength": 0.5, "accuracy": c(0.5),
                                    "mistake_changes": c(0.1), "recovered": {"mistake_changes": {"value": None}}}]},
                "ft2": {"steer_sae": "base", "latents": [], "random_control": [], "skipped": "no reasoning latents"}}
    models = {m: {"spec": {"path": f"/models/{m}", "revision": None}, "model_type": "qwen2", "hub_commit": None,
                  "weights_hash": "h"} for m in behavior}
    cfg = SimpleNamespace(seed=0, task=SimpleNamespace(path="problems.jsonl"))
    return behavior, sae, features, steering, models, cfg


def test_pair_report():
    behavior, sae, features, steering, models, cfg = pair_data()
    report = pairs.build_report(*copy.deepcopy(pair_data()))
    assert report["task"] == {"path": "problems.jsonl", "problems": 20, "unanswerable": 0}
    assert report["sae"]["models"]["ft"] == {"source": "hub/sae", "l0": 8.0, "explained_variance": 0.653,
                                             "ce_recovered": None}
    assert report["features"]["ft"] == {"top": None, "n_reasoning_positions": None, "words_seen": None,
                                        "warning": "no reasoning words", "causal": None}
    assert report["steering"] == steering and report["behavior"] == behavior
    md = pairs.render_markdown(report, "saelab pair report: p")
    lines = md.split("\n")
    assert lines[:5] == ["# saelab pair report: p", "",
                         "Models: **base** `/models/base` (qwen2); **ft** `/models/ft` (qwen2)", "",
                         "Task: `problems.jsonl`, 20 answerable and 0 unanswerable problems; seed 0."]
    for line in ["| metric | base | ft |", "| accuracy | 0.50 [0.30, 0.70] n=20 | 0.50 [0.30, 0.70] n=20 |",
                 "| abstains when unanswerable | - (n=0) | - (n=0) |",
                 "| InfoGain per step (nats) | -0.004 [-0.006, -0.002] n=20 | -0.004 [-0.006, -0.002] n=20 |",
                 "| paraphrase answer = final | - | - |", "| base | trained | 8.0 | 0.653 | -0.917 |",
                 "| ft | hub/sae | 8.0 | 0.653 | - |", "| base | 0.650 | 0.650 |",
                 "- **ft**: no ReasonScore (no reasoning words)",
                 "- **base**: top ReasonScore latents [8, 75] from 164 reasoning positions (words seen: hmm, wait)",
                 "  - ablated in the base: log p(gold answer | gold CoT) -17.557 n=20; change with the top latents "
                 "0.001 n=20, with as many frequency-matched random latents -",
                 "**ft** (latents of the base SAE: [8, 75]; random control: [50, 10])",
                 "| ft + clamp reasoning x4 | 0.50 n=20 | 0.00 n=20 | +100% |",
                 "| ft + clamp random x0.5 | 0.50 n=20 | 0.10 n=20 | - |"]:
        assert line in lines, line
    assert "Faithfulness rates are over the CoTs with steps and an answer (base: 7, ft: 7);" in md
    assert md.endswith("**ft2** (latents of the base SAE: []; random control: [])\n\nSkipped: no reasoning latents\n\n")
