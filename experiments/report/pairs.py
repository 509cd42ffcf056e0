"""The report of a model-pair run: every number with its n and interval, from the stages' JSON.

    build_report(behavior, sae_eval, features, steering, models, cfg) -> dict
        report.json from data already loaded: `behavior` {model: behaviour metrics} (the
        "metrics" of behavior/<model>.json), `sae_eval` saes/eval.json, `features` {model:
        features/<model>.json}, `steering` {variant: steering/<variant>.json}, `models` {model:
        models/<model>.json}, `cfg` the run's PairRunConfig (its seed and task path)
    render_markdown(report, title) -> str
        report.md from templates/pairs.md.j2
"""

from __future__ import annotations

from experiments.report.render import render

BEHAVIOUR_ROWS = [("accuracy", ("accuracy",)), ("answered", ("answered",)),
                  ("abstains when unanswerable", ("abstains_unanswerable",)),
                  ("abstains when answerable", ("abstains_answerable",)), ("CoT tokens", ("cot_tokens",)),
                  ("CoT steps", ("cot_steps",)), ("InfoGain per step (nats)", ("info_gain_per_step",)),
                  ("InfoGain, Wu et al.'s perplexity definition, self-scored on the gold CoT", ("info_gain_ppl",)),
                  ("early answer = final", ("faithfulness", "early_same")),
                  ("mistake changes answer", ("faithfulness", "mistake_changes")),
                  ("filler answer = final", ("faithfulness", "filler_same")),
                  ("no-CoT answer = final", ("faithfulness", "no_cot_same")),
                  ("paraphrase answer = final", ("faithfulness", "paraphrase_same")),
                  ("corrupted chain: answer follows it", ("faithfulness", "corruption_follow")),
                  ("corrupted chain: answer stays gold", ("faithfulness", "corruption_stay"))]
"""The behaviour table's rows: label, the keys of its number in the behaviour metrics."""


def build_report(behavior: dict[str, dict], sae_eval: dict, features: dict[str, dict], steering: dict[str, dict],
                 models: dict[str, dict], cfg) -> dict:
    """report.json of a pair run (see the module's docstring for the arguments)."""
    return {
        "models": {m: {"path": r["spec"]["path"], "revision": r["spec"]["revision"], "model_type": r["model_type"],
                       "hub_commit": r["hub_commit"], "weights_hash": r["weights_hash"]} for m, r in models.items()},
        "seed": cfg.seed,
        "task": {"path": _task_source(cfg.task), "problems": behavior["base"]["accuracy"]["n"],
                 "unanswerable": behavior["base"]["abstains_unanswerable"]["n"]},
        "behavior": behavior,
        "sae": {"hook": sae_eval["hook"], "models": {m: {
            "source": s["source"] if isinstance(s["source"], str) else s["source"]["pretrained"],
            "l0": s["heldout"]["l0"], "explained_variance": s["heldout"]["explained_variance"],
            "ce_recovered": s["spliced"]["all"]["ce_recovered"]} for m, s in sae_eval["saes"].items()},
            # explained variance of SAE s on model c's held-out activations
            "transfer": {s: {c: e["explained_variance"] for c, e in row.items()} for s, row in sae_eval["transfer"].items()},
            **_sae_extras(sae_eval)},
        "features": {m: {k: f.get(k) for k in ("top", "n_reasoning_positions", "words_seen", "warning", "causal")}
                     for m, f in features.items()},
        "steering": steering,
        "warnings": usable_warnings(behavior, steering),
        # each variant against the base on the same problems: one resample of the problems for both
        "paired_vs_base": {v: {k: _paired(behavior[v], behavior["base"], k) for k in ("corruption_follow", "accuracy")}
                           for v in behavior if v != "base"},
    }


def _paired(variant: dict, base: dict, key: str) -> dict | None:
    from features.stats import difference

    get = lambda m: m.get(key) or (m.get("faithfulness") or {}).get(key)  # noqa: E731
    a, b = get(variant), get(base)
    if not a or not b or "by_problem" not in a or "by_problem" not in b:
        return None
    return {"variant": a["value"], "base": b["value"], "difference": difference(a, b)}


def _task_source(task) -> str:
    """Where the problems came from: the JSONL file, or the generator's settings."""
    g = getattr(task, "generate", None)
    split = getattr(task, "split", None)
    if g is not None:
        return (f"generated word problems (n {g.n}, {g.min_steps}-{g.max_steps} steps, ops {''.join(g.ops)}, "
                f"styles {', '.join(g.styles)}, seed {g.seed})" + (f", split {split}" if split else ""))
    return task.path + (f", split {split}" if split else "")


FAITH_TESTS = ("early_same", "mistake_changes", "filler_same", "no_cot_same", "paraphrase_same")


def usable_warnings(behavior: dict[str, dict], steering: dict[str, dict]) -> list[str]:
    """One line per stage result with no usable items: said at the top of the report, in the
    claims table (`usable_items`) and in `saelab run`'s last lines, not left as rows of n = 0."""
    out = []
    for m, b in behavior.items():
        n = (b.get("accuracy") or {}).get("n") or 0
        f = b.get("faithfulness") or {}
        if not n:
            out.append(f"{m}: no answerable problems were evaluated, so there is no accuracy and no faithfulness test")
        elif not f.get("usable_cots"):
            out.append(f"{m}: no usable CoTs (none of {n} answerable problems gave a CoT with steps and a readable "
                       f"answer; answered {b['answered']['value']:.2f}), so every faithfulness rate has n = 0")
        else:
            empty = [t for t in FAITH_TESTS if isinstance(f.get(t), dict) and not f[t].get("n")]
            if empty:
                out.append(f"{m}: the faithfulness test(s) {', '.join(empty)} had no usable items (n = 0)")
    for v, s in steering.items():
        if "skipped" in s:
            out.append(f"steering {v}: {s['skipped']}")
    return out


def _sae_extras(sae_eval: dict) -> dict:
    """The frontier and the crosscoders, when the run's config asked for them."""
    from experiments.report.summaries import RECON_KEYS

    out = {}
    if sae_eval.get("frontier"):
        out["frontier"] = {a: {k: r["heldout"][k] for k in RECON_KEYS if k in r["heldout"]}
                           for a, r in sae_eval["frontier"].items()}
    if sae_eval.get("crosscoders"):
        out["crosscoders"] = {v: {k: c[k] for k in ("counts", "heldout", "warning") if k in c}
                              for v, c in sae_eval["crosscoders"].items()}
    return out


def _get(metrics: dict, keys: tuple[str, ...]):
    for k in keys:
        metrics = (metrics or {}).get(k)  # a metric this run's behaviour did not measure: "-"
    return metrics


def render_markdown(report: dict, title: str) -> str:
    """report.md: models and task, behaviour, SAEs, reasoning latents, steering."""
    names = list(report["behavior"])
    rows = [(label, 3 if keys == ("info_gain_per_step",) else 2, [_get(report["behavior"][m], keys) for m in names])
            for label, keys in BEHAVIOUR_ROWS]
    from experiments.claims import format_table

    from experiments.report.pair_findings import pair_findings_rows

    return render("pairs.md.j2", title=title, report=report, names=names, behaviour_rows=rows,
                  claims_table=format_table(report.get("claims") or []), findings=pair_findings_rows(report))
