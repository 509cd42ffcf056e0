"""`saelab browse RUN_DIR --out DIR`: the feature browser of a run directory, of either study.

Per model: its own SAE (`saes/<model>`) read on its own cache; every latent page also shows
the same latent read on the other models' caches (the base SAE on every variant, a variant's
SAE on the base; the caches are token-aligned) and its direct logit effects through the
model's LM head. What differs per study is in its `browse_view` module
(`experiments.organisms.browse_view`, `experiments.pairs.browse_view`): the tokenizer, the
index columns from the features stage's `features/<model>.json`, where the LM head comes
from, the names of the role and step labels, and the steering results that used each latent.
Needs the cache, sae and features stages; steering is shown when the steer stage has run, and
the elicit stage's SAEs, transcoders and crosscoders (`experiments.browse_elicit`) when it has
(unless `BrowserConfig.elicit` is off). Explanations (`features/<model>.json`
"explanations", elicit/<variant>.json) are columns where the run has them.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

from features.browser import BrowserConfig

VIEWS = {"organisms": "experiments.organisms.browse_view", "pairs": "experiments.pairs.browse_view"}
"""Study name -> the module with what the browser shows of that study's runs."""


def _browser_entries(folder: Path) -> set[str]:
    """What a browser folder holds at its top level: its index, assets and a folder per model
    and per elicitation dictionary."""
    try:
        meta = json.loads((folder / "browser.json").read_text())
        models = meta.get("models", []) + meta.get("folders", [])
    except (OSError, ValueError, AttributeError, TypeError):
        models = []
    return {"browser.json", "index.html", "assets", *[m for m in models if isinstance(m, str)]}


def _pad(tokens: list[str], vocab: int) -> list[str]:
    """Display strings for every row of an LM head (padded past the tokenizer's vocabulary)."""
    return tokens + [f"<id {i}>" for i in range(len(tokens), vocab)]


def build_browser(run: Path, out: Path, cfg: BrowserConfig, models: list[str] | None = None,
                  log=print, overwrite: bool = False) -> list[Path]:
    """Write the site into `out` (atomically: a temporary folder renamed at the end); a
    previous browser there is replaced only with `overwrite`, any other folder refused."""
    import torch

    from activations.atomic import building, claim_out_dir, has_files
    from experiments.engine.runner import require_stages
    from experiments.studies import open_run
    from features.browser import latent_data, logit_effects
    from experiments.browse_elicit import elicit_views
    from features.browser_html import ModelView, explanation_columns, render_site
    from features.latent_stats import group_means
    from sae.load import load_sae_folder

    out = Path(out)
    claim_out_dir(out, "a feature browser", has_files("browser.json"), overwrite, owns=_browser_entries)
    run, rc, study = open_run(run)
    require_stages(run, rc, study.stages, ["cache", "sae", "features"], "the feature browser",
                   {"features": f"saelab features {run.root}"})
    view = importlib.import_module(VIEWS[study.name])
    every = rc.model_names()
    names = every
    if models:
        bad = sorted(set(models) - set(every))
        if bad:
            raise ValueError(f"--models {bad} are not models of {run.root}; it has {every}")
        names = [m for m in every if m in models]
    hook = rc.sae.hook
    tokens = view.token_strings(run, rc)
    roles = view.LABEL_NAMES["role"]
    views = []
    for m in names:
        t0 = time.perf_counter()
        sae = load_sae_folder(run.sae(m))
        data = latent_data(sae, run.cache(m), hook, cfg)
        f = json.loads(run.features(m).read_text())
        others = [m] + (every[1:] if m == every[0] else [every[0]])  # itself first, for comparison
        compare = []
        for o in others:
            g = group_means(sae, run.cache(o), hook, "role")
            compare.append({"model": o, "roles": [roles[v] if v < len(roles) else str(v) for v in g["values"]], **g})
        with torch.no_grad():
            unembed = view.unembed(run, rc, m)
            logits = logit_effects(sae, unembed, cfg.logits)
        views.append(ModelView(
            name=m, sae=run.relative(run.sae(m)), hook=hook, data=data, tokens=_pad(tokens, unembed.shape[0]),
            columns=view.columns(run, rc, m, f) + explanation_columns(f.get("explanations")), chosen=view.chosen(f),
            label_names=view.LABEL_NAMES, compare=compare, logits=logits, steering=view.steering(run, rc, m),
            note=view.note(run, rc, m, f), explanations=f.get("explanations")))
        del unembed
        log(f"  browse {m}: {len(data['density'])} latents ({time.perf_counter() - t0:.1f} s)")
    # the elicit stage's dictionaries (none in a pair run, or before the stage ran)
    elicit = elicit_views(run, rc, view, cfg, views[0].tokens, names, log) if cfg.elicit else []
    with building(out) as tmp:
        pages = render_site(views + elicit, tmp, str(run.root), time.strftime("%Y-%m-%d %H:%M"), cfg.dense,
                            cfg.elicit_rows if elicit else None)
        (tmp / "browser.json").write_text(json.dumps({"run": str(run.root), "models": names, "hook": hook,
                                                      "folders": [v.folder for v in elicit],
                                                      "elicit": [v.name for v in elicit],
                                                      "config": cfg.__dict__}, indent=1))
    return [out / p.relative_to(tmp) for p in pages]
