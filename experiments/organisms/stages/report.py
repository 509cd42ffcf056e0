"""report.json and report.md of an organisms run: behaviour side by side with the
literature, the caches, the SAEs, and the elicitation (`experiments.report`)."""

from __future__ import annotations

import json

from experiments.rundir import RunDir


def cache_sizes(run: RunDir, cfg) -> dict[str, dict]:
    from activations.cache.format import read_json

    out = {}
    for name in cfg.model_names():
        meta, index = (read_json(p) for p in run.cache_files(name))
        out[name] = {"path": run.relative(run.cache(name)), "rows": meta["n_rows"], "sequences": meta["n_sequences"],
                     "hooks": meta["hooks"], "dtype": meta["write_config"]["dtype"], "bytes": index["bytes"]}
    return out


def build(run: RunDir, cfg) -> tuple[dict, str]:
    from experiments.config import fingerprint, to_dict
    from experiments.organisms.stages.figures import figure_names
    from experiments.organisms.stages.load import load_behavior, load_elicit
    from experiments.report.organisms import build_report, render_markdown
    from experiments.report.summaries import elicit_sites_summary, elicit_summary, sae_summary

    from experiments.claims import evaluate

    k = str(cfg.behavior.faithfulness_ks[0])
    report = build_report(load_behavior(run, cfg), cfg.behavior.reference,
                          {"study": cfg.study, "seed": cfg.seed, "config_fingerprint": fingerprint(to_dict(cfg)),
                           "faithfulness_k": k}, k, trained_max=max(cfg.organisms.base.ks))
    if cfg.study == "organisms":  # a findings run stops at behaviour: no caches, SAEs or steering
        report["cache"] = cache_sizes(run, cfg)
        report["sae"] = sae_summary(json.loads(run.sae_eval.read_text()))
        report["elicitation"] = elicit_summary(*load_elicit(run, cfg))
    if cfg.study == "organisms" and cfg.elicit.variants:
        report["elicit_sites"] = elicit_sites_summary({v: json.loads(run.elicit(v).read_text())
                                                      for v in cfg.elicit.variants})
    report["claims"] = evaluate(report)  # the statements made in words, checked on this run
    md = render_markdown(report, f"saelab report: {run.root.name}", figure_names(cfg),
                         {"faithfulness": "k=" + ",".join(map(str, cfg.behavior.faithfulness_ks))})
    return report, md
