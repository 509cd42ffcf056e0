"""`saelab browse RUN_DIR --out DIR`: the feature browser of a run directory.

Per model: its own SAE (`saes/<model>`) read on its own cache; the index columns are the
features stage's scores (`features/<model>.json`); for the base SAE also each variant's
latent shift at the answer position and the steering results that used its latents; every
latent page also shows the same latent read on the other models' caches (the base SAE on
every variant, a variant's SAE on the base). Needs the cache, sae and features stages;
steering is shown when the steer stage has run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from features.browser import BrowserConfig
from features.browser_html import Column, ModelView


def _columns(f: dict, variants_shift: dict[str, list[float]]) -> list[Column]:
    cols = [Column("reason_score", "ReasonScore", f["reason_score"]["all"], "Galichin et al. 2025, CoT-step positions"),
            Column("value_auroc", "value AUROC", f["value_probes"]["auroc"],
                   "best one-vs-rest AUROC for the step's value at each step's '='"),
            Column("value", "value", f["value_probes"]["detects"], "the value that AUROC is for")]
    for site, c in f.get("causal", {}).items():
        exact = {e["latent"]: e["delta_logp"] for e in c["exact"]}
        cols.append(Column(f"attribution_{site}", f"attribution ({site})", c["attribution"],
                           "gradient x activation: first-order change in log p of the implied answer if ablated"))
        cols.append(Column(f"ablation_{site}", f"ablation ({site})", [exact.get(i) for i in range(len(c["attribution"]))],
                           "exact change in log p of the implied answer when ablated (top candidates only)"))
    for v, shift in variants_shift.items():
        cols.append(Column(f"shift_{v}", f"shift in {v}", shift,
                           f"mean activation at the answer prefix in {v} minus in the base (base SAE)"))
    return cols


def _steering_rows(run: Path, variants: list[str]) -> dict[int, list[dict]]:
    rows: dict[int, list[dict]] = {}
    for v in variants:
        path = run / "steering" / f"{v}.json"
        if not path.exists():
            continue
        for name, entries in json.loads(path.read_text())["sweeps"].items():
            for e in entries:
                g = e["gap_recovered"]["heldout"]
                fmt = lambda m: "-" if m not in g or g[m]["value"] is None else f"{g[m]['value']:+.2f}"  # noqa: E731
                for lat in e.get("latents", []):
                    rows.setdefault(int(lat), []).append({"variant": v, "sweep": name, "strength": e["strength"],
                                                          "n": len(e["latents"]), "follow": fmt("follow"),
                                                          "accuracy": fmt("accuracy")})
    return rows


def _browser_entries(folder: Path) -> set[str]:
    """What a browser folder holds at its top level: its index, assets and a folder per model."""
    try:
        models = json.loads((folder / "browser.json").read_text()).get("models", [])
    except (OSError, ValueError, AttributeError):
        models = []
    return {"browser.json", "index.html", "assets", *[m for m in models if isinstance(m, str)]}


def build_browser(run: Path, out: Path, cfg: BrowserConfig, models: list[str] | None = None,
                  log=print, overwrite: bool = False) -> list[Path]:
    """Write the site into `out` (atomically: a temporary folder renamed at the end); a
    previous browser there is replaced only with `overwrite`, any other folder refused."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from activations.atomic import building, claim_out_dir, has_files
    from experiments.stages import load_run_dir, model_names, require_stages
    from experiments.tasks import ROLES
    from features.browser import latent_data, logit_effects
    from features.latent_stats import group_means
    from features.browser_html import render_site
    from sae.load import load_sae_folder

    run, out = Path(run), Path(out)
    claim_out_dir(out, "a feature browser", has_files("browser.json"), overwrite, owns=_browser_entries)
    rc = load_run_dir(run)
    require_stages(run, rc, ["cache", "sae", "features"], "the feature browser")
    names = model_names(rc)
    if models:
        bad = sorted(set(models) - set(names))
        if bad:
            raise ValueError(f"--models {bad} are not models of {run}; it has {names}")
        names = [m for m in names if m in models]
    hook = rc.sae.hook
    tok = AutoTokenizer.from_pretrained(run / "models" / "base")
    tokens = [t.replace("Ġ", " ") for t in tok.convert_ids_to_tokens(list(range(len(tok))))]
    variants = [m for m in model_names(rc) if m != "base"]
    views = []
    for m in names:
        t0 = time.perf_counter()
        sae = load_sae_folder(run / "saes" / m)
        data = latent_data(sae, run / "activations" / m, hook, cfg)
        f = json.loads((run / "features" / f"{m}.json").read_text())
        shift = {}
        if m == "base":
            for v in variants:
                path = run / "features" / f"{v}.json"
                fv = json.loads(path.read_text()) if path.exists() else {}
                if "latent_shift" in fv:
                    shift[v] = fv["latent_shift"]["shift"]
        others = [m] + (variants if m == "base" else ["base"])  # itself first, for comparison
        compare = []
        for o in others:
            g = group_means(sae, run / "activations" / o, hook, "role")
            compare.append({"model": o, "roles": [ROLES[v] for v in g["values"]], **g})
        with torch.no_grad():
            lm = AutoModelForCausalLM.from_pretrained(run / "models" / m)
            logits = logit_effects(sae, lm.get_output_embeddings().weight, cfg.logits)
        views.append(ModelView(
            name=m, sae=f"saes/{m}", hook=hook, data=data, tokens=tokens, columns=_columns(f, shift),
            chosen=f.get("table", {}).get("chosen", {}), label_names={"role": list(ROLES), "step": [f"step {i + 1}" for i in range(64)]}, compare=compare,
            logits=logits, steering=_steering_rows(run, rc.features.variants) if m == "base" else {},
            note="Steering used the base SAE: its latent pages list the sweeps that included them." if m == "base"
            else ""))
        log(f"  browse {m}: {len(data['density'])} latents ({time.perf_counter() - t0:.1f} s)")
    with building(out) as tmp:
        pages = render_site(views, tmp, str(run), time.strftime("%Y-%m-%d %H:%M"), cfg.dense)
        (tmp / "browser.json").write_text(json.dumps({"run": str(run), "models": names, "hook": hook,
                                                      "config": cfg.__dict__}, indent=1))
    return [out / p.relative_to(tmp) for p in pages]
