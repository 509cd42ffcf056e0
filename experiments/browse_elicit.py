"""The feature browser's pages of the elicit stage's dictionaries (`experiments.browse`):

    SAE          elicit/saes/<model>/<site>/: read on that model's training cache at the site
    transcoder   elicit/saes/<model>/transcoder-<L>/: its code read from the cache's MLP input
                 (blocks.L.hook_resid_mid), its decoder writing the MLP output (the residual
                 stream: logit effects through the model's unembedding)
    crosscoder   elicit/crosscoders/<variant>/<site>/: its code read from the paired rows of the
                 base's and the variant's caches (token-aligned), its latent class and Delta as
                 columns, logit effects of both decoders

each one more `ModelView` in the site index's "Elicitation dictionaries". The explanations,
classes and chosen latents come from elicit/<variant>.json (read with .get: older runs lack
parts of it). Only the first `BrowserConfig.elicit_rows` rows of each cache are read (the
default config's caches hold ~2M rows); every page says how many of how many.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.rundir import RunDir
from features.browser import BrowserConfig
from features.browser_html import Column, ModelView, explanation_columns

TAGS = {"ablate_shortcut_latents": "shortcut", "project_shortcut_subspace": "shortcut",
        "clamp_value_latents": "value", "clamp_value_latents_base_means": "value",
        "ablate_finetuned_latents": "finetuned"}
"""Base-free intervention -> the tag of the latents it chose (others are tagged by their name)."""
ELICIT_TAGS = ("shortcut / value / finetuned = in the latent set chosen on the choice set for a base-free "
               "intervention of the elicit stage (ablate or project out the shortcut latents, clamp the value latents, "
               "ablate the fine-tuned-leaning crosscoder latents), headline = the run's headline intervention")
"""What the tags of an elicitation dictionary mean (its index page says it)."""


@dataclass
class Dictionary:
    """One dictionary of the elicit stage, and where the browser reads it."""

    name: str
    """Its title, e.g. `sft-noisy-trace · blocks.1.hook_mlp_out`."""
    folder: str
    """Its folder in the site."""
    kind: str
    """SAE, transcoder or crosscoder."""
    model: str
    """Whose cache, tokens and unembedding (a crosscoder: the variant's; it also reads the base's)."""
    path: Path
    """Its folder in the run directory."""
    read_hook: str
    """The cache hook its code reads."""
    label: str
    """Where it reads and writes, for the pages."""
    record: dict | None = None
    """Its record of elicit/<variant>.json (explanations, interventions, classes); None for the base's."""
    headline: dict | None = None
    """The variant's headline, where this dictionary is the one it acts through."""


def record_of(rec: dict, where: str) -> dict | None:
    """The record in elicit/<variant>.json of a dictionary as its headline names it: a site,
    `crosscoder@<site>` or `transcoder@<L>`."""
    if where.startswith("crosscoder@"):
        return rec.get("crosscoders", {}).get(where[len("crosscoder@"):])
    if where in rec.get("transcoder_sites", {}):
        return rec["transcoder_sites"][where]
    return rec.get("sites", {}).get(where)


def chosen_latents(record: dict | None, headline: dict | None = None) -> dict[str, list[int]]:
    """Tag -> the latents of each base-free intervention of `record` at its chosen size, and
    those of the headline's intervention (tagged headline)."""
    from experiments.elicit.interventions import chosen_entry

    out: dict[str, list[int]] = {}
    for name, r in (record or {}).items():
        if isinstance(r, dict) and "entries" in r and r.get("chosen") is not None:
            out.setdefault(TAGS.get(name, name), []).extend((chosen_entry(r) or {}).get("latents", []))
    if headline and record and isinstance(record.get(headline["intervention"]), dict):
        out["headline"] = list((chosen_entry(record[headline["intervention"]]) or {}).get("latents", []))
    return out


def headline_latents(rec: dict) -> dict | None:
    """The headline of elicit/<variant>.json with its chosen latents and their explanations
    (None for a run without one): {"site", "intervention", "n", "latents", "explanations"}."""
    from experiments.elicit.interventions import chosen_entry

    h = rec.get("headline")
    record = record_of(rec, h["site"]) if h else None
    if not record or not isinstance(record.get(h["intervention"]), dict):
        return None
    latents = (chosen_entry(record[h["intervention"]]) or {}).get("latents", [])
    expl = record.get("explanations") or []
    return {"site": h["site"], "intervention": h["intervention"], "n": h.get("n"), "latents": latents,
            "explanations": [expl[i] if i < len(expl) else None for i in latents]}


def dictionaries(run: RunDir, rc, models: list[str]) -> list[Dictionary]:
    """The elicit stage's dictionaries of `models` that the run holds (none without the stage)."""
    sc = getattr(rc, "elicit", None)
    if sc is None:
        return []
    recs = {v: json.loads(run.elicit(v).read_text()) for v in sc.variants if run.elicit(v).exists()}
    if not recs:
        return []
    sites = list(dict.fromkeys(s for r in recs.values() for s in r.get("sites", {})))
    layers = sorted({int(t.get("layer", k.split("@")[-1])) for r in recs.values()
                     for k, t in r.get("transcoder_sites", {}).items()})
    out = []
    for site in sites:
        for m in ["base", *recs]:
            rec = recs.get(m, {})
            if m in models and (run.elicit_sae(m, site) / "cfg.json").exists():
                out.append(Dictionary(f"{m} · {site}", f"elicit-sae-{m}-{site}", "SAE", m, run.elicit_sae(m, site),
                                      site, site, rec.get("sites", {}).get(site), _headline(rec, site)))
    for v, rec in recs.items():
        for site, cc in rec.get("crosscoders", {}).items():
            path = run.root / cc["path"] if cc.get("path") else run.elicit_crosscoder(v, site)
            if v in models and (path / "cfg.json").exists():
                out.append(Dictionary(f"crosscoder base × {v} · {site}", f"elicit-crosscoder-{v}-{site}",
                                      "crosscoder", v, path, site, site, cc,
                                      _headline(rec, f"crosscoder@{site}")))
    for layer in layers:
        for m in ["base", *recs]:
            rec = recs.get(m, {})
            path = run.elicit_sae(m, f"transcoder-{layer}")
            if m in models and (path / "cfg.json").exists():
                out.append(Dictionary(f"transcoder@{layer} · {m}", f"elicit-transcoder-{layer}-{m}", "transcoder", m,
                                      path, f"blocks.{layer}.hook_resid_mid",
                                      f"blocks.{layer}.hook_resid_mid → blocks.{layer}.hook_mlp_out",
                                      rec.get("transcoder_sites", {}).get(f"transcoder@{layer}"),
                                      _headline(rec, f"transcoder@{layer}")))
    return out


def _headline(rec: dict, where: str) -> dict | None:
    h = rec.get("headline")
    return h if h and h.get("site") == where else None


def rows_note(data: dict, cache: str, cfg: BrowserConfig) -> str:
    """Which rows of `cache` the statistics come from (a limited read is always said)."""
    n, total = data["n_rows"], data["n_total"]
    if n >= total:
        return f"Statistics from all {total} rows of {cache}."
    return (f"Statistics from the first {n} of the {total} rows of {cache} (--elicit_rows {cfg.elicit_rows}; the "
            "cache is in order of problem difficulty k, so these are its smaller-k problems).")


def elicit_views(run: RunDir, rc, view, cfg: BrowserConfig, tokens: list[str], models: list[str],
                 log=print) -> list[ModelView]:
    """One `ModelView` per elicit dictionary of `models` (`view`: the study's browse_view)."""
    import torch

    from features.browser import CrosscoderCode, PairedRows, latent_data, logit_effects
    from sae.crosscoder import load_crosscoder
    from sae.load import load_sae_folder
    from sae.transcoder import load_transcoder

    unembeds: dict[str, torch.Tensor] = {}

    def unembed(m: str):
        if m not in unembeds:  # several dictionaries per model: its LM head loaded once
            with torch.no_grad():
                unembeds[m] = view.unembed(run, rc, m).detach()
        return unembeds[m]

    out = []
    for d in dictionaries(run, rc, models):
        t0 = time.perf_counter()
        cache = run.relative(run.elicit_cache(d.model))
        more, columns = {}, []
        if d.kind == "crosscoder":
            cc = load_crosscoder(d.path)
            names = list(cc.models)
            own = names.index(d.model) if d.model in names else 1
            base = names.index("base") if "base" in names else 1 - own
            code = CrosscoderCode(cc, own)
            with PairedRows(run.elicit_cache("base"), run.elicit_cache(d.model)) as rows:
                data = latent_data(code, rows, d.read_hook, cfg, max_rows=cfg.elicit_rows)
            cache = f"{run.relative(run.elicit_cache('base'))} and {cache} (paired)"
            logits = logit_effects(code, unembed(d.model), cfg.logits)
            more = {"base decoder": logit_effects(CrosscoderCode(cc, base), unembed("base"), cfg.logits)}
            rec = d.record or {}
            if rec.get("latent_class"):
                columns.append(Column("latent_class", "latent class", rec["latent_class"],
                                      "by decoder norms (Minder et al. 2025): base_only, shared, finetuned_only, other, "
                                      "dead (sae.diff)"))
            if rec.get("delta"):
                columns.append(Column("delta", "Δ", rec["delta"],
                                      "relative decoder norm difference: 0 = variant only, 1/2 = shared, 1 = base only"))
        else:
            sae = (load_transcoder if d.kind == "transcoder" else load_sae_folder)(d.path)
            data = latent_data(sae, run.elicit_cache(d.model), d.read_hook, cfg, max_rows=cfg.elicit_rows)
            logits = logit_effects(sae, unembed(d.model), cfg.logits)
        expl = (d.record or {}).get("explanations")
        out.append(ModelView(
            name=d.name, sae=run.relative(d.path), hook=d.label, data=data, tokens=tokens,
            columns=columns + explanation_columns(expl), chosen=chosen_latents(d.record, d.headline),
            label_names=view.LABEL_NAMES, logits=logits, logits_label="variant decoder" if more else "",
            more_logits=more, note=_note(d), folder=d.folder, section="elicit", kind=d.kind,
            rows_note=rows_note(data, cache, cfg), explanations=expl, tags_help=ELICIT_TAGS,
            filter_tag="finetuned" if d.kind == "crosscoder" else "shortcut"))
        log(f"  browse {d.name}: {len(data['density'])} latents on {data['n_rows']} of {data['n_total']} rows "
            f"({time.perf_counter() - t0:.1f} s)")
    return out


def _note(d: Dictionary) -> str:
    what = {"SAE": f"The elicit stage's SAE of {d.model} at {d.label}, read on {d.model}'s training cache.",
            "transcoder": f"{d.model}'s transcoder of MLP {d.read_hook.split('.')[1]}: its code is read from the MLP "
                          f"input of {d.model}'s training cache, its decoder writes the MLP output (logit effects "
                          "through the unembedding).",
            "crosscoder": f"A base × {d.model} crosscoder at {d.label}: its code reads both models' activations of the "
                          "same token (paired rows of their training caches). Logit effects of the variant's decoder "
                          "through its unembedding, and of the base's through the base's."}[d.kind]
    if d.headline:
        what += (f" The run's headline intervention ({d.headline['intervention']}, n={d.headline.get('n')}) acts "
                 "through it: its latents are tagged headline.")
    if d.record is None or not d.record.get("explanations"):
        what += " No explanations were written for it."
    return what
