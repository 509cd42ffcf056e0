"""What the feature browser (`experiments.browse`) shows of an organisms run, beside what
every study shows: the index columns from `features/<model>.json` (ReasonScore, value-probe
AUROC, attribution and exact ablation per patching site, and for the base SAE each variant's
latent shift at the answer prefix), the LM head of each organism (`models/<name>/`) for the
logit effects, and the steering sweeps (`steering/<variant>.json`, base SAE) that used each
latent.
"""

from __future__ import annotations

import json

from experiments.rundir import RunDir
from experiments.tasks import ROLES
from features.browser_html import Column

LABEL_NAMES = {"role": list(ROLES), "step": [f"step {i + 1}" for i in range(64)]}
"""Names of the role and step label values (others show numbers)."""


def token_strings(run: RunDir, cfg) -> list[str]:
    """Token id -> display string, for every id of the organisms' one tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run.model("base"))
    return [t.replace("Ġ", " ") for t in tok.convert_ids_to_tokens(list(range(len(tok))))]


def _shifts(run: RunDir, cfg, name: str) -> dict[str, list[float]]:
    """For the base SAE: each variant's latent shift (its features JSON), where it has one."""
    if name != "base":
        return {}
    out = {}
    for v in cfg.model_names()[1:]:
        path = run.features(v)
        f = json.loads(path.read_text()) if path.exists() else {}
        if "latent_shift" in f:
            out[v] = f["latent_shift"]["shift"]
    return out


def columns(run: RunDir, cfg, name: str, f: dict) -> list[Column]:
    """The index columns of model `name`'s SAE, from its features JSON `f`."""
    cols = [Column("reason_score", "ReasonScore", f["reason_score"]["all"], "Galichin et al. 2025, CoT-step positions"),
            Column("value_auroc", "value AUROC", f["value_probes"]["auroc"],
                   "best one-vs-rest AUROC for the step's value at each step's '='"),
            Column("value", "value", f["value_probes"]["detects"], "the value that AUROC is for")]
    for site, c in f.get("causal", {}).items():
        exact = {e["latent"]: e["delta_logp"] for e in c["exact"]}
        cols.append(Column(f"attribution_{site}", f"attribution ({site})", c["attribution"],
                           "gradient x activation: first-order change in log p of the implied answer if ablated"))
        exact_all = [exact.get(i) for i in range(len(c["attribution"]))]
        cols.append(Column(f"ablation_{site}", f"ablation ({site})", exact_all,
                           "exact change in log p of the implied answer when ablated (top candidates only)"))
    for v, shift in _shifts(run, cfg, name).items():
        cols.append(Column(f"shift_{v}", f"shift in {v}", shift,
                           f"mean activation at the answer prefix in {v} minus in the base (base SAE)"))
    return cols


def chosen(f: dict) -> dict[str, list[int]]:
    """Tag -> latents the features stage chose (reasoning, value, causal)."""
    return f.get("table", {}).get("chosen", {})


def unembed(run: RunDir, cfg, name: str):
    """The organism's unembedding (vocab, d_model)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(run.model(name)).get_output_embeddings().weight


def steering(run: RunDir, cfg, name: str) -> dict[int, list[dict]]:
    """Latent -> the steering sweeps that included it (steering uses the base SAE)."""
    rows: dict[int, list[dict]] = {}
    if name != "base":
        return rows
    for v in cfg.features.variants:
        path = run.steering(v)
        if not path.exists():
            continue
        for sweep, entries in json.loads(path.read_text())["sweeps"].items():
            for e in entries:
                g = e["gap_recovered"]["heldout"]
                fmt = lambda m: "-" if m not in g or g[m]["value"] is None else f"{g[m]['value']:+.2f}"  # noqa: E731
                for lat in e.get("latents", []):
                    rows.setdefault(int(lat), []).append({"variant": v, "sweep": sweep, "strength": e["strength"],
                                                          "n": len(e["latents"]), "follow": fmt("follow"),
                                                          "accuracy": fmt("accuracy")})
    return rows


def note(run: RunDir, cfg, name: str, f: dict) -> str:
    return "Steering used the base SAE: its latent pages list the sweeps that included them." if name == "base" \
        else ""
