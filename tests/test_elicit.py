"""Probe items, forced-answer forward passes, activation patching, matched controls, gap
recovered, and the features / steer stages of the quick run."""

import json

import numpy as np
import pytest
import torch

from experiments.elicit import gap_recovered
from features.latent_stats import matched_random_latents, random_direction_like


def test_gap_recovered_by_hand():
    base, ft = {"value": 1.0}, {"value": 0.2}
    g = gap_recovered({"value": 0.6, "ci95": [0.5, 0.7]}, base, ft)
    assert g["value"] == pytest.approx(0.5) and g["ci95"] == pytest.approx([0.375, 0.625]) and g["gap"] == pytest.approx(0.8)
    # no gap to recover: not a ratio, but the steered value is kept
    g = gap_recovered({"value": 0.9, "ci95": [0.8, 0.95]}, {"value": 1.0}, {"value": 0.99})
    assert g["value"] is None and g["steered"] == 0.9


def test_controls_are_deterministic_and_frequency_matched():
    freq = torch.linspace(0, 1, 100)
    chosen = [95, 96, 5]
    a, b = matched_random_latents(freq, chosen, seed=3), matched_random_latents(freq, chosen, seed=3)
    assert a == b and a != matched_random_latents(freq, chosen, seed=4)
    assert not set(a) & set(chosen) and len(set(a)) == 3
    assert all(abs(freq[x] - freq[c]) <= 0.11 for x, c in zip(a, chosen))  # same decile
    v = torch.tensor([3.0, 4.0])
    r = random_direction_like(v, 0)
    assert r.norm().item() == pytest.approx(5.0) and torch.equal(r, random_direction_like(v, 0))


def test_probe_items_and_forced_answers(tmp_path):
    from activations.models import load_bridge
    from experiments.organisms.tokenizer import build_tokenizer
    from experiments.probe_items import probe_items
    from experiments.tasks import ROLES, ArithmeticTask
    from features.patching import last_logits, patched_last_logits
    from tests.helpers import save_tiny_model

    task, tok = ArithmeticTask(), build_tokenizer()
    exs = task.sample(12, 2, "eval", 0, 0.0)
    items = probe_items(task, tok, exs, 0)
    gold = items.kind == 0
    assert gold.sum() == 12 and (items.gold == items.implied)[gold].all() and (items.gold != items.implied)[~gold].all()
    for ids, role in zip(items.ids, items.role):
        assert tok.decode(ids[-2:]) == task.answer_prefix[-2:] and role[0] == ROLES.index("question")
        assert (role == ROLES.index("step")).any()
    assert all(m.sum() == 1 and m[-1] for m in items.role_masks("last"))
    # the same gold item's token for the answer is the answer's one token
    assert tok.convert_ids_to_tokens(int(items.gold[0])) == exs[0].answer
    a, b = load_bridge(save_tiny_model(tmp_path / "a", seed=0)), load_bridge(save_tiny_model(tmp_path / "b", seed=1))
    batched = last_logits(a, items.ids, batch_size=5)  # right padding does not change the last position
    single = torch.cat([last_logits(a, [x]) for x in items.ids])
    assert torch.allclose(batched, single, atol=1e-5)
    hook = "blocks.1.hook_resid_post"
    none = [np.zeros(len(x), bool) for x in items.ids]
    assert torch.allclose(patched_last_logits(a, b, items.ids, hook, none, batch_size=5), batched, atol=1e-5)
    assert torch.allclose(patched_last_logits(a, a, items.ids, hook, items.role_masks("all"), batch_size=5), batched,
                          atol=1e-5)
    assert not torch.allclose(patched_last_logits(a, b, items.ids, hook, items.role_masks("last")), batched, atol=1e-3)


def test_features_and_steer_stages_of_the_quick_run(quick_run):
    from experiments.runconfig import load_run_config

    run, _ = quick_run
    cfg, _ = load_run_config("quick")
    f = json.loads((run / "features" / "sft-noisy-trace.json").read_text())
    assert len(f["reason_score"]["all"]) == 4 * 64 and len(f["reason_score"]["top"]) == cfg.features.top
    tops = [t["value"] for t in f["reason_score"]["top"]]
    assert tops == sorted(tops, reverse=True) and tops[0] == pytest.approx(max(f["reason_score"]["all"]), abs=1e-6)
    t = f["patching"]["base_to_variant"]
    assert set(t) == {f"{c}@{l}" for c in ("attn_out", "mlp_out", "resid_post") for l in range(2)}
    # patching the base's last-layer residual at the answer position gives the base's prediction
    # there up to the variant's own unembedding; on this tiny run it restores the base's accuracy
    s = json.loads((run / "steering" / "sft-noisy-trace.json").read_text())
    ref = s["reference"]
    for e in s["sweeps"]["ablate_grown_latents"]:
        for st in e["metrics"]:
            for m in ("accuracy", "follow"):
                assert e["gap_recovered"][st][m] == gap_recovered(e["metrics"][st][m], ref["base"][st][m],
                                                                  ref["variant"][st][m])
    assert [e["strength"] for e in s["sweeps"]["ablate_grown_latents"]] == cfg.features.latent_counts
    grown = [x for x, _ in sorted(enumerate(f["latent_shift"]["shift"]), key=lambda p: -p[1])]
    assert s["sweeps"]["ablate_grown_latents"][0]["latents"] == grown[:cfg.features.latent_counts[0]]
    assert s["single"]["patching_oracle"]["metrics"]["heldout"] == t["resid_post@1"]["last"]["heldout"]
    md = (run / "report.md").read_text()
    assert "## Eliciting the reasoning back (steering)" in md and "**What this shows**" in md
    for name in ("patching", "steering", "reason_latents"):
        assert (run / "figures" / f"{name}.png").is_file() and f"figures/{name}.png" in md


def test_features_and_steer_commands(quick_run, tmp_path, capsys):
    from experiments.cli import main

    run, _ = quick_run
    assert main(["steer", str(run)]) == 0
    out = capsys.readouterr().out
    assert "[features] up to date, skipped" in out and "[steer] up to date, skipped" in out and "[figures]" not in out
    assert main(["features", str(tmp_path / "none")]) == 2
    assert "is not a run directory (no config.yaml)" in capsys.readouterr().err
