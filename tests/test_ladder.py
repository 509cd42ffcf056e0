"""The latent-patching ladder and the base-free interventions (`features.ladder`), by hand on
a hand-built SAE and against activation patching on a tiny model; the elicit stage's row
filter and its guard that the training set never meets the probe items."""

import numpy as np
import pytest
import torch

from activations.models import load_bridge
from features.ladder import (ablation_attribution, clamp_per_item, code_gradient, patch_attribution, patch_error,
                             patch_latents, project_rows)
from features.patching import LastTokenRunner, patched_last_logits
from tests.helpers import plus_minus_sae, save_tiny_model

# plus_minus_sae(3, 2): latents +e0, +e1, -e0, -e1.
# x = (2, -1, 5): code (2, 0, 0, 1), reconstruction (2, -1, 0), error (0, 0, 5).
# d = (-1, 3, 7): code (0, 3, 1, 0), reconstruction (-1, 3, 0), error (0, 0, 7).
X = torch.tensor([[[2.0, -1.0, 5.0]]])
D = torch.tensor([[-1.0, 3.0, 7.0]])


def test_each_intervention_by_hand():
    sae = plus_minus_sae(3, 2)
    # latent 3 (-e1) is the receiver's; latents 0..2 come from the donor: 0 * e0 + 3 * e1 - 1 * e0
    assert patch_latents(sae, D, [0, 1, 2])(X).tolist() == [[[-1.0, 2.0, 5.0]]]
    assert patch_latents(sae, D, [0])(X).tolist() == [[[0.0, -1.0, 5.0]]]       # +e0 set to the donor's 0
    assert patch_latents(sae, D, None)(X).tolist() == [[[-1.0, 3.0, 5.0]]]      # all latents, own error
    assert patch_latents(sae, D, None, error=True)(X).tolist() == [D.tolist()]  # all + error = the donor
    assert patch_error(sae, D)(X).tolist() == [[[2.0, -1.0, 7.0]]]              # own latents, donor's error
    assert clamp_per_item(sae, [1], torch.tensor([[4.0]]))(X).tolist() == [[[2.0, 3.0, 5.0]]]
    assert project_rows(torch.tensor([[0.0, 0.0, 2.0]]))(X).tolist() == [[[2.0, -1.0, 0.0]]]
    two = project_rows(torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]]))(X)   # spans e0, e1
    assert torch.allclose(two, torch.tensor([[[0.0, 0.0, 5.0]]]), atol=1e-6)
    # attribution: first-order gains, mean over items
    g, f, fd = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 4.0]])
    assert patch_attribution(g, f, fd).tolist() == [-2.0, -6.0]
    assert ablation_attribution(g, f).tolist() == [-3.0, 2.0]


def test_per_item_data_of_the_wrong_size_is_an_error():
    sae = plus_minus_sae(3, 2)
    with pytest.raises(ValueError, match="2 rows of per-item data for a batch of 1 items"):
        patch_latents(sae, torch.zeros(2, 3), [0])(X)
    with pytest.raises(ValueError, match=r"values must be \(B, 2\)"):
        clamp_per_item(sae, [0, 1], torch.zeros(1, 3))


def _items(n=12, seed=0):
    g = np.random.default_rng(seed)
    return [np.concatenate([[1], g.integers(3, 20, size=int(g.integers(4, 9)))]) for _ in range(n)]


def test_all_latents_and_the_error_term_equal_activation_patching(tmp_path):
    """The ladder's top rung, through the KV-cached answer-position runner with per-item
    hooks, is activation patching of the last position (to 1e-5), with an SAE that misses
    half of the residual (so the error term matters)."""
    receiver = load_bridge(save_tiny_model(tmp_path / "r", seed=0))
    donor = load_bridge(save_tiny_model(tmp_path / "d", seed=1))
    hook, d = "blocks.0.hook_resid_post", receiver.cfg.d_model
    sae = plus_minus_sae(d, d // 2)
    ids = _items()
    last = [np.arange(len(s)) == len(s) - 1 for s in ids]
    want = patched_last_logits(receiver, donor, ids, hook, last)
    from features.latent_stats import position_activations

    acts = position_activations(donor, ids, last, hook)
    runner = LastTokenRunner(receiver, ids, batch_size=5)  # several batches: per-item data must line up
    got = runner.logits(hooks_for=lambda a, n: [(hook, patch_latents(sae, acts[a:a + n], None, error=True))])
    assert torch.allclose(got, want, atol=1e-5)
    # without the error term it is not the donor's activation (the SAE misses half of it)
    partial = runner.logits(hooks_for=lambda a, n: [(hook, patch_latents(sae, acts[a:a + n], None))])
    assert (partial - want).abs().max() > 1e-3


def test_code_gradient_matches_a_finite_difference(tmp_path):
    model = load_bridge(save_tiny_model(tmp_path / "m"))
    hook, d = "blocks.0.hook_resid_post", model.cfg.d_model
    sae = plus_minus_sae(d, d)
    ids = _items(6)
    targets = np.array([5, 6, 7, 8, 9, 10])
    code, grad = code_gradient(model, sae, hook, ids, targets, batch_size=4)
    assert code.shape == grad.shape == (6, 2 * d)
    runner = LastTokenRunner(model, ids)
    lp = lambda logits: logits.log_softmax(-1)[torch.arange(6), torch.as_tensor(targets)]  # noqa: E731
    i = int(code[0].argmax())  # a latent active on item 0
    eps = 1e-2

    def at(delta: float) -> torch.Tensor:
        v = code[:, [i]] + delta
        return lp(runner.logits(hooks_for=lambda a, n: [(hook, clamp_per_item(sae, [i], v[a:a + n]))]))

    central = (at(eps) - at(-eps)) / (2 * eps)  # error O(eps^2): the forward is smooth in f_i
    assert torch.allclose(central, grad[:, i], rtol=0.02, atol=5e-3)
    assert grad[:, i].abs().max() > 0.1  # a real slope, not two zeros


def test_site_rows_keep_every_answer_prefix_row_and_a_fraction_of_the_rest():
    from experiments.elicit.site_data import SiteRows

    n = 100_000
    cols = {"seq": np.arange(n) // 20, "pos": np.arange(n) % 20, "example": np.arange(n) // 60,
            "answer_prefix": (np.arange(n) % 20 == 17).astype(np.int32)}
    keep = SiteRows(0.1)(cols)
    held = SiteRows(0.1, heldout=True)(cols)
    train_ex = cols["example"] % 5 != 0
    assert not (keep & held).any()
    assert keep[(cols["answer_prefix"] == 1) & train_ex].all()                  # every answer prefix
    assert held[(cols["answer_prefix"] == 1) & ~train_ex].all()
    other = (cols["answer_prefix"] == 0) & train_ex
    assert abs(keep[other].mean() - 0.1) < 0.01                                 # ~10% of the rest
    assert not SiteRows(0.0)(cols)[cols["answer_prefix"] == 0].any()
    assert SiteRows(1.0)(cols)[train_ex].all()


def test_the_training_set_never_shares_a_prompt_with_the_probe_items():
    """The elicit training set comes from the train split; the probe items (held-out and
    choice sets) from the eval split: no prompt in common, and the guard refuses one that does."""
    from experiments.behavior.suite import distinct_problems
    from experiments.cache_set import CacheSetConfig, token_set
    from experiments.elicit.sites_stage import check_disjoint, prompts_of_tokens
    from experiments.organisms.tokenizer import build_tokenizer
    from experiments.probe_items import probe_items
    from experiments.tasks import ArithmeticTask, TaskConfig

    task = ArithmeticTask(TaskConfig())
    tok = build_tokenizer()
    ids, labels = token_set(task, tok, CacheSetConfig(ks=[1, 2, 3], n_per_k=800, split="train"), 0,
                            mark_answer_prefix=True)
    # one answer-prefix token per sequence, right before the answer
    assert all(int(a.sum()) == 1 for a in labels["answer_prefix"])
    train = prompts_of_tokens(tok, ids, task.answer_prefix)
    held = distinct_problems(task, 200, 2, 1000)
    other = distinct_problems(task, 300, 2, 7)

    class P:  # the two probe sets check_disjoint reads
        sets = {"heldout": probe_items(task, tok, held, 0)}
        choose = probe_items(task, tok, other, 1)

    assert check_disjoint(train, P, tok) > 0
    leak = train | {held[0].prompt}
    with pytest.raises(ValueError, match="shares 1 prompts with the probe items"):
        check_disjoint(leak, P, tok)
