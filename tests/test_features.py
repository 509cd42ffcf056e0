"""Latent scores: ReasonScore against hand-computed values and a brute-force recomputation."""

import numpy as np
import pytest
import torch

from features.reason_score import ReasonScoreConfig, reason_scores, reasoning_positions, score_from_means


def test_reason_score_by_hand():
    # latent 0: spread evenly over both groups; latent 1: one group only; latent 2: never on reasoning
    mu_groups = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    mu_r = torch.tensor([1.0, 1.0, 0.0])  # equal group sizes: the mean of the group means
    mu_not = torch.tensor([0.0, 1.0, 1.0])
    s = score_from_means(mu_groups, mu_not, mu_r, alpha=0.7)
    # (mu_R / sum mu_R) * H^0.7 - mu_notR / sum mu_notR with H = (1, 0, 0)
    assert s.tolist() == pytest.approx([0.5, -0.5, -0.5])
    # H = 0.5 in between: p = (0.11, 0.89) -> H = 0.5 (to 3 decimals); alpha bends it
    p = torch.tensor([0.11002786443835955, 0.8899721355616405])
    h = float(-(p * p.log()).sum() / np.log(2))
    s = score_from_means(p[:, None], torch.zeros(1) + 1, torch.ones(1), alpha=0.7)
    assert s.item() == pytest.approx(h ** 0.7 - 1) and h == pytest.approx(0.5, abs=1e-3)


def test_reasoning_positions_windows_stay_inside_their_sequence():
    cols = {"seq": np.array([0, 0, 0, 0, 0, 1, 1]), "role": np.array([0, 1, 0, 0, 1, 0, 1]),
            "op": np.array([-1, 2, -1, -1, 1, -1, 0])}
    is_r, group = reasoning_positions(cols, ReasonScoreConfig(anchor={"role": 1}, group_by="op"))
    # anchor 1 covers 0..3, anchor 4 covers 3..4 (5, 6 are another sequence), anchor 6 covers 5..6;
    # position 3 is nearer anchor 4
    assert is_r.tolist() == [True] * 7
    assert group.tolist() == [2, 2, 2, 1, 1, 0, 0]
    is_r, group = reasoning_positions(cols, ReasonScoreConfig(window_left=0, window_right=0))
    assert is_r.tolist() == [False, True, False, False, True, False, True] and group[is_r].tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="no label 'rolee'"):
        reasoning_positions(cols, ReasonScoreConfig(anchor={"rolee": 1}))


def test_reason_scores_on_a_cache_equal_a_brute_force_computation(quick_run):
    from activations.cache import open_cache
    from sae.load import load_sae_folder

    run, _ = quick_run
    hook = "blocks.1.hook_resid_post"
    sae = load_sae_folder(run / "saes" / "base")
    cfg = ReasonScoreConfig()
    out = reason_scores(sae, run / "activations" / "base", hook, cfg, batch_size=300)
    with open_cache(run / "activations" / "base") as c:
        f = sae.encode(c.activations(hook)).double()
        cols = {n: c.column(n) for n in ["seq", *c.meta["label_names"]]}
    is_r, group = reasoning_positions(cols, cfg)
    r = torch.from_numpy(is_r)
    mu_groups = torch.stack([f[torch.from_numpy(group == g)].mean(0) for g in out["groups"]])
    want = score_from_means(mu_groups, f[~r].mean(0), f[r].mean(0), 0.7)
    assert out["groups"] == [0, 1, 2] and out["n_reasoning"] == int(is_r.sum())
    assert torch.allclose(out["score"], want, atol=1e-9)
    assert out["score"].argmax() == (want.argmax())
