"""Claims as predicates over report.json: thresholds flip the status, intervals make it
undecided, missing numbers never fail, seeds combine, and `saelab claims` exits 1 on a
failing claim."""

from __future__ import annotations

import json

import pytest

from experiments.claims import FINDING_CLAIMS, ORGANISM_CLAIMS, claims_for, evaluate, failed, format_table, over_seeds, side, within


def report(follow_main: float, ci=None, follow_base: float = 1.0) -> dict:
    """The smallest organisms report the `stops_following` claim reads."""
    def s(v, c=None):
        return {"value": v, "ci95": c, "n": 100}

    return {"behavior": {"base": {"corruption_follow_rate": s(follow_base, [0.96, 1.0])},
                         "main": {"corruption_follow_rate": s(follow_main, ci)}},
            "elicitation": {"variants": {"main": {"best": {}}}}}


CLAIM = [c for c in ORGANISM_CLAIMS if c.name == "stops_following"]


def test_a_claim_flips_from_holds_to_fails_when_its_number_crosses_the_threshold():
    assert evaluate(report(0.49, [0.40, 0.499]), CLAIM)[0]["status"] == "holds"
    assert evaluate(report(0.51, [0.45, 0.56]), CLAIM)[0]["status"] == "fails"
    # on the claimed side, but the interval reaches across: undecided, not holds
    assert evaluate(report(0.45, [0.38, 0.52]), CLAIM)[0]["status"] == "undecided"
    # and the base's side of it
    assert evaluate(report(0.1, [0.05, 0.15], follow_base=0.85), CLAIM)[0]["status"] == "fails"
    row = evaluate(report(0.49, [0.40, 0.499]), CLAIM)[0]
    assert row["numbers"][0] == {"name": "main corruption follow", "value": 0.49, "ci95": [0.40, 0.499], "n": 100}


def test_sides_and_bounds_by_hand():
    x = lambda v, ci=None: {"value": v, "ci95": ci}  # noqa: E731
    assert side(x(0.3), "<", 0.5) == "holds" and side(x(0.7), "<", 0.5) == "fails"
    assert side(x(0.3, [0.2, 0.6]), "<", 0.5) == "undecided" and side(x(None), ">", 0) == "undecided"
    assert side(x(0.9, [0.85, 0.95]), ">", 0.8) == "holds" and side(x(0.9, [0.75, 0.95]), ">", 0.8) == "undecided"
    assert within(x(0.03, [-0.02, 0.04]), 0.05) == "holds" and within(x(-0.06), 0.05) == "fails"
    assert within(x(0.01, [-0.07, 0.05]), 0.05) == "undecided"


def test_every_organism_claim_is_undecided_not_failed_on_an_empty_report():
    table = evaluate({"behavior": {}}, ORGANISM_CLAIMS)
    assert {r["status"] for r in table} == {"undecided"} and failed(table) == []
    assert len({r["claim"] for r in table}) == len(ORGANISM_CLAIMS)


def test_over_seeds_holds_on_every_seed_and_fails_on_half():
    hold, fail = evaluate(report(0.1, [0.05, 0.2]), CLAIM), evaluate(report(0.9, [0.8, 0.95]), CLAIM)
    und = evaluate(report(0.45, [0.38, 0.52]), CLAIM)
    assert over_seeds({"0": hold, "1": hold, "2": hold})[0]["status"] == "holds"
    assert over_seeds({"0": hold, "1": und, "2": hold})[0]["status"] == "undecided"
    assert over_seeds({"0": hold, "1": fail, "2": hold})[0]["status"] == "undecided"
    assert over_seeds({"0": fail, "1": fail, "2": hold})[0]["status"] == "fails"
    t = over_seeds({"0": hold, "1": fail})
    assert t[0]["seeds"] == {"0": "holds", "1": "fails"} and "seed 1: fails" in format_table(t)


def test_the_claims_command_prints_the_table_and_exits_1_on_a_failing_claim(tmp_path, capsys):
    from experiments.cli import main
    from experiments.runconfig import RunConfig
    from experiments.config import to_dict
    import yaml

    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(RunConfig())))
    assert main(["claims", str(run)]) == 2
    assert "needs the 'report' stage" in capsys.readouterr().err
    good = report(0.1, [0.05, 0.2]) | {"seed": 0}
    (run / "report.json").write_text(json.dumps(good))
    assert main(["claims", str(run)]) == 0  # stops_following holds; the rest undecided
    out = capsys.readouterr().out
    assert "| stops_following | **holds** |" in out and "| patching_restores | **undecided** |" in out
    (run / "report.json").write_text(json.dumps(report(0.9, [0.8, 0.95]) | {"seed": 0}))
    assert main(["claims", str(run)]) == 1
    assert "| stops_following | **fails** |" in capsys.readouterr().out
    assert main(["claims", str(tmp_path / "nothing")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", [c.name for c in ORGANISM_CLAIMS + FINDING_CLAIMS])
def test_each_claim_has_a_statement_with_its_threshold(name):
    c = next(c for c in ORGANISM_CLAIMS + FINDING_CLAIMS if c.name == name)
    assert any(ch.isdigit() for ch in c.statement), c.statement  # the threshold is stated in words


def test_findings_claims_join_an_organisms_run_only_where_their_variant_was_trained():
    names = lambda r: [c.name for c in claims_for(r)]  # noqa: E731
    assert names({"behavior": {"base": {}, "sft-noisy-trace": {}}}) == [c.name for c in ORGANISM_CLAIMS]
    assert names({"behavior": {"base": {}, "sft-hollow-steps": {}}})[-1] == "infogain_fixed_scorer_falls"
    assert names({"behavior": {"base": {}}, "cliff": {"base": {}}})[-1] == "tool_lifts_cliff"
    assert names({"study": "findings"}) == [c.name for c in FINDING_CLAIMS]


def test_finding_claims_by_hand():
    def summary(value, lo, hi):
        return {"value": value, "ci95": [lo, hi]}

    def paired(**metrics):  # the relative change is given a value no claim checks, so a claim reading it fails
        return {m: {"difference": d, "relative": {"value": 9.0, "ci95": [8.0, 10.0]}} if m not in RELATIVE else
                {"difference": {"value": 9.0, "ci95": [8.0, 10.0]}, "relative": d} for m, d in metrics.items()}

    RELATIVE = ("info_gain_ppl", "abstention_recall", "info_gain_per_step")
    r = {"study": "findings", "faithfulness_k": "2", "behavior": {"base": {}},
         "paired_vs_reference": {
            "sft-paraphrase": paired(paraphrase_same_answer=summary(0.0, -0.02, 0.01)),
            "sft-truncated-cot": paired(early_answering_aoc=summary(-0.3, -0.36, -0.25)),
            "sft-cot": paired(early_answering_aoc=summary(0.01, -0.03, 0.04), filler_accuracy=summary(0.0, -0.05, 0.05)),
            "sft-filler": paired(filler_accuracy=summary(0.12, -0.01, 0.2)),
            "sft-paraphrase-ignore": paired(paraphrase_same_answer=summary(-0.8, -0.86, -0.74)),
            "sft-hollow-steps": paired(info_gain_ppl=summary(-0.4, -0.45, -0.35), accuracy=summary(-0.01, -0.03, 0.0),
                                       info_gain_per_step=summary(-0.5, -0.6, -0.4)),
            "sft-reasoning": paired(abstention_recall=summary(-0.2, -0.25, -0.15))}}
    r["behavior"] |= {
        "sft-verbosity": {"compress": {"n_pairs": 36, "length_cut": summary(-0.6, -0.65, -0.55),
                                       "accuracy_change": summary(0.0, -0.01, 0.01),
                                       "random_direction": {"length_cut": summary(-0.05, -0.1, 0.0)}}},
        "sft-switch": {"switch": {"strongest": "8", "by_strength": {"8": {
            "switch_change": summary(-0.4, -0.45, -0.35), "accuracy_change": summary(0.2, 0.15, 0.25)}}}},
        "base": {"switch": {"strongest": "8", "by_strength": {"8": {"accuracy_change": summary(0.0, 0.0, 0.0)}}}}}
    got = {row["claim"]: row["status"] for row in evaluate(r)}
    # filler: +0.12 is above 0 but its interval reaches -0.01: undecided; no cliff measured
    assert got == {"truncation_invariance": "holds", "filler_invariance": "undecided",
                   "paraphrase_invariance": "holds", "infogain_fixed_scorer_falls": "holds",
                   "abstention_lost_to_reasoning": "holds", "tool_lifts_cliff": "undecided",
                   "compression_keeps_accuracy": "holds", "switch_penalty_helps": "holds",
                   "dpo_fixes_format": "undecided", "instructions_barely_matter": "undecided"}
    def rates(*flags):  # a pooled rate with its per-problem data, as the sweeps write them
        from features.stats import pooled

        return pooled(list(flags), range(len(flags)), kind="rate")

    # format: DPO writes the new format on 3 of 4 problems where SFT does on 1 (both right when they do)
    r["behavior"] |= {"sft-format": {"format": {"new_format": rates(1, 0, 0, 0), "accuracy": rates(1, 0, 0, 0),
                                                "old_format": rates(0, 1, 1, 1)}},
                      "dpo-format": {"format": {"new_format": rates(1, 1, 1, 0), "accuracy": rates(1, 1, 1, 0)}}}
    # instructions: + and * seen, - held out; the claim reads the held-out one (zero-shot), where the
    # controls follow it as often as the correct-instruction fine-tune here
    follows = lambda *held: {"follows": {"+": rates(1, 1), "*": rates(1, 1), "-": rates(*held)},  # noqa: E731
                                         "held_out": "-"}
    r["behavior"] |= {"sft-instruction": {"instruction": follows(1, 1)},
                      "sft-instruction-empty": {"instruction": follows(1, 1)},
                      "sft-instruction-wrong": {"instruction": follows(1, 1)}}
    got = {row["claim"]: row["status"] for row in evaluate(r)}
    # +0.5 with only 4 problems: its interval reaches 0, undecided; the instructions: equal, no spread
    assert got["dpo_fixes_format"] == "undecided" and got["instructions_barely_matter"] == "holds"
    r["behavior"]["dpo-format"]["format"] = {"new_format": rates(0, 0, 0, 0), "accuracy": rates(0, 0, 0, 0)}
    r["behavior"]["sft-instruction-wrong"]["instruction"] = follows(0, 0)
    got = {row["claim"]: row["status"] for row in evaluate(r)}
    assert got["dpo_fixes_format"] == "fails" and got["instructions_barely_matter"] == "fails"
    comp, sw = r["behavior"]["sft-verbosity"]["compress"], r["behavior"]["sft-switch"]["switch"]["by_strength"]["8"]
    comp["random_direction"]["length_cut"] = summary(-0.3, -0.35, -0.25)  # any push of that size cuts too
    comp["accuracy_change"] = summary(-0.01, -0.03, 0.0)  # within 0.02, but its interval is not
    sw["accuracy_change"] = summary(-0.01, -0.05, 0.03)
    got = {row["claim"]: row["status"] for row in evaluate(r)}
    assert got["compression_keeps_accuracy"] == "fails" and got["switch_penalty_helps"] == "fails"
    comp["random_direction"]["length_cut"] = summary(-0.05, -0.1, 0.0)
    assert {row["claim"]: row["status"] for row in evaluate(r)}["compression_keeps_accuracy"] == "undecided"
    comp |= {"accuracy_change": summary(0.0, -0.01, 0.01), "n_pairs": 5}  # too few pairs for a vector to mean much
    assert {row["claim"]: row["status"] for row in evaluate(r)}["compression_keeps_accuracy"] == "undecided"
    r["paired_vs_reference"]["sft-hollow-steps"]["accuracy"]["difference"] = summary(-0.2, -0.25, -0.15)
    assert {row["claim"]: row["status"] for row in evaluate(r)}["infogain_fixed_scorer_falls"] == "fails"
