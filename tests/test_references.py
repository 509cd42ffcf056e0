"""saelab's metrics against ports of their published reference code, on random inputs.

Each port is written from the reference repository (file and lines named in its docstring),
keeps its structure and reads none of saelab's functions, so the two agree only where the
formulas do:

    ReasonScore            AIRI-Institute/SAE-Reasoning extraction/compute_score.py
    crosscoder classes     science-of-finetuning/diffing-toolkit src/diffing/utils/dictionary/analysis.py
    Latent Scaling         diffing-toolkit src/diffing/utils/dictionary/latent_scaling/{closed_form,utils}.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from features.reason_score import ReasonScoreConfig, scores_of_codes
from sae.crosscoder import Crosscoder
from sae.diff import classify, diff_table, latent_scaling, norm_difference, relative_decoder_norm

PAD, BOS, EOS = 0, 1, 2


# ---- ReasonScore: port of compute_score.py ------------------------------------------------

class RefRollingMean:
    """compute_score.py L45-186 (`RollingMean`), without the device moves."""

    def __init__(self, tokens_of_interest, ignore_tokens=None, expand_range=None):
        self.tokens_of_interest = tokens_of_interest
        self.ignore_tokens = ignore_tokens if ignore_tokens is not None else []
        self.expand_range = expand_range if expand_range is not None else (0, 0)
        self._means = None
        self._counts = [0] * len(self.tokens_of_interest)
        self._mean_pos, self._count_pos = None, 0
        self._mean_neg, self._count_neg = None, 0

    def _compute_single_mask(self, tokens, ids_of_interest):  # L68-104
        seq_len, ids_len = tokens.size(1), len(ids_of_interest)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        if ids_len > seq_len:
            return mask
        windows = tokens.unfold(1, ids_len, 1)
        matches = (windows == ids_of_interest.view(1, 1, -1)).all(dim=2)
        batch_indices, window_indices = torch.nonzero(matches, as_tuple=True)
        if len(batch_indices) == 0:
            return mask
        spans = window_indices.unsqueeze(1) + torch.arange(ids_len).unsqueeze(0)
        mask[batch_indices.unsqueeze(1).expand(-1, ids_len).reshape(-1), spans.reshape(-1)] = True
        left, right = self.expand_range
        if left != 0 or right != 0:
            batch_indices, pos_indices = torch.nonzero(mask, as_tuple=True)
            if len(pos_indices) > 0:
                starts = torch.clamp(pos_indices - left, min=0)
                ends = torch.clamp(pos_indices + right, max=tokens.size(1) - 1)
                delta = torch.zeros(tokens.size(0), tokens.size(1) + 1, dtype=torch.int32)
                delta[batch_indices, starts] += 1
                delta[batch_indices, ends + 1] -= 1
                mask = delta.cumsum(dim=1)[:, :-1] > 0
        return mask

    @staticmethod
    def _compute_update(tokens, feature_acts, mask, acc_mean, acc_count):  # L106-122
        tokens, feature_acts = tokens[mask], feature_acts[mask]
        if tokens.numel() == 0:
            return acc_mean, acc_count
        mean, count = feature_acts.mean(dim=0), feature_acts.size(0)
        upd_count = acc_count + count
        return acc_mean + (count / upd_count) * (mean - acc_mean), upd_count

    def update(self, tokens, feature_acts):  # L124-178
        n = feature_acts.size(-1)
        if self._means is None:
            self._means = [torch.zeros(n, dtype=feature_acts.dtype) for _ in self.tokens_of_interest]
            self._mean_pos = torch.zeros(n, dtype=feature_acts.dtype)
            self._mean_neg = torch.zeros(n, dtype=feature_acts.dtype)
        if len(self.ignore_tokens) > 0:
            ignore_mask = torch.isin(tokens, torch.tensor(self.ignore_tokens, dtype=torch.long))
        else:
            ignore_mask = torch.zeros_like(tokens, dtype=torch.bool)
        mask_combined = torch.zeros_like(tokens, dtype=torch.bool)
        for i, seq_group in enumerate(self.tokens_of_interest):
            group_mask = torch.zeros_like(tokens, dtype=torch.bool)
            for seq in seq_group:
                group_mask |= self._compute_single_mask(tokens, seq)
            group_mask = group_mask & (~ignore_mask)
            self._means[i], self._counts[i] = self._compute_update(tokens, feature_acts, group_mask,
                                                                   self._means[i], self._counts[i])
            mask_combined |= group_mask
        self._mean_pos, self._count_pos = self._compute_update(tokens, feature_acts, mask_combined & (~ignore_mask),
                                                               self._mean_pos, self._count_pos)
        self._mean_neg, self._count_neg = self._compute_update(tokens, feature_acts, (~mask_combined) & (~ignore_mask),
                                                               self._mean_neg, self._count_neg)

    def stats(self):  # L180-186
        return torch.stack([self._mean_pos, self._mean_neg], dim=1), torch.stack(self._means, dim=1)


def ref_reason_score(tokens, feature_acts, reason_tokens, ignore_tokens, expand_range, alpha, minibatch=3,
                     epsilon=1e-12):
    """`SaeSelectionRunner.run` (compute_score.py L300-350) on given latent activations
    (batch, seq, n): the rolling means over token minibatches, then the score of L331-348."""
    rm = RefRollingMean(reason_tokens, ignore_tokens, expand_range)
    for tok, acts in zip(tokens.split(minibatch), feature_acts.split(minibatch)):
        rm.update(tok, acts)
    all_feature_means, all_feature_single_means = rm.stats()
    probs = all_feature_single_means / (all_feature_single_means.sum(dim=1, keepdim=True) + epsilon)
    log_probs = torch.where(probs > 0, torch.log(probs), 0)
    h = -(probs * log_probs).sum(dim=1)
    h_norm = h / math.log(probs.size(1)) if probs.size(1) > 1 else torch.ones_like(h)
    sum_pos = all_feature_means[:, 0].sum(dim=0, keepdim=True) + epsilon
    sum_neg = all_feature_means[:, 1].sum(dim=0, keepdim=True) + epsilon
    scores = (all_feature_means[:, 0] / sum_pos) * h_norm ** alpha - (all_feature_means[:, 1] / sum_neg)
    return scores, all_feature_means, all_feature_single_means


# Reasoning "words" as token-id sequences, one list per group (the reference's `reason_tokens`):
# group 1 has a two-token word; groups 4 and 5 use ids the data never contains.
GROUPS = [[[10]], [[11], [12, 13]], [[14]], [[15], [16]], [[38]], [[39]]]
K = len(GROUPS)


def random_tokens(rng, n_seq=9, length=24) -> torch.Tensor:
    """(n_seq, length) ids: BOS first, EOS last in every other row, reasoning words dense
    enough that windows of different groups overlap (ids 3-37, never 38 or 39)."""
    tok = rng.integers(3, 20, size=(n_seq, length))
    tok[:, 0] = BOS
    tok[::2, -1] = EOS
    tok[0, 1] = 10  # a window that covers BOS
    tok[1, 5:9] = [12, 13, 10, 14]  # the two-token word, then two other groups' words next to it
    return torch.from_numpy(tok)


def labels_of(tokens: torch.Tensor) -> dict[str, np.ndarray]:
    """saelab's cache columns for `tokens`, rows in sequence order: the reasoning words'
    tokens as anchors (`rword` 1) with their group (`word`), as the pair study labels them."""
    n_seq, length = tokens.shape
    word = np.full((n_seq, length), -1)
    t = tokens.numpy()
    for g, seqs in enumerate(GROUPS):
        for ids in seqs:
            for b in range(n_seq):
                for p in range(length - len(ids) + 1):
                    if t[b, p:p + len(ids)].tolist() == ids:
                        word[b, p:p + len(ids)] = g
    return {"seq": np.repeat(np.arange(n_seq), length), "pos": np.tile(np.arange(length), n_seq),
            "token_ids": t.reshape(-1), "rword": (word >= 0).reshape(-1).astype(int), "word": word.reshape(-1)}


def random_acts(rng, shape, massive_bos: float = 1e4, n_massive: int = 5) -> torch.Tensor:
    acts = np.maximum(rng.normal(size=shape), 0) * (rng.random(shape) < 0.4)
    acts[:, 0, :n_massive] = massive_bos  # the first-token activations of some latents
    return torch.from_numpy(acts)


def saelab_scores(tokens, acts, cfg, ignore_ids, batch=7) -> dict:
    flat = acts.reshape(-1, acts.shape[-1])
    return scores_of_codes(flat.split(batch), labels_of(tokens), acts.shape[-1], cfg, ignore_ids=ignore_ids)


CFG = ReasonScoreConfig(anchor={"rword": 1}, group_by="word", window_left=1, window_right=2, alpha=0.7, n_groups=K)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reason_score_equals_the_reference(seed):
    """Massive BOS activations, overlapping windows of different groups and groups that never
    occur: saelab and the reference (`--expand_range 1,2 --ignore_tokens <bos>,<eos> --alpha 0.7`)
    agree to 1e-6."""
    rng = np.random.default_rng(seed)
    tokens = random_tokens(rng)
    acts = random_acts(rng, (*tokens.shape, 32))
    want, means, single = ref_reason_score(tokens, acts, [[torch.tensor(s) for s in g] for g in GROUPS],
                                           [BOS, EOS], (1, 2), 0.7)
    got = saelab_scores(tokens, acts, CFG, [BOS, EOS])
    assert got["n_groups"] == K and got["groups"] == [0, 1, 2, 3]  # 4 and 5 never occur, yet count in K
    assert torch.allclose(got["mu_reasoning"], means[:, 0], atol=1e-6, rtol=0)
    assert torch.allclose(got["mu_other"], means[:, 1], atol=1e-6, rtol=0)
    assert torch.allclose(got["mu_groups"], single.T, atol=1e-6, rtol=0)
    assert torch.allclose(got["score"], want, atol=1e-6, rtol=0)
    # the data has what the test is about: a window over BOS, positions in two groups' windows
    cols = labels_of(tokens)
    assert cols["rword"][1] == 1 and got["n_ignored"] == int(np.isin(cols["token_ids"], [BOS, EOS]).sum())


def test_reason_score_with_the_old_overlap_rule_differs_from_the_reference():
    """saelab's former rule (a position only in the nearest anchor's group) is kept as an option;
    the default is the reference's."""
    rng = np.random.default_rng(0)
    tokens = random_tokens(rng)
    acts = random_acts(rng, (*tokens.shape, 32))
    want, _, _ = ref_reason_score(tokens, acts, [[torch.tensor(s) for s in g] for g in GROUPS], [BOS, EOS], (1, 2), 0.7)
    near = ReasonScoreConfig(**{**CFG.__dict__, "overlap": "nearest"})
    got = saelab_scores(tokens, acts, near, [BOS, EOS])
    assert not torch.allclose(got["score"], want, atol=1e-6, rtol=0)


def test_a_massive_first_token_activation_no_longer_changes_the_top_latents():
    """Latents 0-19 fire on reasoning positions, 20-39 everywhere and more strongly. With BOS
    counted as a non-reasoning position (saelab before), a huge BOS activation of a few general
    latents makes every other latent's penalty vanish and reorders the top 10; with BOS left
    out, as in the reference, the scores do not depend on the BOS activations at all."""
    rng = np.random.default_rng(3)
    tokens = random_tokens(rng, n_seq=16, length=32)
    cols = labels_of(tokens)
    n = 40
    near = np.zeros(len(cols["seq"]), bool)  # reasoning positions: the anchors widened by (1, 2)
    for off in (-1, 0, 1, 2):
        src = np.flatnonzero(cols["rword"] == 1)
        tgt = np.clip(src + off, 0, len(near) - 1)
        near[tgt[cols["seq"][tgt] == cols["seq"][src]]] = True
    base = np.maximum(rng.normal(size=(len(near), n)), 0) * (rng.random((len(near), n)) < 0.5)
    base[:, :20] *= np.where(near, 1.0, 0.1)[:, None]
    base[:, 20:] *= 2.0
    first = cols["pos"] == 0

    def top(massive: float, ignore) -> list[int]:
        acts = base.copy()
        acts[first, 30:34] = massive
        s = scores_of_codes(torch.from_numpy(acts).split(50), cols, n, CFG, ignore_ids=ignore)["score"]
        return s.argsort(descending=True)[:10].tolist()

    assert top(1e4, [BOS, EOS]) == top(0.0, [BOS, EOS])
    before = set(top(1e4, [])) & set(top(0.0, []))
    assert len(before) <= 2  # the old rule: the BOS activation replaced (here all of) the top 10


# ---- crosscoder classes and Latent Scaling: ports of diffing-toolkit -------------------------

class RefCrossCoderView:
    """The few members of dictionary_learning's CrossCoder the reference code calls, over a
    saelab crosscoder: `decoder.weight` (n_layers, dict_size, dim), `encode`, `decode` in
    normalised units with the decoder bias, `normalize_activations`. `swap` exchanges the
    two models (the base becomes layer 1), to fit base-own latents as the reference fits the
    fine-tuned decoder; its batches are then in the view's order too."""

    def __init__(self, cc, swap: bool = False):
        self.cc, self.order = cc, [1, 0] if swap else [0, 1]
        self.decoder = type("Decoder", (), {"weight": cc.W_dec.detach().permute(1, 0, 2)[self.order],
                                            "bias": cc.b_dec.detach()[self.order]})()
        self.dict_size, self.activation_dim = cc.d_sae, cc.d_in

    def encode(self, batch, use_threshold=True):
        return self.cc.encode(batch[:, self.order])

    def decode(self, latent_activations, denormalize_activations=False):
        return torch.einsum("bs,msd->bmd", latent_activations, self.decoder.weight) + self.decoder.bias

    def normalize_activations(self, batch, inplace=False):
        return batch * self.cc.scale[self.order][:, None]


def ref_norm_diff_tags(decoder_weight: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """analysis.py L59-63 and L101-122: Delta and the tag of every latent."""
    norms = decoder_weight.norm(dim=-1)
    norm_diffs = ((norms[0] - norms[1]) / norms.max(dim=0).values + 1) / 2
    treshold = 0.1
    only_it = torch.nonzero(norm_diffs < treshold, as_tuple=True)[0]
    only_base = torch.nonzero(norm_diffs > 1 - treshold, as_tuple=True)[0]
    shared = torch.nonzero((norm_diffs - 0.5).abs() < treshold, as_tuple=True)[0]
    is_other = torch.ones_like(norm_diffs, dtype=bool)
    is_other[only_it] = is_other[only_base] = is_other[shared] = False
    tag = [None] * len(norm_diffs)
    for name, idx in (("ft_only", only_it), ("base_only", only_base), ("shared", shared),
                      ("other", is_other.nonzero(as_tuple=True)[0])):
        for f_idx in idx.tolist():
            tag[f_idx] = name
    return norm_diffs, tag


def remove_latents(activation, latent_activations, latent_vectors):  # utils.py L9-42
    stacked = activation.unsqueeze(0).repeat(latent_vectors.shape[0], 1, 1)
    return stacked - latent_vectors.unsqueeze(1).repeat(1, activation.shape[0], 1) * latent_activations.T.unsqueeze(-1)


def load_base_error(batch, crosscoder, latent_activations, latent_indices, base_decoder, **kw):  # utils.py L122-142
    reconstruction = crosscoder.decode(latent_activations, denormalize_activations=False)
    normalized = crosscoder.normalize_activations(batch)
    return normalized[:, 0, :] - remove_latents(reconstruction[:, 0, :], latent_activations[:, latent_indices],
                                                base_decoder[latent_indices])


def load_ft_error(batch, crosscoder, latent_activations, latent_indices, latent_vectors, **kw):  # utils.py L145-163
    reconstruction = crosscoder.decode(latent_activations, denormalize_activations=False)
    normalized = crosscoder.normalize_activations(batch)
    return normalized[:, 1, :] - remove_latents(reconstruction[:, 1, :], latent_activations[:, latent_indices],
                                                latent_vectors)


def load_base_reconstruction(batch, crosscoder, latent_activations, **kw):  # utils.py L166-180
    return crosscoder.decode(latent_activations, denormalize_activations=False)[:, 0, :]


def load_ft_reconstruction(batch, crosscoder, latent_activations, **kw):  # utils.py L183-197
    return crosscoder.decode(latent_activations, denormalize_activations=False)[:, 1, :]


def closed_form_scalars(latent_vectors, latent_indices, batches, dict_model, target_activation_fn):
    """closed_form.py L39-166 (no post-processing, no thresholding): betas = B / (C D)."""
    dim_model, num = latent_vectors.size(1), latent_vectors.size(0)
    A = torch.zeros(dim_model, num, dtype=latent_vectors.dtype)
    C = torch.zeros(num, dtype=latent_vectors.dtype)
    for batch in batches:
        latent_activations = dict_model.encode(batch, use_threshold=True)
        Y = target_activation_fn(batch, crosscoder=dict_model, latent_activations=latent_activations,
                                 latent_indices=latent_indices, latent_vectors=latent_vectors)
        latent_activations = latent_activations[:, latent_indices]
        nz = (latent_activations != 0).sum(dim=0) > 0
        if Y.ndim == 3:
            A_update = torch.matmul(Y[nz].transpose(1, 2), latent_activations[:, nz].T.unsqueeze(-1)).squeeze(-1).T
        else:
            A_update = Y.T @ latent_activations[:, nz]
        A[:, nz] += A_update
        C[nz] += (latent_activations[:, nz] ** 2).sum(dim=0)
    D = torch.sum(latent_vectors ** 2, dim=1)
    B = torch.sum(A.T * latent_vectors, dim=1)
    return B / (C * D)


def ref_betas(cc, batches, swap=False) -> dict[str, torch.Tensor]:
    """`compute_scalers` (closed_form.py L601-716) for the four crosscoder targets, latent
    vectors the fine-tuned decoder (L645), and the ratios of beta_analysis.py L141, L159-161."""
    view = RefCrossCoderView(cc, swap)
    ft_decoder, base_decoder = view.decoder.weight[1].clone(), view.decoder.weight[0].clone()
    idx = torch.arange(cc.d_sae)
    targets = {"base_error": lambda *a, **k: load_base_error(*a, base_decoder=base_decoder, **k),
               "ft_error": load_ft_error, "base_reconstruction": load_base_reconstruction,
               "ft_reconstruction": load_ft_reconstruction}
    batches = [x[:, view.order] for x in batches]  # the view's layer order
    out = {name: closed_form_scalars(ft_decoder[idx], idx, batches, view, fn) for name, fn in targets.items()}
    out["nu_eps"] = out["base_error"] / out["ft_error"]
    out["nu_rec"] = out["base_reconstruction"] / out["ft_reconstruction"]
    return out


def random_crosscoder(seed: int, d_in: int = 8, d_sae: int = 48) -> Crosscoder:
    """Random decoders whose base / fine-tuned norm ratios span e^-3..e^3 (every class), latent 0
    with |f| / |b| = 6 exactly, the last latent never firing; a per-token threshold; float64."""
    torch.manual_seed(seed)
    cc = Crosscoder(d_in, d_sae, k=4).double()
    with torch.no_grad():
        w = torch.nn.functional.normalize(torch.randn(d_sae, 2, d_in, dtype=torch.float64), dim=-1)
        log_ratio = torch.empty(d_sae, dtype=torch.float64).uniform_(-3, 3)
        w[:, 1] *= log_ratio.exp()[:, None]
        w[0, 1] = 6 * w[0, 0]  # |f| / |b| = 6: fine-tuned-only under Delta (> 5), not under r (< 9)
        cc.W_dec.copy_(w)
        cc.W_enc.copy_(w.permute(1, 2, 0) + 0.3 * torch.randn(2, d_in, d_sae, dtype=torch.float64))
        cc.W_enc[:, :, -1] = 0.0
        cc.b_enc.fill_(-0.2)
        cc.b_dec.copy_(0.1 * torch.randn(2, d_in, dtype=torch.float64))
        cc.scale.copy_(torch.tensor([1.3, 0.7], dtype=torch.float64))
        cc.threshold.fill_(0.5)
    return cc


def paired_batches(seed: int, d_in: int = 8, n: int = 3, b: int = 64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 2, d_in, generator=g, dtype=torch.float64) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1])
def test_delta_and_classes_equal_the_reference(seed):
    cc = random_crosscoder(seed)
    ref_delta, tags = ref_norm_diff_tags(cc.W_dec.detach().permute(1, 0, 2))
    delta = norm_difference(cc)
    assert torch.allclose(delta, ref_delta, atol=1e-6, rtol=0)
    name = {"ft_only": "finetuned_only", "base_only": "base_only", "shared": "shared", "other": "other"}
    cls = classify(delta, torch.ones(cc.d_sae))  # every latent alive: the reference has no "dead"
    assert cls.tolist() == [name[t] for t in tags]
    assert {"finetuned_only", "base_only", "shared", "other"} <= set(cls.tolist())

    table = diff_table(cc, lambda: paired_batches(seed))
    alive = [lat["rate"] > 0 for lat in table["latents"]]
    assert not alive[-1] and sum(alive) > cc.d_sae // 2
    want = [name[t] if a else "dead" for t, a in zip(tags, alive)]
    assert [lat["class"] for lat in table["latents"]] == want
    assert table["counts"] == {c: want.count(c) for c in ("base_only", "shared", "finetuned_only", "other", "dead")}
    # |f| / |b| = 6: Delta = 1/12, fine-tuned-only; r = 6/7 would have called it shared (r > 0.9 needed)
    lat0 = table["latents"][0]
    assert lat0["delta"] == pytest.approx(1 / 12) and lat0["r"] == pytest.approx(6 / 7) and lat0["r"] < 0.9
    assert lat0["class"] == "finetuned_only"
    assert relative_decoder_norm(cc)[0].item() == pytest.approx(6 / 7)


def test_the_figure_draws_the_same_delta_from_r():
    from experiments.figures.sae import delta_of_r

    cc = random_crosscoder(0)
    assert np.allclose(delta_of_r(relative_decoder_norm(cc).numpy()), norm_difference(cc).numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_latent_scaling_equals_the_reference(seed):
    """beta^eps, beta^r and nu^eps, nu^r as the reference computes them: fine-tuned-own
    latents against the reference as published, base-own latents against it with the two
    models exchanged (saelab fits each latent's own decoder)."""
    cc = random_crosscoder(seed)
    batches = paired_batches(seed)
    ls = latent_scaling(cc, batches)
    norms = cc.decoder_norms().detach()
    ft_own = norms[:, 1] >= norms[:, 0]
    alive = torch.isfinite(ls["nu_eps"]) & torch.isfinite(ls["nu_rec"])
    assert alive.sum() > cc.d_sae // 2 and ft_own[alive].any() and (~ft_own[alive]).any()
    for swap, mine in ((False, ft_own & alive), (True, ~ft_own & alive)):
        ref = ref_betas(cc, batches, swap)
        base, ft = (1, 0) if swap else (0, 1)  # saelab's model index of the reference's base / fine-tuned
        for key, target in (("beta_eps", "error"), ("beta_rec", "reconstruction")):
            assert torch.allclose(ls[key][base][mine], ref[f"base_{target}"][mine], atol=1e-6, rtol=0)
            assert torch.allclose(ls[key][ft][mine], ref[f"ft_{target}"][mine], atol=1e-6, rtol=0)
        for key in ("nu_eps", "nu_rec"):
            assert torch.allclose(ls[key][mine], ref[key][mine], atol=1e-6, rtol=0)
