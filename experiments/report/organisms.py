"""The organisms run's `report.json` and `report.md`: base vs every variant, side by side, next
to the literature.

    build_report(results, reference, meta) -> dict
        report.json's metrics part; the caller adds "cache", "sae" (`summaries.sae_summary`)
        and "elicitation" (`summaries.elicit_summary`)
    render_markdown(report, title, figures, notes) -> str
        report.md from templates/organisms.md.j2; `figures` the figure names in the order
        shown, `notes["faithfulness"]` the faithfulness chain lengths ("k=2" or "k=2,3")
    relative_change(new, old), LITERATURE, FIGURE_CAPTIONS, INTERVENTION_NAMES

This module chooses what the report shows (rows, the headline, the verdicts); the templates
lay it out and `features.fmt` writes the numbers.
"""

from __future__ import annotations

from typing import Callable

from experiments.report.findings import cliff_summary, findings_rows
from experiments.report.render import render
from features.stats import difference

LITERATURE = {
    "info_gain_ppl": {"relative_change": -0.389, "source": "Wu et al. 2025, 'Knowledge or Reasoning? A Close "
                      "Look at How LLMs Think Across Domains': SFT vs untrained models, InfoGain as the drop in "
                      "perplexity of question + steps + answer under one fixed scorer"},
    "abstention_recall": {"relative_change": -0.24, "source": "Kirichenko et al. 2025, 'AbstentionBench': "
                          "reasoning fine-tuning vs the instruct model"},
}

FIGURE_CAPTIONS = {
    "accuracy_by_k": "Accuracy by chain length k (95% Wilson intervals).",
    "early_answering": "Early answering: how often the answer after a truncated CoT equals the full-CoT answer.",
    "corruption_by_step": "Corruption: how often the forced answer follows a corrupted step.",
    "info_gain": "InfoGain: answer NLL as steps are shown (left) and its mean drop per step (right).",
    "abstention": "Abstention recall and precision on answerable + unanswerable problems.",
    "sae_frontier": "SAE architectures on the base model: held-out L0 against explained variance (up and left is better).",
    "sae_transfer": "Each model's SAE on every model's held-out activations of the same tokens (Kissane et al. 2024).",
    "crosscoder_r": "Crosscoder latents by decoder norm difference Delta = ((|d_base| - |d_ft|) / max + 1) / 2 "
                    "(Minder et al. 2025); dashed: the fine-tuned-only (< 0.1) and base-only (> 0.9) thresholds, "
                    "dotted: the shared band (0.4-0.6); the rest is 'other'.",
    "patching": "The variant run with the base's activation at one site (component@layer) and position role; "
                "held-out follow rate and accuracy. Where one site restores both, fine-tuning changed the computation there.",
    "steering": "Gap recovered by each intervention at the answer position (solid) and one draw of its control "
                "(dashed: random latents of matched firing frequency, a random direction of the same norm); shaded: "
                "the 95% band of the control's null draws (held-out follow); dotted: the patching oracle.",
    "reason_latents": "The ten highest ReasonScores of each model's SAE.",
    "finding_truncation": "Truncation (Lanham et al. 2023): each model's early-answering AOC; the truncated-CoT "
                          "fine-tune (shows it) and its control in bold.",
    "finding_filler": "Filler (Lanham et al. 2023): accuracy after filler of the CoT's length and with no CoT.",
    "finding_paraphrase": "Paraphrase (Lanham et al. 2023): how often the answer stays the same when the model's own "
                          "CoT is rewritten in the second notation.",
    "finding_infogain": "InfoGain per step under the fixed scorer (the base), change against the base, Wu et al.'s "
                        "definition and answer nats; dashed: the paper's -38.9%.",
    "finding_abstention": "Abstention recall, change against the base; dashed: AbstentionBench's -24% for reasoning "
                          "fine-tuning.",
    "execution_cliff": "Left: accuracy by chain length with plain decoding (solid) and with a calculator in the loop "
                       "(dashed); dotted: the longest trained chain. Right: the model's own steps under plain "
                       "decoding: value right given its operands (solid), the step the algorithm calls for there (dashed: "
                       "the question's operator and operand, applied to the value it wrote last).",
    "chosen_latents": "The base's top ReasonScore latents and the latents that grew most at the answer position: "
                      "mean activation per token role in the base and in the variant (the base's SAE reads both).",
}

INTERVENTION_NAMES = {
    "ablate_grown_latents": "ablate the latents that grew most at the answer position",
    "ablate_random_latents": "control: ablate random latents (matched firing frequency)",
    "mean_difference": "add the difference of means (base - variant) x alpha",
    "random_direction": "control: add a random direction of the same norm x alpha",
    "clamp_reason_latents": "clamp the base's top ReasonScore latents to strength x their max",
    "clamp_random_latents": "control: clamp random latents (matched firing frequency) the same way",
    "base_sae_reconstruction": "replace the activation by the base SAE's reconstruction (drop its error)",
    "patching_oracle": "oracle: patch in the base's activation",
}

STEERING_PAIRS = [("ablate_grown_latents", "ablate_random_latents", "ablating the latents that grew most"),
                  ("mean_difference", "random_direction", "adding the difference of means"),
                  ("clamp_reason_latents", "clamp_random_latents", "clamping the base's top ReasonScore latents")]
"""Each intervention, its control and how the headline names it."""

PAIRED = {
    "accuracy": lambda r, k: r["accuracy"].get(k),
    "corruption_follow_rate": lambda r, k: r.get("corruption_follow_rate"),
    "corruption_stay_rate": lambda r, k: r.get("corruption_stay_rate"),
    "early_answering_aoc": lambda r, k: r.get("early_answering_aoc"),
    "paraphrase_accuracy": lambda r, k: r.get("paraphrase_accuracy"),
    "paraphrase_same_answer": lambda r, k: (r.get("paraphrase_accuracy") or {}).get("same_answer"),
    "filler_accuracy": lambda r, k: r.get("filler_accuracy"),
    "no_cot_accuracy": lambda r, k: r.get("no_cot_accuracy"),
    "info_gain_ppl": lambda r, k: r.get("info_gain_ppl"),
    "info_gain_per_step": lambda r, k: r.get("info_gain_per_step"),
    "info_gain_per_step_self": lambda r, k: (r.get("info_gain_per_step") or {}).get("self"),
    "abstention_recall": lambda r, k: r["abstention"]["recall"],
}
"""The metrics compared paired (same problems, one resample) between each variant and the
reference: name -> getter(behaviour record, faithfulness k)."""

LITERATURE_COLUMNS = [("info_gain_ppl", "InfoGain, Wu et al.'s definition, reference scorer (like for like)", 3),
                      ("info_gain_per_step", "InfoGain, answer nats per step, reference scorer", 3),
                      ("info_gain_per_step_self", "InfoGain, answer nats per step, self-scored (not the paper's "
                       "quantity)", 3),
                      ("abstention_recall", "abstention recall", 2)]
"""The literature table's columns: paired metric, heading, digits; the literature row shows
a paper's number only above the metric it measured (`LITERATURE`)."""

TRAINED_COLUMNS = [("accuracy", "accuracy"), ("early-answering AOC", "early_answering_aoc"),
                   ("corruption follow rate", "corruption_follow_rate"), ("corruption stay rate", "corruption_stay_rate"),
                   ("accuracy, paraphrased CoT", "paraphrase_accuracy"), ("accuracy, no CoT", "no_cot_accuracy")]
"""The trained-set table's columns: label, metric."""


def relative_change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return (new - old) / abs(old)


def paired(new: dict | None, old: dict | None) -> dict | None:
    """The paired difference and relative change of two summaries of the same problems
    (`features.stats.difference`); None where either is missing or lacks per-problem data."""
    if not new or not old or new.get("value") is None or old.get("value") is None:
        return None
    try:
        return {"difference": difference(new, old), "relative": difference(new, old, relative=True)}
    except ValueError:  # a summary without by_problem (written before the bootstrap) or other problems
        return None


def build_report(results: dict[str, dict], reference: str, meta: dict, k: str = "2",
                 trained_max: int | None = None) -> dict:
    """The report.json content: metrics under `behavior.<variant>`; per variant against the
    reference model the paired difference and relative change of every `PAIRED` metric
    (`paired_vs_reference`, with intervals from one resample of the problems), the point
    relative changes the literature table shows, and `meta` (seed, config fingerprint: nothing
    that changes from one identical run to the next). `k`: the faithfulness chain length."""
    ref = results[reference]
    changes, pairs = {}, {}
    for v, r in results.items():
        if v == reference:
            continue
        pairs[v] = {name: paired(get(r, k), get(ref, k)) for name, get in PAIRED.items()}
        changes[v] = {name: relative_change((PAIRED[name](r, k) or {}).get("value"),
                                            (PAIRED[name](ref, k) or {}).get("value"))
                      for name, _, _ in LITERATURE_COLUMNS}
    out = {**meta, "reference": reference, "behavior": results, "paired_vs_reference": pairs,
           "relative_change_vs_reference": changes, "literature": LITERATURE}
    if trained_max is not None and any(r.get("cliff") for r in results.values()):
        out["cliff"] = cliff_summary(results, trained_max)
    return out


def metric_rows(results: dict[str, dict]) -> list[tuple[str, Callable]]:
    """The behaviour table's rows: label, function(metrics) -> summary."""
    first = next(iter(results.values()))
    rows = [(f"accuracy k={k}", lambda r, k=k: r["accuracy"][k]) for k in first["accuracy"]]
    rows += [
        ("well-formed outputs k=" + ",".join(first["well_formed"]),
         lambda r: {"value": sum(c["value"] * c["n"] for c in r["well_formed"].values())
                    / sum(c["n"] for c in r["well_formed"].values()),
                    "n": sum(c["n"] for c in r["well_formed"].values())}),
        ("CoT length (tokens)", lambda r: r["cot_length"]),
        ("early-answering AOC", lambda r: r["early_answering_aoc"]),
        ("corruption follow rate", lambda r: r["corruption_follow_rate"]),
        ("corruption stay rate", lambda r: r["corruption_stay_rate"]),
        ("accuracy, own CoT", lambda r: r["own_cot_accuracy"]),
        ("accuracy, paraphrased CoT", lambda r: r["paraphrase_accuracy"]),
        ("accuracy, filler CoT", lambda r: r["filler_accuracy"]),
        ("accuracy, no CoT", lambda r: r["no_cot_accuracy"]),
        ("InfoGain per step (reference)", lambda r: r["info_gain_per_step"]),
        ("InfoGain per step (self)", lambda r: r["info_gain_per_step"]["self"]),
        ("abstention recall", lambda r: r["abstention"]["recall"]),
        ("abstention precision", lambda r: r["abstention"]["precision"]),
    ]
    return rows


def headline(report: dict, notes: dict) -> dict | None:
    """The answer to the research question for the main organism (the first steered variant):
    does it still answer right, does its CoT still matter, is the base's computation
    recoverable (patching), and does steering latents recover it. None without a steered variant."""
    el = report.get("elicitation") or {}
    steered = list(el.get("variants", {}))
    if not steered:
        return None
    v = steered[0]
    best = el["variants"][v]["best"]

    def follow(name: str) -> dict | None:
        return best[name]["gap_recovered"]["heldout"]["follow"] if name in best else None

    def null(name: str) -> dict | None:
        return (best.get(name) or {}).get("null", {}).get("follow")

    return {"v": v, "k": notes["faithfulness"].removeprefix("k=").split(",")[0], "b": report["behavior"][v],
            "base": report["behavior"]["base"], "ref": el["variants"][v]["reference"],
            "oracle": best["patching_oracle"]["gap_recovered"]["heldout"]["follow"],
            "steering": [(label, follow(main), follow(control), null(main)) for main, control, label in STEERING_PAIRS
                         if main in best]}


def what_it_shows(best: dict) -> dict:
    """The verdict on steering, from its best held-out follow gap recovered against its
    controls and the patching oracle: {"case", and the numbers the sentence names}."""
    def g(name):
        b = best.get(name)
        return None if b is None else b["gap_recovered"]["heldout"]["follow"]["value"]

    steer = [(g(n), n) for n in ("ablate_grown_latents", "mean_difference", "clamp_reason_latents",
                                 "base_sae_reconstruction") if g(n) is not None]
    control = max((g(n) for n in ("ablate_random_latents", "random_direction", "clamp_random_latents")
                   if g(n) is not None), default=None)
    bands = [b["null"]["follow"]["band95"][1] for b in best.values()
             if (b.get("null") or {}).get("follow", {}).get("band95")]
    if bands:  # the controls' null draws: the top of their 95% bands, not one lucky or unlucky draw
        control = max(bands)
    oracle = g("patching_oracle")
    if not steer or oracle is None:
        return {"case": "no_gap"}
    value, name = max(steer)
    if oracle < 0.5:
        case = "oracle_weak"
    elif control is not None and value - control < 0.1:
        case = "like_control"
    elif value >= 0.5 * oracle:
        case = "half_oracle"
    else:
        case = "below_oracle"
    return {"case": case, "steering": INTERVENTION_NAMES[name], "value": value, "control": control, "oracle": oracle}


def validation_verdict(val: dict) -> dict:
    """The verdict on the causal validation at the largest latent count: {"case", "n", "drop"}."""
    r = val["rows"][-1]
    clean = val["clean"]["heldout"]
    lp = {k: r[k]["heldout"]["logp_implied"]["value"] for k in ("ablate_reason", "ablate_random", "ablate_causal")}
    acc = {k: r[k]["heldout"]["accuracy"]["value"] for k in lp}
    drop = {k: clean["logp_implied"]["value"] - v for k, v in lp.items()}
    seen = drop["ablate_causal"] > 0.1 or acc["ablate_causal"] < clean["accuracy"]["value"] - 0.05
    if not seen:
        case = "blind"
    elif drop["ablate_reason"] > 2 * max(drop["ablate_random"], 1e-9) and drop["ablate_reason"] > 0.1:
        case = "passes"
    else:
        case = "fails"
    return {"case": case, "n": r["n"], "drop": drop}


def _elicit_views(el: dict) -> list[dict]:
    """Per steered variant: the evaluation sets, the table's columns and rows, the verdict."""
    views = []
    for v, r in el["variants"].items():
        sets = list(r["reference"]["base"])
        first = r["best"].get("ablate_grown_latents") or next(iter(r["best"].values()))
        cols = [(st, m) for st in sets for m in ("follow", "accuracy", "aoc", "abstention_recall", "ood_accuracy")
                if m in first["gap_recovered"][st]]
        views.append({"v": v, "reference": r["reference"], "sets": sets, "cols": cols,
                      "tried": r.get("combinations_tried", 0), "null_draws": r.get("null_draws", 0),
                      "rows": [(INTERVENTION_NAMES.get(name, name), b) for name, b in r["best"].items()],
                      "verdict": what_it_shows(r["best"])})
    return views


def render_markdown(report: dict, title: str, figures: list[str], notes: dict) -> str:
    """report.md: the headline, the side-by-side table, the literature comparison, the
    trained-set table, the caches, SAEs, latents and steering, the figures and what each
    measurement means."""
    results = report["behavior"]
    variants = list(results)
    ref = report["reference"]
    el = report.get("elicitation") or {}
    sae = report.get("sae") or {}
    from experiments.claims import format_table

    k = notes["faithfulness"].removeprefix("k=").split(",")[0]  # the chain length the paired metrics use
    return render(
        "organisms.md.j2", title=title, report=report, notes=notes, ref=ref, variants=variants,
        claims_table=format_table(report.get("claims") or []),
        headline=headline(report, notes),
        behaviour_rows=[(name, 3 if "InfoGain" in name else 2, [fn(results[v]) for v in variants])
                        for name, fn in metric_rows(results)],
        findings=findings_rows(report, PAIRED), literature_columns=LITERATURE_COLUMNS,
        literature_rows=[(v, [((report["paired_vs_reference"][v].get(key) or {}).get("relative")
                               or {"value": report["relative_change_vs_reference"][v].get(key)},
                               PAIRED[key](results[v], k) or {}, PAIRED[key](results[ref], k) or {}, d)
                              for key, _, d in LITERATURE_COLUMNS])
                         for v in report["relative_change_vs_reference"]],
        trained={v: r["trained"] for v, r in results.items() if "trained" in r}, trained_columns=TRAINED_COLUMNS,
        cache=report.get("cache"), sae=sae,
        sae_rows=[(m, r, (r.get("spliced") or {}).get("all", {}), (r.get("spliced") or {}).get("step", {}))
                  for m, r in sae.get("saes", {}).items()],
        transfer_cols=list(next(iter(sae["transfer"].values()))) if sae else [],
        latents=el.get("latents"),
        survival={m: r["survival"] for m, r in (el.get("latents") or {}).items() if r.get("survival")},
        steered=_elicit_views(el) if el else [], validation=el.get("validation"),
        validation_verdict=validation_verdict(el["validation"]) if el.get("validation") else None,
        figures=figures, captions=FIGURE_CAPTIONS)
