"""Automated interpretability scored against ground truth: each latent explained by the label
predicate that best predicts where it fires.

Automated-interpretability pipelines for language models (Bills et al. 2023, Neuronpedia,
EleutherAI's delphi) have an LM read a latent's top activations, write an explanation, and
score it by how well another LM simulates the activations from it. Here every token carries
its ground truth (the task's labels: role, step, value, slot, op, ... and the cache set's
difficulty, variant, abstain), so an explanation can be a predicate over those labels, and
its score is exact counting, with no explainer or simulator model to trust:

    atom         `name == v` for every label column `name` and every value v the column takes
                 on the fit tokens; -1 ("not applicable", experiments.tasks.protocol.UNDEFINED)
                 is not an atom: "outside any step" is said by other columns (role), and a
                 latent that fires on "no value here" is better called by what is there
    conjunction  `a and b` for two atoms of different columns that hold together on some
                 fit token, considered for a latent only when one of them is among its `beam`
                 best atoms by F1 (a conjunction that refines a good single predictor; the
                 rest would be chance fits)
    fires        activation > `threshold` (default 0: an SAE latent's "on")
    precision    P(predicate | fires)      how much of the latent the predicate accounts for
    recall       P(fires | predicate)      how much of the predicate the latent covers
    F1           2 tp / (n_fires + n_predicate)

The predicate with the best F1 on the fit tokens is chosen (a single atom wins ties with a
conjunction: the simpler explanation), then scored on the held-out tokens the caller marks
(e.g. by example index, as the SAE stage splits with `example % 5 == 0`): choosing among
hundreds of predicates on the same tokens that score it would overstate the fit.

Tokens with the same labels in every column are interchangeable for every predicate, so the
counts are taken over label cells: the latents' fires are summed per cell, (n_cells, L), and
each atom's or conjunction's true positives are one matmul with its 0/1 cell indicator. The
task's labels are nested (slot, op and step are -1 together outside steps), so there are far
fewer cells than tokens; at worst one per token, the cost of counting on tokens directly.
float32 sums of 0/1 are exact below 2^24 tokens.

`features` may not import `experiments`: the labels come in as a plain dict of columns, and
value names (ROLES, SLOTS, the task's operators) as an optional dict for printing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

UNDEFINED = -1  # experiments.tasks.protocol.UNDEFINED: the label has no meaning at this token
CHUNK_ELEMENTS = 1 << 24  # fit rows x latents read at once (64 MiB of float32 fires)


@dataclass
class Explanation:
    """A latent's best label predicate, chosen on the fit tokens and scored on the held-out ones."""

    latent: int
    predicate: list[tuple[str, int]]
    """One or two (label column, value) atoms; a conjunction lists first the atom in the
    latent's beam (the better single predictor)."""
    precision: float
    """P(predicate | fires) on the held-out tokens; nan where the latent never fires there."""
    recall: float
    """P(fires | predicate) on the held-out tokens; nan where the predicate never holds there."""
    f1: float
    """Held-out F1; nan where neither fires nor predicate occur there."""
    n_fires: int
    """Held-out tokens the latent fires on."""
    fit_f1: float
    """F1 on the fit tokens, the score the predicate was chosen by."""

    def text(self, value_names: dict[str, list[str]] | None = None) -> str:
        """e.g. "value = 5 and role = step: precision 0.93, recall 0.88"."""
        num = lambda v: "n/a" if math.isnan(v) else f"{v:.2f}"  # noqa: E731
        what = predicate_text(self.predicate, value_names)
        return f"{what}: precision {num(self.precision)}, recall {num(self.recall)}"


def predicate_text(predicate: list[tuple[str, int]], value_names: dict[str, list[str]] | None = None) -> str:
    """ "value = 5 and role = step", with names from `value_names[column][value]` where given."""
    return " and ".join(f"{col} = {_value_name(col, v, value_names)}" for col, v in predicate)


def _value_name(col: str, v: int, value_names: dict[str, list[str]] | None) -> str:
    names = (value_names or {}).get(col)
    return str(names[v]) if names is not None and 0 <= v < len(names) else str(v)


def _label_columns(labels: dict[str, np.ndarray], n: int, max_values: int) -> dict[str, np.ndarray]:
    cols = {}
    for name, col in labels.items():
        col = np.asarray(col)
        if col.shape != (n,):
            raise ValueError(f"explain: label {name!r} has shape {col.shape}; expected ({n},), one value per token")
        if not (np.issubdtype(col.dtype, np.integer) or col.dtype == bool):
            raise ValueError(f"explain: label {name!r} is {col.dtype}; labels are integer codes")
        n_values = len(np.unique(col))
        if n_values > max_values:
            # An identifier (seq, example) explains a latent by memorising tokens, and held-out
            # examples never share its values: it is not a label to explain by.
            raise ValueError(f"explain: label {name!r} takes {n_values} values (> max_values={max_values}); "
                             "leave identifiers such as seq or example out of `labels`, or raise max_values")
        cols[name] = col.astype(np.int64)
    if not cols:
        raise ValueError("explain: no label columns")
    return cols


def explain_latents(acts: torch.Tensor | np.ndarray, labels: dict[str, np.ndarray], heldout: np.ndarray,
                    beam: int = 8, min_fires: int = 5, threshold: float = 0.0,
                    max_values: int = 256) -> list[Explanation | None]:
    """The best label predicate of every latent (see the module docstring).

    acts     (N, L) latent activations of N tokens (a tensor on any device, or an array)
    labels   {name: (N,) int} label columns, -1 where a label does not apply
    heldout  (N,) bool: the tokens the chosen predicates are scored on; the rest choose them
    Returns L entries, None for a latent firing on fewer than `min_fires` fit tokens.
    `max_values`: a column with more distinct values is refused (an identifier, not a label)."""
    x = torch.as_tensor(acts)
    if x.ndim != 2:
        raise ValueError(f"explain: activations have shape {tuple(x.shape)}; expected (N tokens, L latents)")
    n, n_latents = x.shape
    heldout = np.asarray(heldout)
    if heldout.shape != (n,) or heldout.dtype != bool:
        raise ValueError(f"explain: heldout must be a ({n},) bool mask, got {heldout.dtype} {heldout.shape}")
    if heldout.all() or not heldout.any():
        raise ValueError(f"explain: {int(heldout.sum())} of {n} tokens held out; both splits must be non-empty")
    if beam < 1 or min_fires < 1:
        raise ValueError(f"explain: beam ({beam}) and min_fires ({min_fires}) must be >= 1")
    cols = _label_columns(labels, n, max_values)
    names = list(cols)
    dev = x.device
    fit_rows, ho_rows = np.flatnonzero(~heldout), np.flatnonzero(heldout)

    # Label cells of the fit tokens: (n_cells, n_columns) distinct label tuples, each fit token's cell.
    keys = np.stack([cols[c][fit_rows] for c in names], 1)
    cells, cell_of = np.unique(keys, axis=0, return_inverse=True)
    cell_size = np.bincount(cell_of.reshape(-1), minlength=len(cells))
    # Atoms: every (column, value) a fit token has, -1 left out; column order, then value order.
    atoms = [(k, int(v)) for k in range(len(names)) for v in np.unique(cells[:, k]) if v != UNDEFINED]
    if not atoms:
        raise ValueError("explain: no label takes a value other than -1 on the fit tokens")
    atom_col = np.array([k for k, _ in atoms])
    atom_cell = np.stack([cells[:, k] == v for k, v in atoms])  # (A, n_cells) bool
    n_atom = atom_cell.astype(np.int64) @ cell_size  # (A,) fit tokens where the atom holds
    # Conjunctions: atom pairs i < j of different columns that hold together on some fit token.
    # (A, A) fit tokens where both hold (float64 matmul: exact, and numpy's int matmul is slow)
    both = np.rint((atom_cell * cell_size.astype(np.float64)) @ atom_cell.T).astype(np.int64)
    pi, pj = np.nonzero(np.triu(both > 0, 1) & (atom_col[:, None] != atom_col[None, :]))
    n_pair = both[pi, pj]

    f32 = dict(device=dev, dtype=torch.float32)
    atom_cell_t = torch.as_tensor(atom_cell, **f32)
    pair_cell_t = atom_cell_t[torch.as_tensor(pi, device=dev)] * atom_cell_t[torch.as_tensor(pj, device=dev)]
    n_atom_t = torch.as_tensor(n_atom, device=dev, dtype=torch.float64)
    n_pair_t = torch.as_tensor(n_pair, device=dev, dtype=torch.float64)
    pi_t, pj_t = torch.as_tensor(pi, device=dev), torch.as_tensor(pj, device=dev)
    cell_of_t = torch.as_tensor(cell_of.reshape(-1), device=dev)
    fit_t, ho_t = torch.as_tensor(fit_rows, device=dev), torch.as_tensor(ho_rows, device=dev)
    # Held-out truth of each atom (values absent from the fit tokens are no atoms, so never chosen).
    atom_ho = torch.as_tensor(np.stack([cols[names[k]][ho_rows] == v for k, v in atoms], 1), device=dev)  # (Nh, A)
    k_beam = min(beam, len(atoms))

    out: list[Explanation | None] = []
    step = max(1, min(n_latents, CHUNK_ELEMENTS // max(1, len(fit_rows))))
    for lo in range(0, n_latents, step):
        xs = x[:, lo:lo + step]
        fires = (xs[fit_t] > threshold).float()  # (Nf, c)
        per_cell = torch.zeros(len(cells), fires.shape[1], **f32).index_add_(0, cell_of_t, fires)  # (n_cells, c)
        n_fires = per_cell.sum(0).double()  # (c,)
        # F1 = 2 tp / (n_fires + n_predicate), in float64 so that equal counts tie exactly.
        f1_atom = 2 * (atom_cell_t @ per_cell).double() / (n_fires + n_atom_t[:, None])  # (A, c)
        f1_pair = 2 * (pair_cell_t @ per_cell).double() / (n_fires + n_pair_t[:, None])  # (P, c)
        in_beam = torch.zeros_like(f1_atom, dtype=torch.bool)
        in_beam.scatter_(0, f1_atom.topk(k_beam, dim=0).indices, True)
        eligible = in_beam[pi_t] | in_beam[pj_t]  # (P, c)
        best_atom_f1, best_atom = f1_atom.max(0)
        if len(pi):
            best_pair_f1, best_pair = torch.where(eligible, f1_pair, -1.0).max(0)
            a, b = pi_t[best_pair], pj_t[best_pair]
            # The beam atom first; of two in the beam, the better single predictor.
            lat = torch.arange(len(a), device=dev)
            ka = torch.stack([in_beam[a, lat].double(), f1_atom[a, lat]], 1)
            kb = torch.stack([in_beam[b, lat].double(), f1_atom[b, lat]], 1)
            swap = (kb[:, 0] > ka[:, 0]) | ((kb[:, 0] == ka[:, 0]) & (kb[:, 1] > ka[:, 1]))
            a, b = torch.where(swap, b, a), torch.where(swap, a, b)
        else:  # one label column: no conjunctions
            best_pair_f1, a, b = torch.full_like(best_atom_f1, -1.0), best_atom, best_atom
        use_pair = best_pair_f1 > best_atom_f1  # strictly: a single atom wins ties
        first = torch.where(use_pair, a, best_atom)
        second = torch.where(use_pair, b, best_atom)  # = first for a single atom
        fit_f1 = torch.where(use_pair, best_pair_f1, best_atom_f1)

        # Held-out scores of the chosen predicate only: (Nh, c) truth of each latent's predicate.
        fires_ho = xs[ho_t] > threshold
        truth_ho = atom_ho[:, first] & atom_ho[:, second]
        tp = (fires_ho & truth_ho).sum(0).double()
        nf_ho, nt_ho = fires_ho.sum(0).double(), truth_ho.sum(0).double()
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=dev)
        precision = torch.where(nf_ho > 0, tp / nf_ho.clamp_min(1), nan)
        recall = torch.where(nt_ho > 0, tp / nt_ho.clamp_min(1), nan)
        f1 = torch.where(nf_ho + nt_ho > 0, 2 * tp / (nf_ho + nt_ho).clamp_min(1), nan)

        rows = zip(n_fires.tolist(), use_pair.tolist(), first.tolist(), second.tolist(), precision.tolist(),
                   recall.tolist(), f1.tolist(), nf_ho.tolist(), fit_f1.tolist())
        for j, (nf, pair, i1, i2, p, r, f, nh, ff) in enumerate(rows):
            if nf < min_fires:
                out.append(None)
                continue
            pred = [(names[atoms[i][0]], atoms[i][1]) for i in ([i1, i2] if pair else [i1])]
            out.append(Explanation(lo + j, pred, p, r, f, int(nh), ff))
    return out


def explanation_record(expls: list[Explanation | None],
                       value_names: dict[str, list[str]] | None = None) -> list[dict | None]:
    """JSON-ready records of `explain_latents`' output (nan as None: JSON has no NaN)."""
    num = lambda v: v if math.isfinite(v) else None  # noqa: E731
    return [None if e is None else
            {"latent": e.latent,
             "predicate": [{"label": c, "value": v, "name": _value_name(c, v, value_names)} for c, v in e.predicate],
             "text": e.text(value_names), "precision": num(e.precision), "recall": num(e.recall),
             "f1": num(e.f1), "n_fires": e.n_fires, "fit_f1": num(e.fit_f1)}
            for e in expls]
