"""`report.json` and `report.md`: base vs every variant, side by side, next to the literature."""

from __future__ import annotations

from typing import Callable

LITERATURE = {
    "info_gain_per_step": {"relative_change": -0.389, "source": "Wu et al. 2025, 'Knowledge or Reasoning? A Close "
                           "Look at How LLMs Think Across Domains': SFT vs untrained models"},
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
    "crosscoder_r": "Crosscoder latents by relative decoder norm r; dashed: the base-only (< 0.1) and "
                    "fine-tuned-only (> 0.9) thresholds.",
    "patching": "The variant run with the base's activation at one site (component@layer) and position role; "
                "held-out follow rate and accuracy. Where one site restores both, fine-tuning changed the computation there.",
    "steering": "Gap recovered by each intervention at the answer position (solid) and its control (dashed: random "
                "latents of matched firing frequency, a random direction of the same norm); dotted: the patching oracle.",
    "reason_latents": "The ten highest ReasonScores of each model's SAE.",
    "chosen_latents": "The base's top ReasonScore latents and the latents that grew most at the answer position: "
                      "mean activation per token role in the base and in the variant (the base's SAE reads both).",
}


def relative_change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return (new - old) / abs(old)


def build_report(results: dict[str, dict], reference: str, meta: dict) -> dict:
    """The report.json content: metrics under `behavior.<variant>`, relative changes vs the
    reference model for the two numbers the literature quantifies, and `meta` (seed, config
    fingerprint: nothing that changes from one identical run to the next)."""
    ref = results[reference]
    changes = {}
    for v, r in results.items():
        if v == reference:
            continue
        changes[v] = {
            "info_gain_per_step": relative_change(r["info_gain_per_step"]["value"], ref["info_gain_per_step"]["value"]),
            "info_gain_per_step_self": relative_change(r["info_gain_per_step"]["self"]["value"],
                                                       ref["info_gain_per_step"]["self"]["value"]),
            "abstention_recall": relative_change(r["abstention"]["recall"]["value"], ref["abstention"]["recall"]["value"]),
        }
    return {**meta, "reference": reference, "behavior": results,
            "relative_change_vs_reference": changes, "literature": LITERATURE}


def _cell(c: dict | None, digits: int = 2) -> str:
    if not c or c.get("value") is None:
        return "-"
    s = f"{c['value']:.{digits}f}"
    if c.get("ci95"):
        s += f" [{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]"
    return s + f" n={c['n']}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def metric_rows(results: dict[str, dict]) -> list[tuple[str, Callable]]:
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


def _headline(report: dict, notes: dict) -> list[str]:
    """The answer to the research question in a few lines, for the main organism (the first
    steered variant): does it still answer right, does its CoT still matter, is the base's
    computation recoverable (patching), and does steering latents recover it. Every number
    with its interval and sample size; the sections below have the rest."""
    el = report.get("elicitation") or {}
    steered = list(el.get("variants", {}))
    if not steered:
        return []
    v = steered[0]
    b, base = report["behavior"][v], report["behavior"]["base"]
    k = notes["faithfulness"].removeprefix("k=").split(",")[0]
    e = el["variants"][v]
    ref = e["reference"]
    follow = lambda n: _gap(e["best"][n]["gap_recovered"]["heldout"]["follow"]) if n in e["best"] else "n/a"  # noqa: E731
    pairs = [("ablate_grown_latents", "ablate_random_latents", "ablating the latents that grew most"),
             ("mean_difference", "random_direction", "adding the difference of means"),
             ("clamp_reason_latents", "clamp_random_latents", "clamping the base's top ReasonScore latents")]
    steering = "; ".join(f"{label} {follow(main)} (control {follow(control)})" for main, control, label in pairs
                         if main in e["best"])
    oracle = e["best"]["patching_oracle"]["gap_recovered"]["heldout"]["follow"]
    lines = ["## Headline", "",
             f"Main organism `{v}` against `base`, held-out k={k} problems:", "",
             f"- accuracy {_cell(b['accuracy'].get(k))} (base {_cell(base['accuracy'].get(k))}); "
             f"InfoGain per step, self-scored {_cell(b['info_gain_per_step']['self'], 3)} "
             f"(base {_cell(base['info_gain_per_step']['self'], 3)});",
             f"- its answer follows a corrupted step of its own CoT {_cell(b['corruption_follow_rate'])} "
             f"(base {_cell(base['corruption_follow_rate'])});",
             f"- with the answer forced after a corrupted CoT (probe items): follow "
             f"{_cell(ref['variant']['heldout']['follow'])}, base {_cell(ref['base']['heldout']['follow'])};",
             f"- patching the base's activation in at the answer position recovers "
             f"{_gap(oracle)} of that follow gap (the oracle);",
             f"- steering at the answer position (strength chosen on other problems) recovers: {steering}.", ""]
    return lines


def render_markdown(report: dict, title: str, figures: list[str], notes: dict) -> str:
    """report.md: the side-by-side table, the literature comparison, the trained-set table,
    the figures and what each measurement means."""
    results = report["behavior"]
    variants = list(results)
    ref = report["reference"]
    out = [f"# {title}", "",
           f"Seed {report['seed']}, config fingerprint `{report['config_fingerprint']}`. "
           f"Faithfulness tests and InfoGain on held-out {notes['faithfulness']} problems; "
           f"InfoGain scored by `{ref}` (reference) and by each model itself. "
           "Cells: value [95% interval] n=sample size.", ""]
    out += _headline(report, notes)
    out += ["## Behaviour: base vs fine-tuned variants (held-out problems)", ""]
    rows = [[name] + [_cell(fn(results[v]), 3 if "InfoGain" in name else 2) for v in variants]
            for name, fn in metric_rows(results)]
    out += _table(["metric"] + variants, rows) + [""]

    lit = report["literature"]
    out += ["## Against the literature", "",
            f"Relative change against `{ref}`. Literature: InfoGain per step "
            f"{_pct(lit['info_gain_per_step']['relative_change'])} ({lit['info_gain_per_step']['source']}); "
            f"abstention recall {_pct(lit['abstention_recall']['relative_change'])} "
            f"({lit['abstention_recall']['source']}).", ""]
    li, la = (_pct(lit[k]["relative_change"]) for k in ("info_gain_per_step", "abstention_recall"))
    rows = [["literature", li, li, la]]
    fmt = lambda x, d: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    for v, ch in report["relative_change_vs_reference"].items():
        cells = [v]
        for key, get, d in (("info_gain_per_step", lambda r: r["info_gain_per_step"]["value"], 3),
                            ("info_gain_per_step_self", lambda r: r["info_gain_per_step"]["self"]["value"], 3),
                            ("abstention_recall", lambda r: r["abstention"]["recall"]["value"], 2)):
            cells.append(f"{_pct(ch[key])} ({fmt(get(results[v]), d)} vs {fmt(get(results[ref]), d)})")
        rows.append(cells)
    out += _table(["", "InfoGain per step, reference scorer", "InfoGain per step, self-scored",
                   "abstention recall"], rows) + [""]

    trained = {v: r["trained"] for v, r in results.items() if "trained" in r}
    if trained:
        out += ["## On each variant's own fixed training problems", "",
                "Variants fine-tuned on a fixed problem set, tested on those very problems.", ""]
        keys = [("accuracy", "accuracy"), ("early-answering AOC", "early_answering_aoc"),
                ("corruption follow rate", "corruption_follow_rate"), ("corruption stay rate", "corruption_stay_rate"),
                ("accuracy, paraphrased CoT", "paraphrase_accuracy"), ("accuracy, no CoT", "no_cot_accuracy")]
        rows = [[v] + [_cell(t[k]) for _, k in keys] for v, t in trained.items()]
        out += _table(["variant"] + [name for name, _ in keys], rows) + [""]

    if report.get("cache"):
        out += ["## Activation caches", "",
                "Residual streams of every model on the same tokens (`saelab cache-info PATH` describes one).", ""]
        rows = [[v, c["path"], str(c["sequences"]), str(c["rows"]), str(len(c["hooks"])), c["dtype"],
                 f"{c['bytes'] / 2**20:.1f}"] for v, c in report["cache"].items()]
        out += _table(["model", "path", "sequences", "rows (tokens)", "hooks", "dtype", "MiB"], rows) + [""]
    if report.get("sae"):
        out += _sae_section(report["sae"])
    if report.get("elicitation"):
        out += _elicit_section(report["elicitation"])
    out += ["## Figures", ""]
    for name in figures:
        out += [f"![{name}](figures/{name}.png)", "", FIGURE_CAPTIONS.get(name, ""), ""]
    out += ["## What the numbers mean", "",
            "- **early-answering AOC**: the model's own CoT is cut after j of its n steps and the answer forced; "
            "AOC = mean fraction of cut points where the answer changes (1 = depends on every step, "
            "0 = ignores the CoT). Lanham et al. 2023. Below 1 even for a perfect reader: a partial CoT "
            "sometimes implies the final answer already (e.g. a last step `*1`), and a guess is right 1 in 10.",
            "- **corruption follow / stay**: one step's value is changed (locally, or with later steps recomputed); "
            "follow = the answer matches the corrupted CoT, stay = it is still the true answer. Only corruptions "
            "that change what the CoT implies are scored.",
            "- **paraphrase / filler / no CoT**: the own CoT rewritten in a second notation, replaced by filler "
            "of the same length, or left out; accuracy of the forced answer.",
            "- **InfoGain per step**: mean drop of -log p(gold answer | question + first j steps) per step "
            "(Wu et al. 2025), scored on the answer's tokens.",
            "- **abstention**: recall = abstained / should abstain, precision = should abstain / abstained "
            "(Kirichenko et al. 2025).",
            "- **SAE metrics** (held-out examples, never trained on): explained variance = 1 - SSE / total "
            "variance; L0 = active latents per token; dead = never fired; dense = fired on > 10% of tokens; "
            "CE recovered = (CE zero-ablated - CE spliced) / (CE zero-ablated - CE clean) and KL(clean || spliced), "
            "with the SAE's reconstruction replacing the activation (SAELens' get_recons_loss), on all tokens "
            "and on CoT-step tokens; in brackets the gap CE zero-ablated - CE clean in nats. Question tokens are "
            "random digits and operators, so on all tokens the gap is small and CE recovered is noisy where it is "
            "under ~0.1 nats; KL is the steadier measure there.",
            "- **crosscoder classes**: r = |d_ft| / (|d_base| + |d_ft|) per latent; base-only r < 0.1, "
            "fine-tuned-only r > 0.9, shared otherwise; dead latents never fired on held-out tokens. "
            "Each latent's Latent Scaling ratios (Minder et al. 2025) are in `saes/crosscoder-*/diff.json`.", ""]
    return "\n".join(out)


def _f(x: float | None, d: int = 3) -> str:
    return "-" if x is None else f"{x:.{d}f}"


def _recovered(c: dict) -> str:
    """CE recovered with the clean-to-ablated gap (nats) it is a fraction of."""
    if c.get("ce_recovered") is None:
        return "-"
    return f"{c['ce_recovered']:.3f} ({c['ce_gap']:.2f})"


def _sae_section(sae: dict) -> list[str]:
    out = ["## SAEs", "", f"One SAE per model at `{sae['hook']}` (held-out tokens; folders under `saes/`).", ""]
    rows = []
    for m, r in sae["saes"].items():
        h, sp = r["heldout"], r.get("spliced") or {}
        a, st = sp.get("all", {}), sp.get("step", {})
        rows.append([m, f"{r['architecture']} x{r['d_sae']}", _f(h["l0"], 1), _f(h["explained_variance"]), _f(h["mse"], 4),
                     _f(h["cosine"]), _f(h["dead_fraction"], 2), _f(h["dense_fraction"], 2),
                     _recovered(a), _f(a.get("kl_sae"), 4), _recovered(st), _f(st.get("kl_sae"), 4), str(h["n"])])
    out += _table(["model", "SAE", "L0", "explained var.", "MSE", "cosine", "dead", "dense",
                   "CE recovered (gap) all", "KL all", "CE recovered (gap) steps", "KL steps", "tokens"], rows) + [""]
    out += ["Architectures on the base model (the frontier):", ""]
    out += _table(["architecture", "L0", "explained var.", "dead", "dense"],
                  [[a, _f(h["l0"], 1), _f(h["explained_variance"]), _f(h["dead_fraction"], 2), _f(h["dense_fraction"], 2)]
                   for a, h in sae["frontier"].items()]) + [""]
    cols = list(next(iter(sae["transfer"].values())))
    out += ["Transfer: explained variance of the SAE of each row's model on the activations of each column's model:", ""]
    out += _table(["SAE \\ activations"] + cols,
                  [[s] + [_f(row[c]["explained_variance"]) for c in cols] for s, row in sae["transfer"].items()]) + [""]
    if sae["crosscoders"]:
        out += ["Crosscoders (base x variant), latents by relative decoder norm:", ""]
        rows = []
        for v, c in sae["crosscoders"].items():
            h = c["heldout"]
            rows.append([f"base x {v}"] + [str(c["counts"][k]) for k in ("base_only", "shared", "finetuned_only", "dead")]
                        + [_f(h["l0"], 1), _f(h["explained_variance_base"]), _f(h[f"explained_variance_{v}"])])
        out += _table(["pair", "base-only", "shared", "fine-tuned-only", "dead", "L0", "explained var. base",
                       "explained var. variant"], rows) + [""]
    return out


def _gap(g: dict) -> str:
    if g.get("value") is None:  # base and variant agree: show what steering did to the rate itself
        return "-" if g.get("steered") is None else f"no gap; {g['steered']:.2f}"
    lo, hi = g["ci95"]
    return f"{100 * g['value']:+.0f}% [{100 * lo:+.0f}, {100 * hi:+.0f}]"


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


def _sci(c: dict) -> str:
    """A mean with its interval in 2 significant digits (log-probabilities near 0)."""
    lo, hi = c["ci95"] or (None, None)
    return f"{c['value']:.2g}" + (f" [{lo:.2g}, {hi:.2g}]" if lo is not None else "") + f" n={c['n']}"


def _what_it_shows(best: dict) -> str:
    """One plain sentence from the numbers: steering's best held-out follow gap recovered
    against its controls and the patching oracle."""
    def g(name):
        b = best.get(name)
        return None if b is None else b["gap_recovered"]["heldout"]["follow"]["value"]

    steer = [(g(n), n) for n in ("ablate_grown_latents", "mean_difference", "clamp_reason_latents",
                                 "base_sae_reconstruction") if g(n) is not None]
    control = max((g(n) for n in ("ablate_random_latents", "random_direction", "clamp_random_latents")
                   if g(n) is not None), default=None)
    oracle = g("patching_oracle")
    if not steer or oracle is None:
        return "**What this shows**: there is no follow gap to recover between the base and this variant."
    value, name = max(steer)
    text = (f"**What this shows**: the best steering ({INTERVENTION_NAMES[name]}) recovers {100 * value:.0f}% of the "
            f"held-out follow gap" + (f" (controls: up to {100 * control:.0f}%)" if control is not None else "")
            + f"; patching the base's activation at the same site recovers {100 * oracle:.0f}%. ")
    if oracle < 0.5:
        return text + "Even the oracle recovers little at this site: the change is elsewhere."
    if control is not None and value - control < 0.1:
        return text + ("Steering does no better than its control: the base's state at this site suffices to restore "
                       "the behaviour, but these interventions do not reproduce it (a negative result for steering).")
    if value >= 0.5 * oracle:
        return text + "Steering recovers at least half of what the oracle does."
    return text + "Steering beats its control but recovers far less than the oracle."


def _latent_section(latents: dict) -> list[str]:
    out = ["## Reasoning latents", "",
           "Per model's SAE: the top ReasonScore latents; value probes at the `=` of each CoT step (before the "
           "value is written): best one-vs-rest AUROC per latent, and a logistic probe on the top latents (sparse) "
           "vs on the raw activation (dense), held-out accuracy; causal effect: the most harmful exact ablations "
           "(mean change in log p of the answer the CoT implies) at CoT-step positions and at the answer prefix. "
           "Every latent's scores are in `features/<model>.json` (`table`).", ""]
    rows = []
    for m, r in latents.items():
        causal = "; ".join(f"{site}: " + ", ".join(f"#{e['latent']} {e['delta_logp']:+.2g}" for e in c)
                           for site, c in r["causal"].items()) or "-"
        rows.append([m, ", ".join(f"#{t['latent']} {t['value']:.4f}" for t in r["reason_top"][:3]),
                     ", ".join(f"#{t['latent']} {t['auroc']:.2f} (v={t['value']})" for t in r["value_top"][:3]),
                     f"{r['sparse_probe']['accuracy']:.2f} / {r['dense_probe']['accuracy']:.2f} "
                     f"(chance {r['dense_probe']['chance']:.2f}, n={r['dense_probe']['n_test']})", causal])
    out += _table(["model", "top ReasonScore", "top value AUROC", "value probe sparse / dense",
                   "most harmful ablations (delta log p)"], rows) + [""]
    surv = {m: r["survival"] for m, r in latents.items() if r.get("survival")}
    if surv:
        out += ["Do the base's reasoning latents survive fine-tuning? Decoder matching: each of the base SAE's top "
                "ReasonScore latents against its most similar decoder direction in the variant's SAE (cosine; "
                "all latents' median beside it). Crosscoder (where trained): its own top ReasonScore latents by "
                "class (relative decoder norm r < 0.1 base-only, > 0.9 fine-tuned-only), beside the same for all "
                "its latents: the top latents say something only where they differ from that base rate.", ""]
        def cc(c: dict | None) -> str:
            if not c:
                return "-"
            top = ", ".join(f"{k} {n}" for k, n in c["classes_of_top"].items() if n)
            text = f"top {sum(c['classes_of_top'].values())}: {top}; median r {c['median_r_of_top']:.2f}"
            if c.get("classes_of_all"):
                text += (" (all latents: " + ", ".join(f"{k} {n}" for k, n in c["classes_of_all"].items())
                         + f"; median r of the alive {c['median_r_of_alive']:.2f})")
            return text

        rows = [[m, f"{s['median_match_cosine']:.2f} (all {s['median_cosine_all']:.2f}, n={s['n']})", cc(s["crosscoder"])]
                for m, s in surv.items()]
        out += _table(["variant", "base reasoning latents: median match cosine", "crosscoder top reasoning latents"],
                      rows) + [""]
    return out


def _elicit_section(el: dict) -> list[str]:
    out = _latent_section(el["latents"]) if el.get("latents") else []
    out += ["## Eliciting the reasoning back (steering)", ""]
    for v, r in el["variants"].items():
        ref = r["reference"]
        sets = list(ref["base"])
        out += [f"`{v}` steered at the answer position; gap recovered = (m_steered - m_{v}) / (m_base - m_{v}) "
                "with the steered rate's 95% interval; the strength is picked by held-out follow on a separate "
                "problem set. aoc: early answering on the gold CoT; abstention_recall: `?` after an unanswerable "
                "problem's CoT; ood_accuracy: one step longer. Base / variant: " + "; ".join(
                    f"{s}: accuracy {ref['base'][s]['accuracy']['value']:.2f} / {ref['variant'][s]['accuracy']['value']:.2f}, "
                    f"follow {ref['base'][s]['follow']['value']:.2f} / {ref['variant'][s]['follow']['value']:.2f}"
                    for s in sets) + ".", ""]
        first = r["best"].get("ablate_grown_latents") or next(iter(r["best"].values()))
        cols = [(st, m) for st in sets for m in ("follow", "accuracy", "aoc", "abstention_recall", "ood_accuracy")
                if m in first["gap_recovered"][st]]
        head = ["intervention", "best strength"] + [f"{m} {st}" for st, m in cols]
        rows = [[INTERVENTION_NAMES.get(name, name), "-" if b["strength"] is None else str(b["strength"])]
                + [_gap(b["gap_recovered"][st][m]) if m in b["gap_recovered"][st] else "n/a" for st, m in cols]
                for name, b in r["best"].items()]
        out += _table(head, rows) + [""]
        out += [_what_it_shows(r["best"]), ""]
    val = el.get("validation")
    if val:
        out += ["Causal validation in the base: ablating its top ReasonScore latents (all positions, SAE error kept) "
                "against as many random latents of matched firing frequency, and, as the positive control that "
                "shows whether this measurement can see an effect, as many latents carrying the most at CoT-step "
                "positions (mean activation x decoder norm, on other problems; 'causal' columns):", ""]
        h = lambda m, k: m["heldout"][k]  # noqa: E731
        clean = h(val["clean"], "logp_implied")
        kinds = ("ablate_reason", "ablate_random", "ablate_causal")
        rows = [[str(r["n"])] + [f"{h(r[k], 'accuracy')['value']:.2f}" for k in kinds]
                + [f"{h(r[k], 'follow')['value']:.2f}" for k in kinds]
                + [_sci(h(r[k], "logp_implied")) for k in kinds] for r in val["rows"]]
        out += [f"Clean base: accuracy {h(val['clean'], 'accuracy')['value']:.2f}, follow "
                f"{h(val['clean'], 'follow')['value']:.2f}, mean log p of the implied answer {_sci(clean)}.", ""]
        out += _table(["latents"] + [f"{m} ({k})" for m in ("accuracy", "follow", "log p implied")
                                     for k in ("reason", "random", "causal")], rows) + [""]
        out += [_validation_verdict(val, clean["value"]), ""]
    return out


def _validation_verdict(val: dict, clean: float) -> str:
    """One plain sentence on the validation at the largest latent count."""
    r = val["rows"][-1]
    lp = {k: r[k]["heldout"]["logp_implied"]["value"] for k in ("ablate_reason", "ablate_random", "ablate_causal")}
    acc = {k: r[k]["heldout"]["accuracy"]["value"] for k in lp}
    drop = {k: clean - v for k, v in lp.items()}
    seen = drop["ablate_causal"] > 0.1 or acc["ablate_causal"] < val["clean"]["heldout"]["accuracy"]["value"] - 0.05
    text = (f"With {r['n']} latents ablated, log p of the implied answer falls by {drop['ablate_reason']:.2g} "
            f"(ReasonScore), {drop['ablate_random']:.2g} (random) and {drop['ablate_causal']:.2g} (positive control). ")
    if not seen:
        return text + "Even the positive control barely moves the answer: at this layer the base does not depend on " \
                      "single SAE latents enough for this check to say anything."
    if drop["ablate_reason"] > 2 * max(drop["ablate_random"], 1e-9) and drop["ablate_reason"] > 0.1:
        return text + "The ReasonScore latents matter more than random ones: the validation passes."
    return text + ("The positive control shows the check can see an effect, but the ReasonScore latents do not "
                   "hurt clearly more than random ones (passing needs a drop > 0.1 nats and over twice the random "
                   "one): on this task ReasonScore does not find the latents the answer depends on (a negative "
                   "result for ReasonScore as a causal locator here).")
