"""Evaluate a model given as a folder or a HF id: what `saelab behavior` and the pipeline's
behaviour stage run for each model."""

from __future__ import annotations

import json
import re
from pathlib import Path

from activations.models import load_hf
from experiments.behavior.core import Subject
from experiments.behavior.suite import BehaviorConfig, distinct_problems, evaluate
from experiments.config import to_dict
from experiments.tasks import ArithmeticTask, Example

_HF_ID = re.compile(r"[\w.-]+/[\w.-]+")


def check_model_path(path_or_id: str) -> None:
    """A one-line error unless `path_or_id` is a model folder or looks like a HF id."""
    local = Path(path_or_id)
    if not local.exists() and not _HF_ID.fullmatch(path_or_id):
        raise FileNotFoundError(f"no model at {path_or_id!r}: give a save_pretrained folder or a HF id (org/name)")
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(f"{path_or_id} has no config.json: not a save_pretrained model folder")


def load_subject(path_or_id: str, device: str, batch_size: int) -> Subject:
    """Load a local `save_pretrained` folder or a HF id; a one-line error when neither works."""
    check_model_path(path_or_id)
    try:
        model, tok = load_hf(path_or_id, device)
    except OSError as e:  # HF's way of saying "not found" / "offline"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileNotFoundError(f"cannot load model {path_or_id!r}: {first}") from None
    return Subject(model, tok, batch_size=batch_size)


def trained_problems(folder: str | Path, task: ArithmeticTask) -> list[Example] | None:
    """A variant's fixed training set (`train_problems.json`), if it was trained on one."""
    path = Path(folder) / "train_problems.json"
    if not path.is_file():
        return None
    return [task.example(p) for p in json.loads(path.read_text())]


def check_task(folder: str | Path, task: ArithmeticTask) -> None:
    """Refuse to evaluate an organism on a task other than the one it was trained on."""
    meta = Path(folder) / "saelab.json"
    if meta.is_file():
        trained_on = json.loads(meta.read_text()).get("task")
        if trained_on is not None and trained_on != to_dict(task.cfg):
            raise ValueError(f"{folder} was trained on task {trained_on}, but the config's task is "
                             f"{to_dict(task.cfg)}; pass the config it was built with (--config)")


def evaluate_model(model: str, task: ArithmeticTask, cfg: BehaviorConfig, seed: int, device: str = "cpu",
                   reference: str | None = None, desc: str = "behavior", name: str | None = None) -> dict:
    """The suite's results for `model` (path or HF id); InfoGain also scored by `reference`.
    A model whose variant `name` the switch or compress sweep names gets that sweep too."""
    check_task(model, task)
    subject = load_subject(model, device, cfg.batch_size)
    if reference is not None:
        check_task(reference, task)
    ref = load_subject(reference, device, cfg.batch_size) if reference is not None else None
    out = evaluate(subject, task, cfg, seed, reference=ref, trained=trained_problems(model, task), desc=desc)
    if name is not None and name in cfg.switch.models:
        from experiments.behavior.switch import switch_sweep

        problems = distinct_problems(task, cfg.switch.n, cfg.switch.k, seed + 3000)
        out["switch"] = switch_sweep(subject, task, problems, cfg.switch, seed)
    if name is not None and name in cfg.format.models:
        from experiments.behavior.format_eval import format_rates

        out["format"] = format_rates(subject, task, distinct_problems(task, cfg.format.n, cfg.format.k, seed + 6000))
    if name is not None and name in cfg.instruction.models:
        from experiments.behavior.instruction_eval import instruction_rates

        c = cfg.instruction
        out["instruction"] = instruction_rates(subject, task, distinct_problems(task, c.n, c.k, seed + 7000), c)
    if name is not None and name in cfg.compress.models:
        from activations.models import load_bridge
        from experiments.behavior.compress import compression_study

        c = cfg.compress
        pairs = task.sample(c.pairs, c.k, "train", seed + 4000)
        taken = {ex.prompt for ex in pairs}
        selection = [ex for ex in task.sample(c.select_n + c.pairs, c.k, "train", seed + 5000)
                     if ex.prompt not in taken][:c.select_n]
        sets = {"pairs": pairs, "selection": selection, "heldout": distinct_problems(task, c.n, c.k, seed + 1000)}
        bridge = Subject(load_bridge(model, device), subject.tokenizer, batch_size=cfg.batch_size)
        out["compress"] = compression_study(bridge, task, c, sets, seed)
    return out
