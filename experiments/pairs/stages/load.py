"""What the pairs' stages share: a model of the pair (TransformerBridge), its tokenizer, the
task's problems, and where rank 0 writes a stage's files."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.engine.distributed import dist_rank_world
from experiments.rundir import RunDir


def problems(cfg):
    """The evaluated problems: the task's, less its few-shot examples."""
    return _split(cfg)[1]


def examples(cfg):
    """The few-shot examples in every prompt (none unless `task.few_shot`)."""
    return _split(cfg)[0]


def _split(cfg):
    from experiments.tasks.text import load_problems, split_examples

    return split_examples(load_problems(cfg.task), cfg.task)


def prompts(cfg, tok, items) -> list[str]:
    """Each problem's prompt as `tok`'s model sees it (few-shot examples included)."""
    from experiments.tasks.text import render_prompt

    shots = examples(cfg)
    return [render_prompt(p.question, cfg.task, tok, shots) for p in items]


def tokenizer_of(run: RunDir, cfg, name: str):
    from experiments.pairs.behavior import load_tokenizer

    spec = cfg.spec(name, run)
    return load_tokenizer(spec.path, spec.revision)


def load_pair_model(run: RunDir, cfg, name: str):
    """Model `name` of the pair as a TransformerBridge."""
    from activations.models import load_bridge

    return load_bridge(cfg.spec(name, run))


def out_dir(final: Path) -> Path | None:
    """The temporary folder a stage writes into (rank 0's); None on the other ranks, which
    compute their share and write nothing."""
    from activations.atomic import temp_dir

    return temp_dir(final) if dist_rank_world()[0] == 0 else None


def write(tmp: Path | None, name: str, record: dict) -> None:
    if tmp is not None:
        (tmp / name).write_text(json.dumps(record, indent=1))


def finish(tmp: Path | None, final: Path) -> None:
    from activations.atomic import replace_dir

    if tmp is not None:
        replace_dir(tmp, final)


def load_behavior(run: RunDir, cfg) -> dict[str, dict]:
    """{model: its behaviour record (metrics and generations)}."""
    return {m: json.loads(run.behavior(m).read_text()) for m in cfg.model_names()}
