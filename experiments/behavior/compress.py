"""Activation-Steered Compression of a model's CoTs (`features.compress`), measured: the
vector from N pairs, its layer and scale chosen on problems of their own, then every scale
on held-out problems against no steering.

    pairs       N train-split problems: the model's own greedy CoT, where it is well formed,
                right and longer than the gold one (verbose), against the gold CoT (concise)
    selection   other train-split problems: every (reading position, steering positions,
                layer, scale); the chosen one cuts the CoT most while its accuracy stays
                within `max_accuracy_drop` of no steering
    held out    eval-split problems: no steering and every scale of the chosen one, each
                with accuracy and CoT length (pooled over the problems: paired), and the
                wall-clock time of generating the first `timing_n` of them one at a time
                (`repeats` runs, interleaved)

The control is a random direction of the vector's norm at the same layer and scale
(`random_direction`): a cut that any push of that size gives is not compression.
`length_cut` is the paired relative change of the CoT length at the chosen scale (-0.67:
two thirds shorter), `accuracy_change` the paired difference of accuracy, `speedup` the
mean over repeats of (time unsteered / time steered) with a t interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Sequence, get_args

import torch

from activations.generate import generate_text
from experiments.behavior.core import Subject, cot_tokens, max_cot_tokens
from experiments.tasks import Example, Task
from features.compress import Position, compression_hooks, compression_vectors
from features.stats import difference, mean, pooled


@dataclass
class CompressConfig:
    """The compression study (behavior.compress); off while `models` is empty."""

    models: list[str] = field(default_factory=list)
    """Variants to study (e.g. [sft-verbosity]); empty: not measured."""
    pairs: int = 50
    """Verbose/concise pairs the vector is made from (Azizi et al.: 50)."""
    layers: list[int] | None = None
    """Layers to choose from (the residual stream after each block); None: every layer."""
    positions: list[Position] = field(default_factory=lambda: ["last", "mean"])
    """Where each CoT's activation is read, to choose from: its last token (the paper) or
    the mean over its tokens."""
    steer_at: list[Literal["all", "last"]] = field(default_factory=lambda: ["all", "last"])
    """Where the vector is added, to choose from: every position, or only where a token is
    chosen (the prompt's last token, then each new one: the paper's "each decoding step")."""
    scales: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    """Multiples of the vector added (0, no steering, is always measured too)."""
    max_accuracy_drop: float = 0.02
    """The largest accuracy loss (vs no steering, on the selection set) a chosen scale may cost."""
    k: int = 3
    """Chain length of every problem set."""
    select_n: int = 100
    """Problems of the selection set."""
    n: int = 200
    """Held-out problems."""
    repeats: int = 3
    """Timed generations per scale (interleaved with the unsteered ones)."""
    timing_n: int = 50
    """Held-out problems the timing generates (the first ones)."""
    timing_batch_size: int = 1
    """Rows per generate call while timing (1: one problem at a time, the paper's latency;
    a batch waits for its longest row, so a partial cut barely shows in batched time)."""

    def __post_init__(self):
        if not self.positions or not self.steer_at or not set(self.positions) <= set(get_args(Position)) \
                or not set(self.steer_at) <= {"all", "last"}:
            raise ValueError(f"behavior.compress.positions must be some of {list(get_args(Position))} and steer_at "
                             f"some of ['all', 'last'], got {self.positions} and {self.steer_at}")
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise ValueError(f"behavior.compress.layers must be None (every layer) or layers >= 0, got {self.layers}")
        if min(self.pairs, self.select_n, self.n, self.repeats, self.k, self.timing_n, self.timing_batch_size) < 1:
            raise ValueError("behavior.compress needs pairs, select_n, n, repeats, k, timing_n and timing_batch_size >= 1")
        if self.models and (not self.scales or min(self.scales) <= 0):
            raise ValueError(f"behavior.compress.scales must be > 0, got {self.scales}")
        if not 0 <= self.max_accuracy_drop < 1:
            raise ValueError(f"behavior.compress.max_accuracy_drop must be in [0, 1), got {self.max_accuracy_drop}")


def _run(subject: Subject, task: Task, examples: Sequence[Example], hooks) -> tuple[dict, list[str], float]:
    """(metrics, texts, seconds) of greedy generation on `examples` under `hooks`."""
    tok = subject.tokenizer
    budget = max_cot_tokens(task, max(ex.difficulty for ex in examples), 4.0)  # room for a verbose CoT
    t0 = time.perf_counter()
    texts = generate_text(subject.model, tok, [ex.prompt for ex in examples], budget, subject.batch_size,
                          fwd_hooks=hooks)
    seconds = time.perf_counter() - t0
    parsed = [task.parse(t) for t in texts]
    idx = range(len(examples))
    lengths = [cot_tokens(tok, p.cot) for p in parsed]
    return ({"accuracy": pooled([p.answer == ex.answer for ex, p in zip(examples, parsed)], idx, kind="rate"),
             "cot_length": pooled(lengths, idx, kind="mean")}, texts, seconds)


def _paired_vs(m: dict, none: dict) -> dict:
    """A steered run's changes against no steering on the same problems."""
    return {"length_cut": difference(m["cot_length"], none["cot_length"], relative=True),
            "accuracy_change": difference(m["accuracy"], none["accuracy"])}


def compression_study(subject: Subject, task: Task, cfg: CompressConfig, sets: dict[str, list[Example]],
                      seed: int) -> dict:
    """ASC on `subject` (a TransformerBridge), with `sets` = {"pairs", "selection", "heldout"};
    `seed` draws the control's random direction."""
    tok = subject.tokenizer
    if subject.fwd_hooks:
        raise ValueError("compress adds its own steering hook: give it a subject without hooks")
    own = generate_text(subject.model, tok, [ex.prompt for ex in sets["pairs"]],
                        max_cot_tokens(task, cfg.k, 4.0), subject.batch_size)
    pairs = []
    for ex, text in zip(sets["pairs"], own):
        parsed, concise = task.parse(text), task.format_cot(ex.steps)
        # a verbose CoT of the model's own: well formed, right, and longer than the gold one
        if parsed.well_formed and parsed.answer == ex.answer and cot_tokens(tok, parsed.cot) > cot_tokens(tok, concise):
            pairs.append((ex.prompt, concise, parsed.cot))
    if not pairs:  # a finding not measured on this model, not an error of the run
        return {"skipped": "the model wrote no right CoT longer than the gold one: no verbose CoT to make a vector from",
                "n_pairs": 0}
    n_layers = subject.model.cfg.n_layers
    layers = cfg.layers if cfg.layers is not None else list(range(n_layers))
    if any(not 0 <= L < n_layers for L in layers):
        raise ValueError(f"behavior.compress.layers must be in 0..{n_layers - 1}, got {layers}")
    prompts, concise, verbose = ([row[i] for row in pairs] for i in range(3))
    vectors = {pos: compression_vectors(subject.model, tok, prompts, concise, verbose, layers, pos)
               for pos in cfg.positions}

    # layer, reading position, steering positions and scale, chosen on the selection set
    sel0, _, _ = _run(subject, task, sets["selection"], ())
    selection, best = {}, None
    for pos in cfg.positions:
        for where in cfg.steer_at:
            for L in layers:
                for s in cfg.scales:
                    m, _, _ = _run(subject, task, sets["selection"], compression_hooks(L, vectors[pos][L], s, where))
                    cut = difference(m["cot_length"], sel0["cot_length"], relative=True)["value"]
                    row = {"layer": L, "position": pos, "steer_at": where, "scale": s,
                           "length_cut": cut if cut is not None else 0.0,  # no CoT unsteered: nothing to cut
                           "accuracy_drop": sel0["accuracy"]["value"] - m["accuracy"]["value"]}
                    selection[f"{pos}:{where}:{L}:{s:g}"] = row
                    if row["length_cut"] < 0 and row["accuracy_drop"] <= cfg.max_accuracy_drop and (
                            best is None or row["length_cut"] < best["length_cut"]):
                        best = row
    kept = best is not None
    if not kept:  # nothing shortens the CoT at that accuracy: the gentlest push that cut most
        best = min(selection.values(), key=lambda r: (r["scale"], r["length_cut"]))
    layer, where = best["layer"], best["steer_at"]
    vector = vectors[best["position"]][layer]

    # every scale of that choice on the held-out problems; then each timed against no
    # steering, one problem at a time (the latency the paper reports), repeats interleaved
    # with each one starting at another scale
    keys = ["0"] + [f"{s:g}" for s in sorted(set(cfg.scales) | {best["scale"]})]
    hooks = {key: compression_hooks(layer, vector, float(key), where) if key != "0" else () for key in keys}
    by_scale: dict[str, dict] = {}
    for key in keys:
        m, texts, _ = _run(subject, task, sets["heldout"], hooks[key])
        by_scale[key] = m | {"example": texts[0]}
    one = Subject(subject.model, tok, batch_size=cfg.timing_batch_size)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(cfg.repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:  # each repeat starts elsewhere: no order bias
            times[key].append(_run(one, task, sets["heldout"][:cfg.timing_n], hooks[key])[2])
    for key, m in by_scale.items():
        m["seconds"] = mean(times[key])
        if key != "0":
            m |= _paired_vs(m, by_scale["0"]) | {"speedup": mean([a / b for a, b in zip(times["0"], times[key])])}
    # the control: a random direction of the vector's norm, pushed where and as hard as the vector
    rand = torch.randn(vector.shape, generator=torch.Generator().manual_seed(seed))
    m, texts, _ = _run(subject, task, sets["heldout"],
                       compression_hooks(layer, rand * vector.norm() / rand.norm(), best["scale"], where))
    control = m | {"example": texts[0]} | _paired_vs(m, by_scale["0"])
    chosen = by_scale[f"{best['scale']:g}"]
    return {"layer": layer, "position": best["position"], "steer_at": where, "scale": best["scale"],
            "kept_accuracy_on_selection": kept, "n_pairs": len(pairs), "vector_norm": float(vector.norm()),
            "selection": selection, "by_scale": by_scale, "random_direction": control,
            "length_cut": chosen["length_cut"], "accuracy_change": chosen["accuracy_change"],
            "speedup": chosen["speedup"], "n": len(sets["heldout"]), "k": cfg.k}
