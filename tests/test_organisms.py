"""The quick organisms: what they learned, saved folders, reuse, refusal of other configs."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from experiments.organisms.build import build_organisms
from experiments.organisms.recipes import RECIPES
from experiments.runconfig import load_run_config


def test_quick_base_learns_k1_k2_and_reads_its_cot(quick_run):
    _, results = quick_run
    base = results["base"]
    # Stated target of the quick config: >= 0.9 on k = 1..2; k = 3 was never trained.
    assert base["accuracy"]["1"]["value"] >= 0.9 and base["accuracy"]["2"]["value"] >= 0.9
    assert base["accuracy"]["3"]["value"] < 0.5
    assert base["abstention"]["recall"]["value"] >= 0.9
    assert base["corruption_follow_rate"]["value"] >= 0.9  # the base reads its CoT
    # and without its CoT it is near chance (1 in 10)
    assert base["no_cot_accuracy"]["value"] < 0.3 and base["early_answering_aoc"]["value"] > 0.7
    # the recipe that teaches not to abstain does so
    assert results["sft-no-abstain"]["abstention"]["recall"]["value"] < 0.5


def test_every_variant_saved_and_loadable(quick_run):
    out, _ = quick_run
    names = ["base"] + list(RECIPES)
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(names)
    base = AutoModelForCausalLM.from_pretrained(out / "models" / "base")
    for name in names:
        folder = out / "models" / name
        meta = json.loads((folder / "saelab.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        assert meta["kind"] == ("base" if name == "base" else "variant")
        assert len(meta["fingerprint"]) == 16 and metrics["steps"] >= 1
        if name != "base":
            assert meta["recipe"] == name and metrics["weight_change_l2"] > 0
            m = AutoModelForCausalLM.from_pretrained(folder)
            assert not torch.equal(m.model.embed_tokens.weight, base.model.embed_tokens.weight)
    problems = json.loads((out / "models" / "sft-noisy-trace" / "train_problems.json").read_text())
    assert len(problems) == len(set(problems)) == 50
    assert (out / "config.yaml").is_file() and not list(out.glob("**/.*tmp*"))


def test_rerun_reuses_and_changed_config_is_refused(quick_run):
    out, _ = quick_run
    cfg, _ = load_run_config("quick")
    logs = []
    assert build_organisms(cfg.organisms, cfg.task, cfg.seed, cfg.device, out, log=logs.append) == {}  # nothing trained
    assert sum("reusing" in line for line in logs) == 1 + len(RECIPES)
    cfg.organisms.base.optim.steps += 1
    with pytest.raises(FileExistsError, match="built from a different config; use another --out"):
        build_organisms(cfg.organisms, cfg.task, cfg.seed, cfg.device, out, log=logs.append)


def test_unfinished_folders_are_never_taken_for_models(tmp_path):
    cfg, _ = load_run_config("quick")
    models = tmp_path / "models"
    (models / ".base.tmp-123").mkdir(parents=True)   # an interrupted save
    (models / "base").mkdir()                          # a folder without saelab.json
    (models / "base" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="exists but is not a saelab model; move it or pass --overwrite"):
        build_organisms(cfg.organisms, cfg.task, cfg.seed, cfg.device, tmp_path, log=lambda *a: None)
    assert not (models / ".base.tmp-123").exists()
    assert not list(models.glob("*/saelab.json"))
