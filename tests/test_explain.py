"""Ground-truth explanations: planted latents, a conjunction, hand-computed counts, held-out scoring."""

import json
import math

import numpy as np
import pytest
import torch

from experiments.tasks import ROLES
from features.explain import Explanation, explain_latents, explanation_record


def _labels(n_examples=60, per_example=20, seed=0):
    """Random role (4 values) and value (10 values, -1 on a tenth of the tokens); held out by example % 5 == 0."""
    rng = np.random.default_rng(seed)
    n = n_examples * per_example
    role = rng.integers(0, 4, n)
    value = rng.integers(0, 10, n)
    value[rng.random(n) < 0.1] = -1
    example = np.arange(n) // per_example
    return {"role": role, "value": value}, example % 5 == 0


def test_planted_single_atom_is_found_and_exact_on_heldout():
    labels, heldout = _labels()
    rng = np.random.default_rng(1)
    on = labels["value"] == 5
    acts = torch.zeros(len(on), 3)
    acts[:, 0] = torch.from_numpy(on * rng.uniform(0.5, 2.0, len(on))).float()
    acts[:, 1] = torch.from_numpy((labels["role"] == 2) * 1.0).float()
    acts[:, 2] = -1.0  # a latent that never fires
    e = explain_latents(acts, labels, heldout)
    assert e[0].predicate == [("value", 5)]  # not a conjunction: none beats the atom, ties go to it
    assert (e[0].precision, e[0].recall, e[0].f1, e[0].fit_f1) == (1.0, 1.0, 1.0, 1.0)
    assert e[0].n_fires == int((on & heldout).sum())
    assert e[1].predicate == [("role", 2)] and e[1].f1 == 1.0
    assert e[2] is None


def test_conjunction_beats_its_atoms():
    labels, heldout = _labels()
    on = (labels["value"] == 5) & (labels["role"] == 1)
    e, = explain_latents(on[:, None].astype(np.float32), labels, heldout)
    assert e.predicate == [("value", 5), ("role", 1)]  # value = 5 is the better single atom (rarer than role = 1)
    assert (e.precision, e.recall, e.f1, e.fit_f1) == (1.0, 1.0, 1.0, 1.0)
    fit = ~heldout
    for col, v in [("value", 5), ("role", 1)]:  # the best single atoms' fit F1, by hand: 2 tp / (fires + atom)
        atom = labels[col] == v
        f1 = 2 * (on & atom & fit).sum() / ((on & fit).sum() + (atom & fit).sum())
        assert f1 < 0.7
    assert e.text({"role": ROLES}) == "value = 5 and role = step: precision 1.00, recall 1.00"
    # one label column: no conjunction to choose, the best atom is taken
    e, = explain_latents(on[:, None].astype(np.float32), {"value": labels["value"]}, heldout)
    assert e.predicate == [("value", 5)] and e.precision == 1.0 and e.recall < 1.0


def test_counts_by_hand():
    #            fit (8 tokens)             held out (4)
    a = np.array([1, 1, 1, 1, -1, -1, -1, 0, 1, 1, 0, -1])
    fires = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1], bool)
    heldout = np.arange(12) >= 8
    acts = np.where(fires, 1.0, 0.2)[:, None]  # 0.2 is below the threshold
    e, = explain_latents(acts, {"a": a}, heldout, threshold=0.5, min_fires=5)
    # fit: 5 fires; a = 1: tp 2 of 4 -> F1 4/9; a = 0: tp 0; a = -1 (tp 3 of 3, F1 0.75) is no atom
    assert e.predicate == [("a", 1)] and e.fit_f1 == pytest.approx(4 / 9)
    # held out: fires at 8, 11; a = 1 at 8, 9: tp 1 -> precision 1/2, recall 1/2, F1 2/4
    assert (e.n_fires, e.precision, e.recall, e.f1) == (2, 0.5, 0.5, 0.5)
    assert e.text() == "a = 1: precision 0.50, recall 0.50"
    # 5 fit fires: one more than min_fires allows is too few
    assert explain_latents(acts, {"a": a}, heldout, threshold=0.5, min_fires=6) == [None]


def test_heldout_scores_use_the_heldout_tokens():
    labels, heldout = _labels()
    v = labels["value"]
    # fires at value = 5 on fit tokens, at value = 3 on held-out ones; the second never fires held out
    acts = np.stack([np.where(heldout, v == 3, v == 5), (v == 5) & ~heldout], 1).astype(np.float32)
    e = explain_latents(acts, labels, heldout)
    assert e[0].predicate == [("value", 5)] and e[0].fit_f1 == 1.0
    assert (e[0].precision, e[0].recall, e[0].f1) == (0.0, 0.0, 0.0) and e[0].n_fires == int((heldout & (v == 3)).sum())
    assert e[1].predicate == [("value", 5)] and e[1].n_fires == 0
    assert math.isnan(e[1].precision) and e[1].recall == 0.0 and e[1].f1 == 0.0
    rec = explanation_record(e + [None])
    json.dumps(rec, allow_nan=False)  # JSON-ready: nan became None
    assert rec[1]["precision"] is None and rec[2] is None
    assert rec[0]["predicate"] == [{"label": "value", "value": 5, "name": "5"}]
    assert Explanation(1, [("value", 5)], math.nan, 0.0, 0.0, 0, 1.0).text() == "value = 5: precision n/a, recall 0.00"


def test_bad_inputs():
    labels, heldout = _labels(n_examples=5)
    acts = np.zeros((len(heldout), 2), np.float32)
    with pytest.raises(ValueError, match="identifiers"):
        explain_latents(acts, {**labels, "example": np.arange(len(heldout))}, heldout, max_values=50)
    with pytest.raises(ValueError, match="both splits"):
        explain_latents(acts, labels, np.zeros(len(heldout), bool))
    with pytest.raises(ValueError, match="shape"):
        explain_latents(acts, {"role": labels["role"][:-1]}, heldout)


def test_matches_brute_force():
    rng = np.random.default_rng(2)
    n = 400
    labels = {"a": rng.integers(-1, 3, n), "b": rng.integers(0, 4, n), "c": rng.integers(0, 2, n)}
    heldout = rng.random(n) < 0.3
    acts = rng.normal(size=(n, 6)) + (labels["a"] == 1)[:, None] * np.array([2, 0, 0, 1, 0, 0])
    beam = 2
    fit = ~heldout
    atoms = [(c, v) for c in labels for v in np.unique(labels[c][fit]) if v != -1]
    truth = {at: labels[at[0]] == at[1] for at in atoms}
    f1 = lambda t, f: 2 * (t & f).sum() / (t.sum() + f.sum())  # noqa: E731
    for j, e in enumerate(explain_latents(acts, labels, heldout, beam=beam)):
        f = acts[:, j] > 0
        single = {(at,): f1(truth[at] & fit, f & fit) for at in atoms}
        top = sorted(single, key=single.get, reverse=True)[:beam]
        pairs = {(x, y): f1(truth[x] & truth[y] & fit, f & fit) for (x,) in top for y in atoms if y[0] != x[0]}
        assert e.fit_f1 == pytest.approx(max(max(single.values()), max(pairs.values())))
        t = np.all([truth[(c, v)] for c, v in e.predicate], 0)
        assert e.fit_f1 == pytest.approx(f1(t & fit, f & fit))
        assert e.n_fires == (f & heldout).sum()
        assert e.precision == pytest.approx((t & f & heldout).sum() / (f & heldout).sum())
        assert e.recall == pytest.approx((t & f & heldout).sum() / (t & heldout).sum())
