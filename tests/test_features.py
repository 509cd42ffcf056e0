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
            "op": np.array([-1, 2, -1, -1, 1, -1, 0]), "token_ids": np.array([1, 7, 8, 9, 7, 1, 7])}
    pos = reasoning_positions(cols, ReasonScoreConfig(anchor={"role": 1}, group_by="op"))
    # anchor 1 covers 0..3, anchor 4 covers 3..4 (5, 6 are another sequence), anchor 6 covers 5..6;
    # position 3 is in both windows, so in both groups (the reference's rule)
    assert pos.reasoning.tolist() == [True] * 7 and not pos.other.any()
    assert list(zip(pos.rows.tolist(), pos.groups.tolist())) == [(0, 2), (1, 2), (2, 2), (3, 1), (3, 2), (4, 1),
                                                                 (5, 0), (6, 0)]
    nearest = reasoning_positions(cols, ReasonScoreConfig(overlap="nearest"))  # position 3 is nearer anchor 4
    assert nearest.rows.tolist() == list(range(7)) and nearest.groups.tolist() == [2, 2, 2, 1, 1, 0, 0]
    # BOS (id 1) at the start of each sequence: in neither set, although windows cover it
    pos = reasoning_positions(cols, ReasonScoreConfig(), ignore_ids=[1])
    assert pos.reasoning.tolist() == [False, True, True, True, True, False, True] and not pos.other.any()
    assert 0 not in pos.rows and 5 not in pos.rows
    pos = reasoning_positions(cols, ReasonScoreConfig(window_left=0, window_right=0, ignore_token_ids=[1]))
    assert pos.reasoning.tolist() == [False, True, False, False, True, False, True]
    assert pos.other.tolist() == [False, False, True, True, False, False, False] and pos.groups.tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="no label 'rolee'"):
        reasoning_positions(cols, ReasonScoreConfig(anchor={"rolee": 1}))


def test_the_group_vocabulary_and_special_tokens_come_from_the_cache_and_tokenizer():
    from experiments.organisms.tokenizer import build_tokenizer
    from features.reason_score import group_vocabulary_size, special_token_ids

    assert group_vocabulary_size({"task": {"operators": "+-"}}, "op") == 2
    assert group_vocabulary_size({"words": ["wait", "hmm", "but"]}, "word") == 3
    with pytest.raises(ValueError, match="set reason_score.n_groups"):
        group_vocabulary_size({"task": {"operators": "+-"}}, "slot")
    assert special_token_ids(build_tokenizer()) == [0, 1, 2]  # <pad> <bos> <eos>


def _brute_force(f: torch.Tensor, cols: dict, cfg: ReasonScoreConfig, ignore: list[int], k: int) -> torch.Tensor:
    """ReasonScore by masks over all rows at once: group k's mean over the rows its windows cover."""
    pos = reasoning_positions(cols, cfg, ignore)
    mu_groups = torch.zeros(k, f.shape[1], dtype=f.dtype)
    for g in range(k):
        rows = torch.from_numpy(pos.rows[pos.groups == g])
        if len(rows):
            mu_groups[g] = f[rows].mean(0)
    return score_from_means(mu_groups, f[torch.from_numpy(pos.other)].mean(0),
                            f[torch.from_numpy(pos.reasoning)].mean(0), cfg.alpha)


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
        cols = {n: c.column(n) for n in ["seq", "token_ids", *c.meta["label_names"]]}
    # the organisms' tokenizer: <pad> 0, <bos> 1, <eos> 2; K = the task's 3 operators
    assert out["ignored_token_ids"] == [0, 1, 2] and out["n_groups"] == 3 and out["groups"] == [0, 1, 2]
    assert out["n_ignored"] == int(np.isin(cols["token_ids"], [0, 1, 2]).sum()) > 0
    assert out["n_reasoning"] + out["n_other"] + out["n_ignored"] == len(f)
    want = _brute_force(f, cols, cfg, [0, 1, 2], 3)
    assert torch.allclose(out["score"], want, atol=1e-9)
    assert out["score"].argmax() == (want.argmax())


def test_crosscoder_reason_scores_read_both_caches(quick_run):
    """The crosscoder's ReasonScore streams the two caches row-aligned: equal to scoring the
    codes of the stacked (base, variant) activations by hand."""
    from activations.cache import open_cache
    from features.reason_score import crosscoder_reason_scores
    from sae.crosscoder import load_crosscoder

    run, _ = quick_run
    hook = "blocks.1.hook_resid_post"
    cc = load_crosscoder(run / "saes" / "crosscoder-sft-noisy-trace")
    cfg = ReasonScoreConfig()
    acts = run / "activations"
    out = crosscoder_reason_scores(cc, acts / "base", acts / "sft-noisy-trace", hook, cfg, batch_size=300)
    with open_cache(acts / "base") as a, open_cache(acts / "sft-noisy-trace") as b:
        with torch.no_grad():
            f = cc.encode(torch.stack([a.activations(hook), b.activations(hook)], 1)).double()
        cols = {n: a.column(n) for n in ["seq", "token_ids", *a.meta["label_names"]]}
    want = _brute_force(f, cols, cfg, out["ignored_token_ids"], out["n_groups"])
    assert len(out["score"]) == cc.W_enc.shape[-1] and torch.allclose(out["score"], want, atol=1e-9)


def test_auroc_by_hand_and_with_ties():
    from features.probes import best_auroc

    f = torch.tensor([[0.1, 0.0], [0.4, 0.0], [0.35, 1.0], [0.8, 1.0]])
    auc, cls = best_auroc(f, np.array([0, 0, 1, 1]))
    # column 0 for class 1: positive ranks 2 and 4 -> (6 - 3) / (2 * 2) = 0.75; column 1 separates perfectly
    assert auc.tolist() == pytest.approx([0.75, 1.0]) and cls.tolist() == [1, 1]
    auc, _ = best_auroc(torch.tensor([[0.0], [0.0], [1.0], [1.0]]), np.array([0, 1, 0, 1]))
    assert auc.tolist() == pytest.approx([0.5])  # ties averaged: no information


def test_probe_accuracy_separable_and_random():
    from features.probes import probe_accuracy

    g = torch.Generator().manual_seed(0)
    y = np.arange(400) % 4
    x = torch.randn(400, 8, generator=g) * 0.1
    x[torch.arange(400), torch.as_tensor(y)] += 2.0  # the class is the hot coordinate
    assert probe_accuracy(x, y)["accuracy"] >= 0.95
    r = probe_accuracy(torch.randn(400, 8, generator=g), y)
    assert r["accuracy"] < 0.45 and r["chance"] < 0.35


def test_attribution_is_the_derivative_of_exact_ablation(tmp_path):
    from activations.models import load_bridge
    from features.causal import ablation_effect, attribution
    from tests.helpers import plus_minus_sae, save_tiny_model

    bridge = load_bridge(save_tiny_model(tmp_path / "m"))
    sae = plus_minus_sae(32, 16)  # latents +-e_j of the first 16 dimensions, error = the rest
    with torch.no_grad():
        sae.W_enc[:, 0] = 0.0  # latent 0 never fires
    hook = "blocks.0.hook_resid_post"
    rng = np.random.default_rng(0)
    ids = [rng.integers(3, 20, size=n) for n in (7, 9, 6)]
    masks = [np.arange(len(x)) >= len(x) - 3 for x in ids]
    targets = np.array([5, 6, 7])
    attr = attribution(bridge, sae, hook, ids, masks, targets)
    from features.patching import last_logits

    def logp(fn=None):
        hooks = (lambda start, valid: [(hook, fn)]) if fn else None
        lg = last_logits(bridge, ids, hooks).log_softmax(-1)
        return lg[torch.arange(3), torch.as_tensor(targets)].double().mean().item()

    eps, i = 1e-2, int(attr.abs().argmax())
    row = sae.W_dec[i].detach()

    def shrink(x, hook):  # ablate a fraction eps of latent i at the masked positions
        m = torch.zeros(x.shape[:2], dtype=torch.bool)
        for r, mk in enumerate(masks):
            m[r, :len(mk)] = torch.as_tensor(mk)
        return x - eps * sae.encode(x)[..., i:i + 1] * row * m[..., None]

    assert (logp(shrink) - logp()) / eps == pytest.approx(attr[i].item(), rel=0.05, abs=1e-4)
    eff = ablation_effect(bridge, sae, hook, ids, masks, targets, [i, 0])
    assert attr[0] == 0 and eff[0] == pytest.approx(0.0, abs=1e-6) and np.sign(eff[i]) == np.sign(attr[i].item())
