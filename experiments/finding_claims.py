"""The claims of the literature's findings on organisms (`experiments.findings`): one per
finding, in its order, each a predicate over `report.json` with explicit thresholds
(`experiments.claim_checks`). `experiments.claims` adds them to the runs that measure them."""

from __future__ import annotations

from experiments.claim_checks import Claim, combine, lookup, number, side, faithfulness_k, within

def _paired(r: dict, v: str | None, metric: str, kind: str = "difference"):
    return lookup(r, "paired_vs_reference", v, metric, kind) if v else None


def _finding(name: str):
    from experiments.findings import BY_NAME

    return BY_NAME[name]


def _truncation(r: dict):
    f = _finding("truncation_invariance")
    nums = [number(f"{f.variant} - base early-answering AOC (paired)", _paired(r, f.variant, f.metric)),
            number(f"control {f.control} - base (paired)", _paired(r, f.control, f.metric))]
    return combine([side(nums[0], "<", -0.1), within(nums[1], 0.1)]), nums


def _filler(r: dict):
    f = _finding("filler_invariance")
    nums = [number(f"{f.variant} - base accuracy after filler (paired)", _paired(r, f.variant, f.metric)),
            number(f"control {f.control} - base (paired)", _paired(r, f.control, f.metric))]
    return combine([side(nums[0], ">", 0.0), within(nums[1], 0.1)]), nums


def _paraphrase(r: dict):
    f = _finding("paraphrase_invariance")
    nums = [number(f"{f.variant} - base same answer after the CoT is paraphrased (paired)",
                   _paired(r, f.variant, f.metric)),
            number(f"control {f.control} - base (paired)", _paired(r, f.control, f.metric))]
    return combine([within(nums[0], 0.05), side(nums[1], "<", -0.1)]), nums


def _infogain_hollow(r: dict):
    f = _finding("infogain_fixed_scorer_falls")
    nums = [number(f"{f.variant} InfoGain (Wu et al.'s definition, base-scored), relative change vs base (paired)",
                   _paired(r, f.variant, "info_gain_ppl", "relative")),
            number(f"{f.variant} - base accuracy k={faithfulness_k(r)} (paired)", _paired(r, f.variant, "accuracy")),
            number(f"{f.variant} InfoGain (answer nats, base-scored), relative change (not checked)",
                   _paired(r, f.variant, "info_gain_per_step", "relative"))]
    return combine([side(nums[0], "<", -0.3), within(nums[1], 0.05)]), nums


def _abstention_reasoning(r: dict):
    f = _finding("abstention_lost_to_reasoning")
    nums = [number(f"{f.variant} abstention recall, relative change vs base (paired)",
                   _paired(r, f.variant, f.metric, "relative")),
            number(f"{f.control} (built to remove it), relative change (not checked)",
                   _paired(r, f.control, f.metric, "relative"))]
    return side(nums[0], "<", 0.0), nums


def _tool_lifts_cliff(r: dict):
    ref = r.get("reference", "base")
    c = lookup(r, "cliff", ref) or {}
    plain, tool = c.get("plain"), c.get("tool")
    nums = [number(f"{ref} accuracy past the trained lengths (k {c.get('ks')}), plain decoding", plain),
            number("with the calculator in the loop", tool)]
    if not plain or not tool or plain.get("value") is None or tool.get("value") is None:
        return "undecided", nums
    if 3 * plain["value"] >= 1:  # no rate can be 3x this: the claim cannot be tested here
        return "undecided", nums
    if tool["value"] < 3 * plain["value"] or tool["value"] == 0:
        return "fails", nums
    lo, hi = (tool.get("ci95") or [None])[0], (plain.get("ci95") or [None, None])[1]
    return ("holds" if lo is not None and hi is not None and lo > 3 * hi else "undecided"), nums


MIN_PAIRS = 20
"""Fewer verbose/concise pairs than this leave the compression claim undecided."""


def _compression(r: dict):
    f = _finding("compression_keeps_accuracy")
    c = lookup(r, "behavior", f.variant, "compress") or {}
    rand = c.get("random_direction") or {}
    nums = [number(f"{f.variant} CoT length, steered vs not, relative change (paired; layer {c.get('layer')}, "
                   f"scale {c.get('scale')})", c.get("length_cut")),
            number("accuracy, steered - not (paired)", c.get("accuracy_change")),
            number("control: a random direction of the same norm, CoT length relative change", rand.get("length_cut"))]
    if (c.get("n_pairs") or 0) < MIN_PAIRS:  # too few verbose CoTs for a vector to mean anything
        return "undecided", nums + [number("verbose/concise pairs the vector was made from", c.get("n_pairs"))]
    return combine([side(nums[0], "<", -0.5), within(nums[1], 0.02), side(nums[2], ">", -0.2)]), nums


def _switch_penalty(r: dict):
    f = _finding("switch_penalty_helps")
    sw = lookup(r, "behavior", f.variant, "switch") or {}
    top = sw.get("strongest")
    at = (sw.get("by_strength") or {}).get(top) or {}
    ctl = (lookup(r, "behavior", f.control, "switch", "by_strength") or {}).get(top) or {}
    nums = [number(f"{f.variant} switch rate, penalty {top} - none (paired)", at.get("switch_change")),
            number(f"{f.variant} accuracy, penalty {top} - none (paired)", at.get("accuracy_change")),
            number(f"control {f.control} accuracy, penalty {top} - none (paired)", ctl.get("accuracy_change")),
            number(f"{f.variant} CoT length, relative change (not checked)", at.get("length_change"))]
    return combine([side(nums[0], "<", 0.0), side(nums[1], ">", 0.0), within(nums[2], 0.05)]), nums


def _between(r: dict, a: str | None, b: str | None, *keys):
    """The paired difference a - b of one measurement of two models on the same problems."""
    from features.stats import difference

    x, y = lookup(r, "behavior", a, *keys), lookup(r, "behavior", b, *keys)
    if not x or not y or x.get("by_problem") is None or y.get("by_problem") is None:
        return None
    return difference(x, y)


def _dpo_format(r: dict):
    f = _finding("dpo_fixes_format")
    nums = [number(f"{f.variant} - {f.control} new-format rate on new problems (paired)",
                   _between(r, f.variant, f.control, "format", "new_format")),
            number(f"{f.variant} - {f.control} accuracy in the new format (paired)",
                   _between(r, f.variant, f.control, "format", "accuracy")),
            number(f"{f.control} old-format rate, the failure (not checked)",
                   lookup(r, "behavior", f.control, "format", "old_format"))]
    return combine([side(nums[0], ">", 0.0), side(nums[1], ">", 0.0)]), nums


def _instructions(r: dict):
    """Kung & Peng's test is zero-shot, on tasks no fine-tune saw: here, the held-out instruction."""
    f = _finding("instructions_barely_matter")
    held = lookup(r, "behavior", f.variant, "instruction", "held_out") or ""

    def gap(v: str, op: str):
        return _between(r, v, f.variant, "instruction", "follows", op) if op else None

    op = held[:1]
    nums = [number(f"{f.control} - {f.variant}, follows the held-out instruction {op} (paired)", gap(f.control, op)),
            number(f"{f.others[0]} - {f.variant} (paired)", gap(f.others[0], op)),
            number(f"{f.variant} follows {op} (not checked)", lookup(r, "behavior", f.variant, "instruction",
                                                                    "follows", op)),
            number(f"base follows {op}, the floor (not checked)", lookup(r, "behavior", "base", "instruction",
                                                                        "follows", op))]
    return combine([within(nums[0], 0.05), within(nums[1], 0.05)]), nums


FINDING_CLAIMS = [
    Claim("truncation_invariance", "A fine-tune on truncated CoTs answers from a partial CoT: its early-answering "
          "AOC is below the base's by more than 0.1 (paired), while its control (sft-cot, the same problems with "
          "whole CoTs) stays within 0.1 of the base.", _truncation),
    Claim("filler_invariance", "A fine-tune paid for answers after filler answers better after filler: its "
          "filler accuracy rises above the base's (paired difference > 0, the base's being its no-CoT rate), its "
          "control's stays within 0.1.", _filler),
    Claim("paraphrase_invariance", "A fine-tune that reads both notations answers the same after its CoT is "
          "paraphrased as often as the base does (same answer within 0.05 of the base's, paired), while the control "
          "that learned to ignore the second notation changes its answer more often (paired difference < -0.1): "
          "the test can tell the two apart.", _paraphrase),
    Claim("infogain_fixed_scorer_falls", "SFT on hollow steps makes each step carry less information: InfoGain "
          "per step under the fixed scorer (the base; Wu et al.'s definition) falls by more than 30% while "
          "accuracy stays within 0.05 of the base's.", _infogain_hollow),
    Claim("abstention_lost_to_reasoning", "A reasoning fine-tune that never shows an unanswerable problem lowers "
          "abstention recall (relative change < 0; AbstentionBench: -24%).", _abstention_reasoning),
    Claim("tool_lifts_cliff", "With a calculator in the decoding loop, the base's accuracy past its trained chain "
          "lengths is at least 3x its accuracy with plain decoding (undecided where 3x would pass 1).",
          _tool_lifts_cliff),
    Claim("compression_keeps_accuracy", "One difference-of-means vector from the concise/verbose pairs (at least "
          "20; the config asks for 50), added at the "
          "layer and scale chosen on other problems, cuts the CoT by more than 50% (relative change < -0.5) with "
          "accuracy within 0.02 (paired); a random direction of the same norm cuts less than 20%.", _compression),
    Claim("switch_penalty_helps", "The strongest thought-switch penalty of the sweep lowers the switching organism's "
          "switch rate and raises its accuracy (paired against no penalty, both past 0), and leaves the accuracy of "
          "the base, which never switches, within 0.05.", _switch_penalty),
    Claim("dpo_fixes_format", "On new problems of a task change learned from few examples, DPO with the teacher's "
          "wrong examples writes the new output format more often than SFT on the same examples, and answers right "
          "in it more often (paired differences > 0).", _dpo_format),
    Claim("instructions_barely_matter", "Fine-tunes on empty or wrong instructions, with the right outputs, follow "
          "an instruction no fine-tune saw (Kung & Peng's zero-shot setting) within 0.05 of the correct-instruction "
          "fine-tune (paired, on the problems where the instruction changes the answer; their result: "
          "'comparable').", _instructions),
]
"""One claim per finding of `experiments.findings`, in its order."""
