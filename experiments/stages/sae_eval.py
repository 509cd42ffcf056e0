"""The evaluation half of the `sae` stage (rank 0): load what was trained and what is
pretrained, then measure every SAE on held-out examples only.

    saes[m]       source, training metrics, held-out reconstruction, spliced loss
    frontier[p]   held-out reconstruction of each frontier point (and the base's own SAE)
    transfer[s]   SAE of model s on every model's held-out activations (same tokens)
    crosscoders   held-out metrics, latent classes by relative decoder norm (diff.json)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from experiments.rundir import CROSSCODER_DIFF, SAE_EVAL, RunDir
from experiments.stages.sae_config import FrontierPoint
from experiments.stages.sae_data import RowSplit, cache_sequences


def load_pretrained_into(run: RunDir, cfg, name: str, out: Path) -> dict:
    """Load model `name`'s configured SAE, check it reads the run's hook and fits the cache,
    save it under `out` (SAELens' format); returns its `source` record."""
    from activations.cache import open_cache
    from sae.load import bridge_hook_name, check_fits, load_pretrained, load_sae_folder

    s = cfg.sae
    p = s.pretrained[name]
    if p.path is not None and not Path(p.path).is_dir():
        raise FileNotFoundError(f"sae.pretrained[{name}]: no SAE folder {p.path}")
    sae = load_sae_folder(p.path, cfg.device) if p.path else load_pretrained(p.release, p.id, cfg.device)
    with open_cache(run.cache(name)) as c:
        d_model, hooks = c.d_model, c.hooks
    recorded = getattr(sae.cfg.metadata, "hook_name", None)
    if recorded is not None:
        hook = bridge_hook_name(recorded, hooks + [s.hook])
        if hook != s.hook:
            raise ValueError(f"sae.pretrained[{name}] ({p.describe()}) reads {recorded!r} = {hook}, but sae.hook is "
                             f"{s.hook}; set sae.hook to {hook} (and cache it)")
    check_fits(sae, d_model, s.hook)
    sae.save_model(str(out))
    return {"pretrained": p.describe(), "hook_name": recorded, "d_sae": int(sae.cfg.d_sae)}


def _crosscoder(run: RunDir, cfg, v: str, folder: Path, held: RowSplit) -> dict:
    import torch

    from activations.cache import open_paired
    from sae.crosscoder import crosscoder_metrics, load_crosscoder
    from sae.diff import diff_table

    base = cfg.model_names()[0]
    ccfg = cfg.sae.crosscoder
    cc = load_crosscoder(folder, cfg.device)
    with open_paired(run.cache(base), run.cache(v)) as pair:
        def held_pairs():
            return (torch.stack(p, 1) for p in pair.batches(cfg.sae.hook, 4096, held))

        table = diff_table(cc, held_pairs)
        heldout = crosscoder_metrics(cc, held_pairs())
    (folder / CROSSCODER_DIFF).write_text(json.dumps(table, indent=1))
    out = {"train": json.loads((folder / "metrics.json").read_text()), "heldout": heldout,
           "counts": table["counts"], "r": [x["r"] for x in table["latents"]],
           "class": [x["class"] for x in table["latents"]]}
    if not ccfg.k / 1.5 <= heldout["l0"] <= ccfg.k * 1.5:
        out["warning"] = f"held-out L0 {heldout['l0']:.1f} is off k={ccfg.k} by more than 1.5x"
    return out


def evaluate_saes(run: RunDir, cfg, out: Path, load_model: Callable[[RunDir, Any, str], Any], log) -> dict:
    """Write out/eval.json (and each crosscoder's diff.json) from the SAEs under `out`."""
    from sae.evaluate import evaluate_on_cache, spliced_loss
    from sae.load import load_sae_folder

    s, names = cfg.sae, cfg.model_names()
    held = RowSplit.of(s, heldout=True)
    caches = {m: run.cache(m) for m in names}
    result: dict = {"hook": s.hook, "heldout_every": s.heldout_every, "saes": {}, "frontier": {},
                    "transfer": {}, "crosscoders": {}}
    for m in names:
        if m in s.pretrained:
            result["saes"][m] = {"source": load_pretrained_into(run, cfg, m, out / m)}
        else:
            result["saes"][m] = {"source": "trained", "train": json.loads((out / m / "metrics.json").read_text())}
    saes = {m: load_sae_folder(out / m, cfg.device) for m in names}
    for m, sae in saes.items():  # transfer: every SAE on every model's held-out activations
        row = result["transfer"][m] = {c: evaluate_on_cache(sae, caches[c], s.hook, where=held) for c in names}
        result["saes"][m]["heldout"] = h = row[m]
        train = result["saes"][m].get("train", {})
        log(f"  sae {m}: {train.get('architecture', 'pretrained')} L0 {h['l0']:.1f}, held-out explained variance "
            f"{h['explained_variance']:.3f}" + (f"; warning: {train['warning']}" if "warning" in train else ""))
    for p in s.frontier:
        folder = out / "frontier" / p.name
        train = json.loads((folder / "metrics.json").read_text())
        h = evaluate_on_cache(load_sae_folder(folder, cfg.device), caches[names[0]], s.hook, where=held)
        result["frontier"][p.name] = {"train": train, "heldout": h}
        log(f"  sae base/{p.name}: {p.architecture} L0 {h['l0']:.1f}, held-out explained variance "
            f"{h['explained_variance']:.3f}" + (f"; warning: {train['warning']}" if "warning" in train else ""))
    if s.frontier and names[0] not in s.pretrained:
        uses_k = "topk" in s.train.architecture
        own = FrontierPoint(s.train.architecture, k=s.train.k if uses_k else None,
                           sparsity_coefficient=None if uses_k else s.train.sparsity_coefficient)
        result["frontier"][f"{own.name} (base SAE)"] = {k: result["saes"][names[0]][k] for k in ("train", "heldout")}
    t0 = time.perf_counter()
    for m, sae in saes.items():
        ids, step = cache_sequences(caches[m], s.spliced_sequences, held)
        model = load_model(run, cfg, m)
        result["saes"][m]["spliced"] = spliced_loss(sae, model, s.hook, ids, {"step": step})
        del model
    log(f"  sae spliced loss of {len(saes)} models: {time.perf_counter() - t0:.1f} s")
    for v in s.crosscoder_variants:
        c = result["crosscoders"][v] = _crosscoder(run, cfg, v, out / run.crosscoder(v).name, held)
        log(f"  crosscoder base x {v}: held-out L0 {c['heldout']['l0']:.1f}; {c['counts']}")
    (out / SAE_EVAL).write_text(json.dumps(result, indent=1))
    return result
