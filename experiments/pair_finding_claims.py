"""The claims of the literature's findings on a real model (a pair run's `findings` stage,
`experiments.pairs.findings`): the organisms' four finding claims (`experiments.finding_claims`),
under the same names and thresholds, read from report.json's `findings` section.
`experiments.claims` adds each to a pair run that measured it."""

from __future__ import annotations

from experiments.claim_checks import Claim, combine, number, side, within
from experiments.finding_claims import MIN_PAIRS


def _f(r: dict, part: str) -> dict:
    return (r.get("findings") or {}).get(part) or {}


def _compression(r: dict):
    c = _f(r, "compress")
    rand = c.get("random_direction") or {}
    nums = [number(f"{c.get('model')} CoT length, steered vs not, relative change (paired; layer {c.get('layer')}, "
                   f"scale {c.get('scale')})", c.get("length_cut")),
            number("accuracy, steered - not (paired)", c.get("accuracy_change")),
            number("control: a random direction of the same norm, CoT length relative change", rand.get("length_cut")),
            number("speed-up, one problem at a time (not checked)", (c.get("timing") or {}).get("speedup"))]
    if (c.get("n_pairs") or 0) < MIN_PAIRS:
        return "undecided", nums + [number("verbose/concise pairs the vector was made from", c.get("n_pairs"))]
    return combine([side(nums[0], "<", -0.5), within(nums[1], 0.02), side(nums[2], ">", -0.2)]), nums


def _switch(r: dict):
    s = _f(r, "switch")
    m, ctl = s.get("model") or {}, s.get("control") or {}
    top = m.get("strongest")
    at = (m.get("by_strength") or {}).get(top) or {}
    cat = (ctl.get("by_strength") or {}).get(top) or {}
    nums = [number(f"{m.get('model')} switch rate, penalty {top} - none (paired)", at.get("switch_change")),
            number(f"{m.get('model')} accuracy, penalty {top} - none (paired)", at.get("accuracy_change")),
            number(f"control {ctl.get('model')} accuracy, penalty {top} - none (paired)", cat.get("accuracy_change")),
            number("CoT length, relative change (not checked)", at.get("length_change"))]
    checks = [side(nums[0], "<", 0.0), side(nums[1], ">", 0.0)] + ([within(nums[2], 0.05)] if ctl else [])
    return combine(checks), nums


def _format(r: dict):
    f = _f(r, "format")
    d, ms = f.get("dpo_vs_sft") or {}, f.get("models") or {}
    nums = [number("dpo - sft new-format rate on new problems (paired)", d.get("new_format")),
            number("dpo - sft accuracy in the new format (paired)", d.get("accuracy")),
            number("sft old-format rate, the failure (not checked)", (ms.get("sft") or {}).get("old_format"))]
    return combine([side(nums[0], ">", 0.0), side(nums[1], ">", 0.0)]), nums


def _instructions(r: dict):
    i = _f(r, "instruction")
    vs, ms = i.get("vs_correct") or {}, i.get("models") or {}
    nums = [number("empty - correct, follows the held-out instruction (paired)",
                   (vs.get("empty") or {}).get("held_out_follows")),
            number("wrong - correct (paired)", (vs.get("wrong") or {}).get("held_out_follows")),
            number("empty - correct accuracy under its own instruction (not checked)",
                   (vs.get("empty") or {}).get("accuracy")),
            number("wrong - correct accuracy (not checked)", (vs.get("wrong") or {}).get("accuracy")),
            number("the untuned model follows the held-out instruction, the floor (not checked)",
                   (ms.get("floor") or {}).get("held_out_follows"))]
    follows = ((ms.get("correct") or {}).get("held_out_follows") or {}).get("value")
    if follows is not None and follows < FLOOR:  # nothing to compare: "equal at zero" is no evidence
        return "undecided", nums + [number(f"the correct fine-tune follows the held-out instruction (below {FLOOR:g}: "
                                           "no comparison)", ms["correct"]["held_out_follows"])]
    return combine([within(nums[0], 0.05), within(nums[1], 0.05)]), nums


FLOOR = 0.05
"""Below this held-out follow rate of the correct-instruction fine-tune the instruction claim
is undecided: every fine-tune at zero agrees without telling anything."""


PAIR_FINDING_CLAIMS = {
    "compress": Claim("compression_keeps_accuracy", "One difference-of-means vector from the model's own verbose "
                      "CoTs against the concise gold ones (at least 20 pairs), added at the layer and scale chosen on "
                      "other problems, cuts the CoT by more than 50% with accuracy within 0.02 (paired); a random "
                      "direction of the same norm cuts less than 20%.", _compression),
    "switch": Claim("switch_penalty_helps", "The strongest thought-switch penalty lowers the switching fine-tune's "
                    "switch rate and raises its accuracy (paired against no penalty, both past 0), and leaves the "
                    "accuracy of the control, which does not switch, within 0.05.", _switch),
    "format": Claim("dpo_fixes_format", "On new problems of a task change learned from few examples, TRL's DPO with "
                    "the old format as the rejected answer writes the new format more often than SFT on the same "
                    "examples, and answers right in it more often (paired differences > 0).", _format),
    "instruction": Claim("instructions_barely_matter", "Fine-tunes on an empty or a wrong instruction, with the right "
                         "outputs, follow an instruction no fine-tune saw within 0.05 of the correct-instruction "
                         "fine-tune (paired; Kung & Peng: 'comparable'); undecided when that one follows it on fewer "
                         "than 5% of the problems.", _instructions),
}
"""The claim of each finding a pair run can measure, by its `findings` part."""


def pair_finding_claims(report: dict) -> list[Claim]:
    """The claims of the findings this pair run measured, in the findings' order."""
    done = report.get("findings") or {}
    return [c for part, c in PAIR_FINDING_CLAIMS.items() if part in done]
