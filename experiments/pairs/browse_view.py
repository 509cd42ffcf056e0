"""What the feature browser (`experiments.browse`) shows of a pair run, beside what every
study shows: the index column from `features/<model>.json` (ReasonScore on the reasoning
words, its top latents tagged), the LM head of each model of the pair (its spec: path or HF
id, revision) for the logit effects, and the steering runs (`steering/<variant>.json`) that
clamped each latent of the steering SAE, beside the matched random latents.
"""

from __future__ import annotations

import json

from experiments.rundir import RunDir
from experiments.tasks import ROLES
from features.browser_html import Column

LABEL_NAMES = {"role": list(ROLES), "step": [f"step {i + 1}" for i in range(256)]}
"""Names of the role and step label values (others show numbers)."""


def token_strings(run: RunDir, cfg) -> list[str]:
    """Token id -> display string (each id decoded alone; a line break shown as ↵), for every
    id of the pair's one tokenizer (the base's)."""
    from experiments.pairs.behavior import load_tokenizer

    spec = cfg.spec("base", run)
    tok = load_tokenizer(spec.path, spec.revision)
    texts = tok.batch_decode([[i] for i in range(len(tok))], clean_up_tokenization_spaces=False)
    return [t.replace("\n", "↵") for t in texts]


def columns(run: RunDir, cfg, name: str, f: dict) -> list[Column]:
    """The index columns of model `name`'s SAE, from its features JSON `f`."""
    score = f.get("reason_score") or [None] * f["d_sae"]  # None: no reasoning word was cached
    words = ", ".join(f.get("words_seen", [])) or "none seen"
    return [Column("reason_score", "ReasonScore", score,
                   f"Galichin et al. 2025, on the reasoning words of the cached texts ({words})")]


def chosen(f: dict) -> dict[str, list[int]]:
    """The top ReasonScore latents, tagged reasoning (ablated in the base, steered in the variants)."""
    return {"reasoning": list(f.get("top", []))}


def unembed(run: RunDir, cfg, name: str):
    """Model `name`'s unembedding (vocab, d_model), from its spec (in its dtype, on the CPU)."""
    from transformers import AutoModelForCausalLM

    from activations.models import DTYPES

    spec = cfg.spec(name, run)
    model = AutoModelForCausalLM.from_pretrained(spec.path, revision=spec.revision, dtype=DTYPES[spec.dtype])
    return model.get_output_embeddings().weight


def _recovered(r: dict | None) -> str:
    return "-" if not r or r.get("value") is None else f"{r['value']:+.2f}"


def steering(run: RunDir, cfg, name: str) -> dict[int, list[dict]]:
    """Latent -> the steering runs that clamped it: the reasoning latents of the steering SAE
    (`features.steer_sae`) and their matched random control, in each variant."""
    rows: dict[int, list[dict]] = {}
    for v in cfg.model_names()[1:]:
        path = run.steering(v)
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        if s.get("steer_sae") != name:
            continue
        latents = {"reasoning": s.get("latents", []), "random": s.get("random_control", [])}
        for e in s.get("steered", []):
            lats = latents.get(e["latents"], [])
            rec = e.get("recovered", {})
            for lat in lats:
                rows.setdefault(int(lat), []).append({
                    "variant": v, "sweep": f"clamp {e['latents']} latents", "strength": e["strength"], "n": len(lats),
                    "follow": _recovered(rec.get("mistake_changes")), "accuracy": _recovered(rec.get("accuracy"))})
    return rows


def note(run: RunDir, cfg, name: str, f: dict) -> str:
    """What this study's numbers mean on the model's pages."""
    out = []
    c = f.get("causal", {})
    if "top" in c and "random" in c:
        out.append(f"Ablating the {len(f.get('top', []))} top ReasonScore latents in the base changes the mean log p "
                   f"of the gold answer after the gold CoT by {c['top']['value']:+.3g} (matched random latents: "
                   f"{c['random']['value']:+.3g}).")
    if name == cfg.features.steer_sae:
        out.append("Steering clamped this SAE's top ReasonScore latents (and matched random ones) in each variant: "
                   "their latent pages list those runs; 'follow' there is the gap recovered in how often a changed "
                   "number in the CoT changes the answer, 'accuracy' in accuracy after the gold CoT "
                   "(no held-out split).")
    return " ".join(out)
