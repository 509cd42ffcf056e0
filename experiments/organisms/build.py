"""The organisms stage: train the base and the configured variants into RUN/models/<name>/.

Each model folder is a HF `save_pretrained` folder (model + tokenizer) plus
`saelab.json` (what produced it, with a fingerprint), `metrics.json` (training metrics)
and, for fixed-set recipes, `train_problems.json`. A folder is written under a temporary
name and renamed when complete; an existing folder with the same fingerprint is reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import transformers

from activations.models import load_hf
from activations.atomic import clean_temporaries, replace_dir, temp_dir
from experiments.config import fingerprint, to_dict
from experiments.engine.code import closure_hash
from experiments.organisms.model import build_model
from experiments.organisms.pretrain import pretrain
from experiments.organisms.recipes import get_recipe
from experiments.organisms.recipes.common import fixed_problems
from experiments.organisms.tokenizer import build_tokenizer
from experiments.organisms.config import OrganismsConfig
from experiments.tasks import ArithmeticTask, TaskConfig

FORMAT_VERSION = 1
# The code that decides the base model: the import closure of pretraining, model and
# tokenizer (a variant's adds its recipe's closure).
BASE_CODE = ("experiments.organisms.pretrain", "experiments.organisms.model", "experiments.organisms.tokenizer")


def _saelab_version() -> str:
    from importlib.metadata import version
    return version("saelab")


def _reusable(folder: Path, fp: str, overwrite: bool, retrain: bool = False) -> bool:
    """True when `folder` holds a finished model with fingerprint `fp` (and not `retrain`)."""
    meta = folder / "saelab.json"
    if not meta.is_file():
        if folder.exists() and not overwrite:
            raise FileExistsError(f"{folder} exists but is not a saelab model; move it or pass --overwrite")
        return False
    if json.loads(meta.read_text()).get("fingerprint") == fp:
        return not retrain
    if not overwrite:
        raise FileExistsError(f"{folder} was built from a different config; use another --out "
                              "or pass --overwrite to rebuild it")
    return False


def _save(model, tokenizer, folder: Path, meta: dict, metrics: dict, extra: dict[str, object]) -> None:
    tmp = temp_dir(folder)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for name, obj in extra.items():
        (tmp / name).write_text(json.dumps(obj, indent=1))
    # saelab.json last: its presence marks a finished folder.
    (tmp / "saelab.json").write_text(json.dumps(meta, indent=1))
    replace_dir(tmp, folder)


def build_organisms(org: OrganismsConfig, task_cfg: TaskConfig, seed: int, device: str, out: Path,
                    overwrite: bool = False, retrain: bool = False, log=print) -> dict[str, dict]:
    """Train (or reuse) every model of `org` on the task of `task_cfg` under `out`/models;
    returns each model's training metrics. A folder built from another config is an error
    unless `overwrite`; `retrain` trains every model again even when its folder matches."""
    transformers.utils.logging.disable_progress_bar()  # per-file load/save bars drown the log
    task = ArithmeticTask(task_cfg)
    variants = org.parsed_variants()
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    clean_temporaries(models)  # what an interrupted run left; never a finished model
    common = {"format_version": FORMAT_VERSION, "saelab_version": _saelab_version(), "seed": seed,
              "task": to_dict(task_cfg)}

    # The fingerprints cover the code that trains each model too: editing it retrains.
    base_meta = {**common, "kind": "base", "model": to_dict(org.model), "base": to_dict(org.base),
                 "code": closure_hash(BASE_CODE)}
    base_fp = base_meta["fingerprint"] = fingerprint({k: v for k, v in base_meta.items() if k != "saelab_version"})
    trained = {}
    if _reusable(models / "base", base_fp, overwrite, retrain):
        log(f"base: reusing {models / 'base'}")
    else:
        t0 = time.perf_counter()
        tokenizer = build_tokenizer()
        model = build_model(org.model, tokenizer, seed).to(device)
        metrics = pretrain(model, tokenizer, task, org.base, seed, device)
        _save(model, tokenizer, models / "base", base_meta, metrics, {})
        trained["base"] = metrics
        log(f"base: trained in {time.perf_counter() - t0:.0f} s, final loss {metrics['final_loss']:.4f}")

    for v in variants:
        meta = {**common, "kind": "variant", "name": v.name, "recipe": v.recipe, "recipe_config": to_dict(v.cfg),
                "base_fingerprint": base_fp,
                "code": closure_hash(BASE_CODE + (get_recipe(v.recipe).__name__,))}
        fp = meta["fingerprint"] = fingerprint({k: x for k, x in meta.items() if k not in ("saelab_version", "name")})
        if _reusable(models / v.name, fp, overwrite, retrain):
            log(f"{v.name}: reusing {models / v.name}")
            continue
        t0 = time.perf_counter()
        model, tokenizer = load_hf(str(models / "base"), device)
        before = [p.detach().clone() for p in model.parameters()]
        metrics = get_recipe(v.recipe).run(model, tokenizer, task, v.cfg, org.base, seed, device)
        metrics["weight_change_l2"] = float(sum(((p.detach() - b) ** 2).sum() for p, b in
                                                zip(model.parameters(), before)) ** 0.5)
        problems = fixed_problems(task, v.cfg, seed)
        extra = {"train_problems.json": [ex.prompt for ex in problems]} if problems is not None else {}
        _save(model, tokenizer, models / v.name, meta, metrics, extra)
        trained[v.name] = metrics
        log(f"{v.name}: {v.recipe} in {time.perf_counter() - t0:.0f} s, final loss {metrics['final_loss']:.4f}")

    return trained
