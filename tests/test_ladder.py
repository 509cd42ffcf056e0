"""The latent-patching ladder and the base-free interventions (`features.ladder`), by hand on
a hand-built SAE and against activation patching on a tiny model; the elicit stage's row
filter and its guard that the training set never meets the probe items."""

import numpy as np
import pytest
import torch

from activations.models import load_bridge
from features.ladder import (ablate_rows, ablation_attribution, clamp_per_item, code_gradient, patch_attribution,
                             patch_error, patch_latents, project_rows, transcoder_ablation)
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
    from experiments.elicit.site_data import check_disjoint, prompts_of_tokens
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


def test_ablate_rows_by_hand():
    sae = plus_minus_sae(3, 2)
    # x = (2, -1, 5): code (2, 0, 0, 1); ablating latent 3 (-e1, activation 1) adds back e1
    assert ablate_rows(sae, [3])(X).tolist() == [[[2.0, 0.0, 5.0]]]
    assert ablate_rows(sae, [0, 3])(X).tolist() == [[[0.0, 0.0, 5.0]]]  # the error (0, 0, 5) kept
    assert ablate_rows(sae, [1, 2])(X).tolist() == X.tolist()            # latents that do not fire


def _transcoder(d: int, seed: int = 0):
    """A TopK transcoder with random weights, saved and loaded back as SAELens loads it."""
    from sae.transcoder import TopKTranscoder

    torch.manual_seed(seed)
    tc = TopKTranscoder(d, d, 2 * d, 4)
    with torch.no_grad():
        tc.b_enc.fill_(0.5)  # most latents fire
    return tc


def test_transcoder_ablation_by_hand_on_a_tiny_model(tmp_path):
    """The MLP output at the last position loses exactly f[L] @ W_dec[L] (f the code of the
    MLP input there); the MLP input and every other position are left alone."""
    model = load_bridge(save_tiny_model(tmp_path / "m"))
    d = model.cfg.d_model
    tc = _transcoder(d)
    ids = _items(5)
    lat = [0, 3, 5]
    seen = {}

    def keep(name):
        def fn(x, hook):
            seen[name] = x.detach().clone()
            return x
        return fn

    base_hooks = [("blocks.0.hook_resid_mid", keep("mid")), ("blocks.0.hook_mlp_out", keep("out"))]
    runner = LastTokenRunner(model, ids)
    runner.logits(hooks_for=lambda a, n: base_hooks)
    mid, out = seen["mid"].reshape(len(ids), d), seen["out"].reshape(len(ids), d)
    f = tc.encode(mid)
    assert (f[:, lat] > 0).any()  # the ablated latents do something
    want = out - f[:, lat] @ tc.W_dec[lat] / tc.scale_out
    hooks = transcoder_ablation(tc, 0, lat) + [("blocks.0.hook_resid_post", keep("post"))]
    runner.logits(hooks_for=lambda a, n: hooks)
    got = seen["post"].reshape(len(ids), d) - mid  # resid_post = resid_mid + mlp_out
    assert torch.allclose(got, want, atol=1e-5)


def test_code_gradient_through_a_transcoder_matches_a_finite_difference(tmp_path):
    """With `read_hook` the code is the transcoder's of the MLP input and the gradient flows
    through its decoder into the MLP output."""
    model = load_bridge(save_tiny_model(tmp_path / "m"))
    tc = _transcoder(model.cfg.d_model, seed=1)
    ids, targets = _items(6), np.array([5, 6, 7, 8, 9, 10])
    code, grad = code_gradient(model, tc, "blocks.0.hook_mlp_out", ids, targets, batch_size=4,
                               read_hook="blocks.0.hook_resid_mid")
    runner = LastTokenRunner(model, ids)
    lp = lambda logits: logits.log_softmax(-1)[torch.arange(6), torch.as_tensor(targets)]  # noqa: E731
    i = int(code[0].argmax())
    eps = 1e-2
    w = (tc.W_dec[i] / tc.scale_out).detach()

    def at(delta: float) -> torch.Tensor:  # latent i moved by delta: the MLP output moves by delta * its decoder row
        return lp(runner.logits(fwd_hooks=[("blocks.0.hook_mlp_out", lambda y, hook: y + delta * w)]))

    central = (at(eps) - at(-eps)) / (2 * eps)
    assert torch.allclose(central, grad[:, i], rtol=0.02, atol=5e-3)
    assert grad[:, i].abs().max() > 0.05


def test_the_crosscoder_view_of_one_model_is_its_code_with_the_other_term_given():
    """With the base's encoder term of a row supplied, the variant-alone view gives that row's
    crosscoder code exactly; with the mean term it differs only through the base's part."""
    from sae.crosscoder import Crosscoder
    from sae.crosscoder_view import OneModelView, other_term

    torch.manual_seed(0)
    cc = Crosscoder(6, 16, 3, 2, ["base", "v"])
    with torch.no_grad():
        cc.scale.copy_(torch.tensor([0.5, 2.0]))
        cc.b_dec.normal_()
        cc.b_enc.fill_(0.1)
        cc.threshold.fill_(0.05)
    x = torch.randn(4, 2, 6)
    for row in range(4):
        view = OneModelView(cc, 1, other_term(cc, [x[row:row + 1]], 0))
        assert torch.allclose(view.encode(x[row:row + 1, 1]), cc.encode(x[row:row + 1]), atol=1e-6)
        f = cc.encode(x[row:row + 1])
        assert torch.allclose(view.decode(f), cc.decode(f)[:, 1], atol=1e-6)
    mean = other_term(cc, [x[:2], x[2:]], 0)  # a mean over batches of the rows' terms
    terms = torch.stack([other_term(cc, [x[r:r + 1]], 0) for r in range(4)])
    assert torch.allclose(mean, terms.mean(0), atol=1e-6)
    assert torch.allclose(OneModelView(cc, 1, mean).W_dec, cc.W_dec[:, 1] / 2.0)


def test_finetuned_candidates_put_the_finetuned_only_latents_first():
    from experiments.elicit.dictionaries import finetuned_candidates

    delta = [0.05, 0.3, 0.5, 0.02, 0.35, 0.95, 0.01]
    classes = ["finetuned_only", "other", "shared", "finetuned_only", "other", "base_only", "dead"]
    score = torch.tensor([1.0, 5.0, 9.0, 2.0, -1.0, 7.0, 8.0])
    order, n_ft = finetuned_candidates(delta, classes, score)
    assert (order, n_ft) == ([3, 0, 1, 4], 2)  # fine-tuned-only by score, then leaning by score; no dead


@pytest.mark.parametrize("train_base", [True, False])
def test_the_elicit_stage_declares_the_base_dictionaries_only_when_it_trains_them(tmp_path, train_base):
    """The stage's declared outputs follow `train_base` for site SAEs and transcoders alike
    (the default config, without the base's, once failed after 20 minutes: it declared the
    base's transcoder it never trains)."""
    import dataclasses

    from experiments.organisms.stages.elicit import elicit_outputs
    from experiments.rundir import RunDir
    from experiments.runconfig import load_run_config

    cfg, _ = load_run_config("default")
    cfg = dataclasses.replace(cfg, elicit=dataclasses.replace(cfg.elicit, train_base=train_base))
    run = RunDir(tmp_path)
    base = {p for p in elicit_outputs(run, cfg) if run.elicit_sae("base", "x").parent in p.parents}
    want = {run.elicit_sae("base", s) / "cfg.json" for s in [*cfg.elicit.sites, "transcoder-1"]} if train_base else set()
    assert {p for p in base if p.name == "cfg.json"} == want
    assert any(run.elicit_sae("sft-noisy-trace", "transcoder-1") in p.parents for p in elicit_outputs(run, cfg))
