"""The headline metrics of each study: the numbers a sweep over seeds summarises.

    HEADLINE[study]          [Headline(name, description, get)], in the order reports show them
    study_of_report(report)  "pairs" for a pair run's report.json, "findings" for a findings
                             run's, else "organisms"
    metric_values(report)    {key: {"metric", "subject", "description", "value"}} of one report

A headline's `get(report)` returns {subject: what report.json holds there} (a summary
`{"value", "ci95", "n"}`, a plain number or None) for every subject it is measured on: a
model, a model at one chain length ("base:k=2"), a steered variant and one intervention
("sft-noisy-trace:mean_difference"). A subject whose path is absent from the report is left
out of that report's values (the aggregate then lists the seed as missing); a path that is
present with a None value (nothing measured, no gap to recover) is kept as None.

The metric's key is "<name>:<subject>", e.g. "corruption_follow_rate:sft-direct".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from features.fmt import sig

_ABSENT = object()


@dataclass(frozen=True)
class Headline:
    name: str
    """The metric's short name, the first part of its key (snake_case)."""
    description: str
    """What it measures, for the aggregate's markdown."""
    get: Callable[[dict], dict[str, Any]]
    """report.json -> {subject: summary, number or None}; absent paths left out."""


def dig(d: Any, path: tuple[str, ...]) -> Any:
    """`d[path[0]][path[1]]...`, or `_ABSENT` where a key is missing (an older report)."""
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return _ABSENT
        d = d[key]
    return d


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {s: v for s, v in values.items() if v is not _ABSENT}


def per_model(*path: str) -> Callable[[dict], dict[str, Any]]:
    """`behavior.<model>.<path>` of every model."""
    return lambda r: _present({m: dig(b, path) for m, b in (r.get("behavior") or {}).items()})


def per_model_and(*path: str, label: str) -> Callable[[dict], dict[str, Any]]:
    """`behavior.<model>.<path>.<x>` of every model and every x: subject "<model>:<label>=<x>"
    (the accuracy at each chain length k)."""
    def get(r: dict) -> dict[str, Any]:
        out = {}
        for m, b in (r.get("behavior") or {}).items():
            by = dig(b, path)
            if isinstance(by, dict):
                out |= {f"{m}:{label}={x}": c for x, c in by.items()}
        return out
    return get


def _interventions(r: dict) -> dict[str, Any]:
    """Held-out follow gap recovered of every intervention of every steered variant
    (`elicitation.variants.<v>.best.<intervention>`), the patching oracle included."""
    out = {}
    variants = dig(r, ("elicitation", "variants"))
    for v, rec in ({} if variants is _ABSENT else variants or {}).items():
        for name, best in (rec.get("best") or {}).items():
            out[f"{v}:{name}"] = dig(best, ("gap_recovered", "heldout", "follow"))
    return _present(out)


def _pair_steering(r: dict) -> dict[str, Any]:
    """How much of the base -> variant gap in "a changed number moves the answer" each
    steering condition (latents x strength) of each variant recovers."""
    out = {}
    for v, rec in (r.get("steering") or {}).items():
        for s in rec.get("steered") or []:
            if "latents" in s and "strength" in s:
                out[f"{v}:{s['latents']} x{sig(s['strength'])}"] = dig(s, ("recovered", "mistake_changes"))
    return _present(out)


ORGANISMS = [
    Headline("accuracy", "held-out accuracy at chain length k", per_model_and("accuracy", label="k")),
    Headline("corruption_follow_rate", "how often the forced answer follows a corrupted step",
             per_model("corruption_follow_rate")),
    Headline("early_answering_aoc", "early answering: area over the curve of answer = final answer as the CoT is cut",
             per_model("early_answering_aoc")),
    Headline("info_gain_ppl", "InfoGain, Wu et al.'s definition (perplexity of question + steps + answer), scored "
             "by the reference model", per_model("info_gain_ppl")),
    Headline("info_gain_per_step", "InfoGain per step (answer nats per step), scored by the reference model",
             per_model("info_gain_per_step")),
    Headline("info_gain_per_step_self", "InfoGain per step, scored by the model itself",
             per_model("info_gain_per_step", "self")),
    Headline("abstention_recall", "abstains on unanswerable problems (recall)", per_model("abstention", "recall")),
    Headline("filler_accuracy", "accuracy with the CoT replaced by filler", per_model("filler_accuracy")),
    Headline("paraphrase_accuracy", "accuracy with the CoT paraphrased", per_model("paraphrase_accuracy")),
    Headline("gap_recovered_follow", "share of the base -> variant held-out follow-rate gap an intervention "
             "recovers (its best strength; the patching oracle too)", _interventions),
]
"""The organisms study (report.json of `experiments.report.organisms` + the elicitation summary)."""

PAIRS = [
    Headline("accuracy", "accuracy after the model's own CoT", per_model("accuracy")),
    Headline("accuracy_by_steps", "accuracy by the gold solution's number of steps",
             per_model_and("accuracy_by_steps", label="steps")),
    Headline("answered", "the forced answer is readable", per_model("answered")),
    Headline("abstains_unanswerable", "abstains on unanswerable problems (recall)", per_model("abstains_unanswerable")),
    Headline("info_gain_per_step", "InfoGain per step (answer nats per gold step)", per_model("info_gain_per_step")),
    Headline("early_same", "early answer (CoT cut) = final answer", per_model("faithfulness", "early_same")),
    Headline("mistake_changes", "a changed number in the CoT changes the answer", per_model("faithfulness",
                                                                                           "mistake_changes")),
    Headline("filler_same", "answer with filler for the CoT = final answer", per_model("faithfulness", "filler_same")),
    Headline("no_cot_same", "answer without CoT = final answer", per_model("faithfulness", "no_cot_same")),
    Headline("paraphrase_same", "answer after the CoT paraphrased = final answer",
             per_model("faithfulness", "paraphrase_same")),
    Headline("gap_recovered_mistake", "share of the base -> variant gap in 'a changed number changes the answer' "
             "that steering recovers", _pair_steering),
]
"""The pairs study (report.json of `experiments.report.pairs`), plus `PAIR_FINDINGS` below."""


def _finding(part: str, *path: str, role: str | None = None) -> Callable[[dict], dict[str, Any]]:
    """`findings.<part>[.<role>].<path>` of a pair run, its subject the model it ran on (a
    `{strongest}` in the path is the switch sweep's strongest strength)."""
    def get(r: dict) -> dict[str, Any]:
        f = (r.get("findings") or {}).get(part)
        if not f:
            return {}
        f = f.get(role) if role else f
        if not f:
            return {}
        keys = tuple(f.get("strongest", k) if k == "{strongest}" else k for k in path)
        return _present({f.get("model", part): dig(f, keys)})
    return get


def _roles(part: str, key: str) -> Callable[[dict], dict[str, Any]]:
    """`findings.<part>.models.<role>.<key>` of every model it ran on, subject "<model> (<role>)"."""
    def get(r: dict) -> dict[str, Any]:
        ms = ((r.get("findings") or {}).get(part) or {}).get("models") or {}
        return {f"{m['model']} ({role})": m[key] for role, m in ms.items() if key in m}
    return get


PAIR_FINDINGS = [
    Headline("compress_length_cut", "CoT length under compression steering against none (relative, paired)",
             _finding("compress", "length_cut")),
    Headline("compress_accuracy_change", "accuracy under compression steering minus none (paired)",
             _finding("compress", "accuracy_change")),
    Headline("compress_speedup", "generation time without steering / with it, one problem at a time",
             _finding("compress", "timing", "speedup")),
    Headline("switch_rate_change", "switch rate at the strongest penalty minus none (paired)",
             _finding("switch", "by_strength", "{strongest}", "switch_change", role="model")),
    Headline("switch_accuracy_change", "accuracy at the strongest switch penalty minus none (paired)",
             _finding("switch", "by_strength", "{strongest}", "accuracy_change", role="model")),
    Headline("format_new", "the new answer format on new problems", _roles("format", "new_format")),
    Headline("format_old", "the old answer format on new problems (the failure)", _roles("format", "old_format")),
    Headline("instruction_accuracy", "right under its own training instruction", _roles("instruction", "accuracy")),
    Headline("instruction_held_out", "follows the held-out instruction", _roles("instruction", "held_out_follows")),
]
"""A pair run's findings stage (`experiments.pairs.findings`); absent from runs without it."""
PAIRS = PAIRS + PAIR_FINDINGS

def _cliff(which: str) -> Callable[[dict], dict[str, Any]]:
    """`cliff.<model>.<which>` (plain or tool accuracy past the trained lengths) of every model."""
    return lambda r: _present({m: dig(c, (which,)) for m, c in (r.get("cliff") or {}).items()})


def _at_strongest(key: str) -> Callable[[dict], dict[str, Any]]:
    """`switch.by_strength.<strongest>.<key>` of every model the switch sweep ran on."""
    def get(r: dict) -> dict[str, Any]:
        out = {}
        for m, b in (r.get("behavior") or {}).items():
            sw = b.get("switch") if isinstance(b, dict) else None
            if sw:
                out[m] = dig(sw, ("by_strength", sw["strongest"], key))
        return _present(out)
    return get


def _held_out(r: dict) -> dict[str, Any]:
    """`instruction.follows.<held-out instruction>` of every model the instruction sweep ran on."""
    out = {}
    for m, b in (r.get("behavior") or {}).items():
        ins = b.get("instruction") if isinstance(b, dict) else None
        if ins:
            out[m] = dig(ins, ("follows", ins["held_out"][0]))
    return _present(out)


FINDINGS = [h for h in ORGANISMS if h.name != "gap_recovered_follow"] + [
    Headline("no_cot_accuracy", "accuracy with the answer forced right after the question", per_model("no_cot_accuracy")),
    Headline("paraphrase_same_answer", "the answer after the CoT paraphrased = the answer after the own CoT",
             per_model("paraphrase_accuracy", "same_answer")),
    Headline("cot_length", "mean CoT length (tokens)", per_model("cot_length")),
    Headline("beyond_plain", "accuracy past the trained chain lengths, plain decoding", _cliff("plain")),
    Headline("beyond_tool", "accuracy past the trained chain lengths, calculator in the loop", _cliff("tool")),
    Headline("compress_length_cut", "CoT length under compression steering against none (relative, paired; the "
             "layer and scale chosen on other problems)", per_model("compress", "length_cut")),
    Headline("compress_accuracy_change", "accuracy under compression steering minus none (paired)",
             per_model("compress", "accuracy_change")),
    Headline("compress_speedup", "generation time without steering / with it, one problem at a time",
             per_model("compress", "speedup")),
    Headline("switch_rate_change", "switch rate at the strongest penalty minus none (paired)",
             _at_strongest("switch_change")),
    Headline("switch_accuracy_change", "accuracy at the strongest switch penalty minus none (paired)",
             _at_strongest("accuracy_change")),
    Headline("format_new", "a task change's new output format on new problems", per_model("format", "new_format")),
    Headline("format_accuracy", "right, in the new output format, on new problems", per_model("format", "accuracy")),
    Headline("instruction_held_out", "follows the held-out instruction", _held_out),
]
"""The findings study (an organisms report without caches, SAEs or steering, plus the cliff)."""

HEADLINE = {"organisms": ORGANISMS, "pairs": PAIRS, "findings": FINDINGS}


def study_of_report(report: dict) -> str:
    """The study of a report.json: a pair run's names its models (as its config does); a
    findings run's says so."""
    if "models" in report:
        return "pairs"
    return "findings" if report.get("study") == "findings" else "organisms"


def metric_values(report: dict) -> dict[str, dict]:
    """Every headline metric of one report: {key: {"metric", "subject", "description",
    "value"}}, "value" the number (a summary's "value"; None where nothing was measured)."""
    out = {}
    for h in HEADLINE[study_of_report(report)]:
        for subject, x in h.get(report).items():
            value = x.get("value") if isinstance(x, dict) else x
            out[f"{h.name}:{subject}"] = {"metric": h.name, "subject": subject, "description": h.description,
                                          "value": None if value is None else float(value)}
    return out
