"""Real pretrained models (SmolLM2-135M-Instruct: Llama; Gemma 3 270M: Gemma 3), made into HF
folders by `saelab get-model` from the GGUF files the package index ships: logits through the
TransformerBridge equal HF's, generation inside the bridge's hooks equals HF `generate`, and
the whole pair pipeline (generate, cache, SAE, splice, steer, report) runs on a self-pair,
which must show identical behaviour for both models and no gap anywhere.

Marked `real` (not in `make test`): `pytest -m real`. Each test skips, naming the command that
makes its folder, when the folder is absent. SAELAB_MODELS points at another models folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from experiments.cli import main

pytestmark = pytest.mark.real
ROOT = Path(__file__).parent.parent
MODELS = Path(os.environ.get("SAELAB_MODELS", ROOT / "models"))
REAL = ["smollm2-135m-instruct", "gemma3-270m"]


def real_model(name: str) -> Path:
    folder = MODELS / name
    if not (folder / "saelab-model.json").is_file():
        pytest.skip(f"no real model at {folder}: run `saelab get-model {name} --out {folder}` first")
    return folder


@pytest.mark.parametrize("name", REAL)
def test_bridge_logits_and_generation_equal_hf(name):
    from transformers import AutoModelForCausalLM

    from activations.generate import generate_text
    from activations.models import load_bridge
    from experiments.pairs.behavior import load_tokenizer

    folder = real_model(name)
    tok = load_tokenizer(str(folder))
    # the bridge runs eager attention; HF with the same kernels gives the same floats (SDPA
    # differs from eager by ~1e-4 on Gemma 3 logits of size ~26)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    prompts = ["Question: A baker makes 14 loaves and sells 9. How many are left?\nAnswer:",
               "The capital of France is"]
    enc = tok(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = hf(**enc).logits
    want_text = generate_text(hf, tok, prompts, 16)
    del hf
    bridge = load_bridge(str(folder))
    with torch.no_grad():
        got = bridge.original_model(**enc).logits  # the bridge's modules, hooks in place
        via_bridge = bridge(enc["input_ids"][:1])
    real = enc["attention_mask"].bool()
    assert (got - want)[real].abs().max().item() < 1e-4
    assert (via_bridge[0] - want[0][real[0]]).abs().max().item() < 1e-4
    assert generate_text(bridge, tok, prompts, 16) == want_text
    assert all(t.strip() for t in want_text)  # a real model writes something
    # residual-stream hooks run on the plain twin (the same floats); the bridge's own hook
    # points give the same text under the same edit
    from activations.plain import plain_model

    assert plain_model(bridge) is not None
    push = lambda x, hook: x + 0.5  # noqa: E731
    site = f"blocks.{bridge.cfg.n_layers // 2}.hook_resid_post"
    assert generate_text(bridge, tok, prompts, 16, fwd_hooks=[(site, push)]) == \
        generate_text(bridge, tok, prompts, 16, fwd_hooks=[(lambda n: n == site, push)])


def self_pair_config(tmp: Path, folder: Path) -> Path:
    """The pair pipeline with one real model as base and variant, on a few problems."""
    cfg = {
        "seed": 0, "device": "cpu",
        "models": {"base": {"path": str(folder)}, "variants": {"same": {"path": str(folder)}}},
        "task": {"limit": 6},
        "behavior": {"max_new_tokens": 48, "answer_tokens": 6, "batch_size": 8, "max_cuts": 2},
        # float32: Gemma 3 residuals at the first position pass float16's range
        "cache": {"write": {"hooks": ["blocks.{l}.hook_resid_post"], "dtype": "float32", "shard_sequences": 16,
                            "batch_size": 8}},
        "sae": {"hook": "blocks.3.hook_resid_post",
                "train": {"architecture": "topk", "expansion": 2, "k": 8, "lr": 0.001, "steps": 20,
                          "batch_size": 128, "buffer_rows": 2048, "norm_batches": 2, "checkpoints": 0}},
        "features": {"top": 2, "strengths": [4.0]},
    }
    path = tmp / "self-pair.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("name", REAL)
def test_a_self_pair_has_identical_behaviour_and_no_gap(name, tmp_path):
    folder = real_model(name)
    run = tmp_path / "run"
    assert main(["run", "--config", str(self_pair_config(tmp_path, folder)), "--out", str(run)]) == 0
    base = json.loads((run / "behavior" / "base.json").read_text())
    same = json.loads((run / "behavior" / "same.json").read_text())
    assert base["metrics"] == same["metrics"]
    assert [g["output"] for g in base["generations"]] == [g["output"] for g in same["generations"]]
    assert base["metrics"]["faithfulness"]["usable_cots"] > 0  # forced answers: a real model's CoTs are usable
    steer = json.loads((run / "steering" / "same.json").read_text())
    for k in ("accuracy", "mistake_changes"):
        assert steer["base"][k]["value"] == steer["variant_metrics"][k]["value"]
    assert steer["steered"] and all(s["recovered"][k]["no_gap"] for s in steer["steered"]
                                    for k in ("accuracy", "mistake_changes"))
    with open(run / "activations" / "base" / "meta.json") as f:
        hooks = json.load(f)["hooks"]
    assert "blocks.3.hook_resid_post" in hooks
    assert "## Behaviour" in (run / "report.md").read_text()
