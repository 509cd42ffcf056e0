"""Probe items, forced-answer forward passes, activation patching, matched controls, gap
recovered, and the features / steer stages of the quick run."""

import json

import numpy as np
import pytest
import torch

from features.stats import gap_recovered
from features.latent_stats import matched_random_latents, random_direction_like


def test_gap_recovered_by_hand():
    base, ft = {"value": 1.0}, {"value": 0.2}
    g = gap_recovered({"value": 0.6, "ci95": [0.5, 0.7]}, base, ft)
    assert g["value"] == pytest.approx(0.5) and g["ci95"] == pytest.approx([0.375, 0.625]) and g["gap"] == pytest.approx(0.8)
    # no gap to recover: not a ratio, but the steered value is kept
    g = gap_recovered({"value": 0.9, "ci95": [0.8, 0.95]}, {"value": 1.0}, {"value": 0.99})
    assert g["value"] is None and g["steered"] == 0.9


def test_controls_are_deterministic_and_frequency_matched():
    # most latents silent, as at one position of a real SAE: a decile match would fail here
    freq = torch.zeros(100)
    freq[90:] = torch.tensor([0.05, 0.1, 0.2, 0.3, 0.5, 0.52, 0.7, 0.71, 0.9, 0.93])
    chosen = [98, 96, 3]
    a = matched_random_latents(freq, chosen, seed=3)
    assert a == matched_random_latents(freq, chosen, seed=3)
    assert a[:2] == [99, 97]  # the nearest unused frequencies: 0.93 for 0.9, 0.71 for 0.7
    assert freq[a[2]] == 0 and a[2] not in chosen  # a silent latent for a silent one, drawn by the seed
    assert {matched_random_latents(freq, chosen, seed=s)[2] for s in range(5)} != {a[2]}
    with pytest.raises(ValueError, match="no latent left to match"):
        matched_random_latents(torch.zeros(3), [0, 1], seed=0)
    v = torch.tensor([3.0, 4.0])
    r = random_direction_like(v, 0)
    assert r.norm().item() == pytest.approx(5.0) and torch.equal(r, random_direction_like(v, 0))


def test_probe_items_and_forced_answers(tmp_path):
    from activations.models import load_bridge
    from experiments.organisms.tokenizer import build_tokenizer
    from experiments.probe_items import probe_items
    from experiments.tasks import ROLES, ArithmeticTask
    from features.patching import last_logits, patched_last_logits, patching_sweep
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
    # the sweep (donor run once for all hooks) equals one patched run per hook and role
    hooks = ["blocks.0.hook_attn_out", hook]
    masks = {r: items.role_masks(r) for r in ("step", "last")}
    sweep = patching_sweep(a, b, items.ids, hooks, masks, batch_size=5)
    assert set(sweep) == {(h, r) for h in hooks for r in masks}
    for (h, r), logits in sweep.items():
        assert torch.allclose(logits, patched_last_logits(a, b, items.ids, h, masks[r], batch_size=7), atol=1e-5)


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
    s = json.loads((run / "steering" / "sft-noisy-trace.json").read_text())
    ref = s["reference"]
    for e in s["sweeps"]["ablate_grown_latents"]:
        for st in ("heldout", "trained"):
            fb, fv, fs = (x[st]["follow"]["value"] for x in (ref["base"], ref["variant"], e["metrics"]))
            g = e["gap_recovered"][st]["follow"]
            if g["value"] is not None:
                assert g["value"] == pytest.approx((fs - fv) / (fb - fv)) and g["gap_ci95"][0] > 0
            else:  # no gap: its own paired interval reaches 0
                assert g["no_gap"] and (fb == fv or g["gap_ci95"][0] <= 0 <= g["gap_ci95"][1])
        assert "choose" in e["metrics"] and "choose" in e["gap_recovered"]  # the strength is picked there
        # the null: cfg.features.null_draws draws of the control at this strength (None draws: no gap)
        n = e["null"]["follow"]
        assert 0 < n["n"] <= cfg.features.null_draws and n["band95"][0] <= n["median"] <= n["band95"][1]
    assert s["null_draws"] == cfg.features.null_draws and s["tried"]["ablate_grown_latents"] == len(
        s["sweeps"]["ablate_grown_latents"])
    assert "by_problem" not in json.dumps(s)  # the per-problem data served the intervals, not the record
    grown = [x for x, d in sorted(enumerate(f["latent_shift"]["shift"]), key=lambda p: -p[1]) if d > 0]
    assert [e["strength"] for e in s["sweeps"]["ablate_grown_latents"]] == [
        n for n in cfg.features.latent_counts if n <= len(grown)]
    assert s["sweeps"]["ablate_grown_latents"][0]["latents"] == grown[:cfg.features.latent_counts[0]]
    report = json.loads((run / "report.json").read_text())
    best = report["elicitation"]["variants"]["sft-noisy-trace"]["best"]["ablate_grown_latents"]
    entries = s["sweeps"]["ablate_grown_latents"]
    # (None: no gap, never chosen; a value of exactly 0.0 is a value, not None)
    by_choice = max(entries, key=lambda e: -9 if (v := e["gap_recovered"]["choose"]["follow"]["value"]) is None else v)
    assert best["strength"] == by_choice["strength"]
    from experiments.elicit.steer_stage import strip_problems

    assert s["single"]["patching_oracle"]["metrics"]["heldout"] == strip_problems(t["resid_post@1"]["last"]["heldout"])
    md = (run / "report.md").read_text()
    assert "## Eliciting the reasoning back (steering)" in md and "**What this shows**" in md
    c = f["chosen_by_role"]
    assert len(c["base"]) == len(c["variant"]) == 3 and all(len(r) == len(c["latents"]) for r in c["base"])
    for name in ("patching", "steering", "reason_latents", "chosen_latents"):
        assert (run / "figures" / f"{name}.png").is_file() and f"figures/{name}.png" in md


def test_features_and_steer_commands(quick_run, tmp_path, capsys):
    from experiments.cli import main

    run, _ = quick_run
    assert main(["steer", str(run)]) == 0
    out = capsys.readouterr().out
    assert "[features] up to date, skipped" in out and "[steer] up to date, skipped" in out and "[figures]" not in out
    assert main(["features", str(tmp_path / "none")]) == 2
    assert "is not a run directory (no config.yaml)" in capsys.readouterr().err


def test_answer_position_hooks_act_on_each_sequences_last_token(tmp_path):
    """Right-padded batches of different lengths: the hook must hit each sequence's own last
    token, so batched and one-by-one results agree; the KV-cached runner (left-padded prefix,
    then the last token alone) gives the same logits, with and without hooks, and its cache
    is back to the prefix after each call (a second call agrees)."""
    from activations.models import load_bridge
    from features.patching import LastTokenRunner, last_logits
    from features.steer import add_direction
    from tests.helpers import save_tiny_model

    bridge = load_bridge(save_tiny_model(tmp_path / "m"))
    rng = np.random.default_rng(1)
    ids = [rng.integers(3, 20, size=n) for n in (4, 9, 6, 7, 2)]
    fn = add_direction(torch.ones(32), 3.0)
    def hooks(start, valid):  # fn at each sequence's own last token of a right-padded batch
        m = torch.zeros(valid.shape, dtype=torch.bool)
        m[torch.arange(len(valid)), valid.sum(1) - 1] = True
        return [("blocks.0.hook_resid_post", lambda x, hook: torch.where(m[..., None], fn(x, hook), x))]

    batched = last_logits(bridge, ids, hooks, batch_size=4)
    single = torch.cat([last_logits(bridge, [x], hooks) for x in ids])
    assert torch.allclose(batched, single, atol=1e-5)
    assert not torch.allclose(batched, last_logits(bridge, ids), atol=1e-3)
    runner = LastTokenRunner(bridge, ids, batch_size=3)
    assert torch.allclose(runner.logits([("blocks.0.hook_resid_post", fn)]), batched, atol=1e-4)
    assert torch.allclose(runner.logits(), last_logits(bridge, ids), atol=1e-4)
    assert torch.allclose(runner.logits([("blocks.0.hook_resid_post", fn)]), batched, atol=1e-4)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        LastTokenRunner(bridge, [np.array([5])])

    def boom(x, hook):  # raises at layer 1, after layer 0 has cached the new position
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runner.logits([("blocks.1.hook_resid_post", boom)])
    assert torch.allclose(runner.logits([("blocks.0.hook_resid_post", fn)]), batched, atol=1e-4)
    assert torch.allclose(runner.logits(), last_logits(bridge, ids), atol=1e-4)


def test_extra_metrics_by_hand():
    """AOC, abstention recall and OOD accuracy from predictions fixed by hand."""
    from experiments.probe_items import ExtraItems, ProbeItems, extra_metrics

    ids = [np.array([i]) for i in range(7)]
    ood = ProbeItems(ids=[np.array([10]), np.array([11])], role=[np.zeros(1)] * 2, kind=np.array([0, 1]),
                     gold=np.array([5, 5]), implied=np.array([5, 6]), step=np.array([-1, 0]),
                     problem=np.array([0, 0]), n_problems=1)
    extra = ExtraItems(truncated=ids[:5], truncated_of=np.array([0, 0, 0, 1, 1]), unanswerable=ids[5:7],
                       unknown=9, ood=ood)
    answers = {0: 1, 1: 2, 2: 2, 3: 3, 4: 3, 5: 9, 6: 4, 10: 5, 11: 5}  # token -> predicted token

    def predict(seqs):
        return np.array([answers[int(s[0])] for s in seqs])

    m = extra_metrics(predict, extra)
    # example 0: cuts predict 1, 2 vs full 2 -> changed 1 of 2; example 1: 3 vs 3 -> 0 of 1
    assert m["aoc"]["value"] == pytest.approx(0.25) and m["aoc"]["n"] == 2
    assert m["abstention_recall"]["value"] == 0.5 and m["ood_accuracy"]["value"] == 1.0 and m["ood_accuracy"]["n"] == 1


def test_null_draws_are_reproducible_from_the_seed_and_differ_from_each_other():
    from experiments.elicit.steer_stage import _draw_seed

    freq = torch.rand(200, generator=torch.Generator().manual_seed(0))
    draws = [matched_random_latents(freq, [1, 2, 3], _draw_seed(5, d), pool=8) for d in range(20)]
    assert draws == [matched_random_latents(freq, [1, 2, 3], _draw_seed(5, d), pool=8) for d in range(20)]
    assert len({tuple(x) for x in draws}) > 10  # twenty draws, not one repeated
    # each drawn among the 8 unused latents nearest in frequency to the one it replaces
    for x in draws:
        for c, j in zip([1, 2, 3], x):
            others = torch.tensor([k for k in range(200) if k not in (1, 2, 3)])
            assert int(((freq[others] - freq[c]).abs() < (freq[j] - freq[c]).abs()).sum()) < 8
    # the nearest only (pool 1): every draw the same latents, which is why nulls need a pool
    assert len({tuple(matched_random_latents(freq, [1, 2, 3], _draw_seed(5, d))) for d in range(20)}) == 1
    v = torch.tensor([3.0, 4.0, 0.0])
    dirs = [random_direction_like(v, _draw_seed(5, d)) for d in range(20)]
    assert all(abs(float(d.norm()) - 5.0) < 1e-5 for d in dirs) and len({tuple(d.tolist()) for d in dirs}) == 20
