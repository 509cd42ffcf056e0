"""The literature table of a pair run: one row per finding its `findings` stage measured
(the paper's result beside ours on the real model, and the claim's status)."""

from __future__ import annotations

from features.fmt import cell, change, fixed
from experiments.report.findings import _signed_cell as signed

CLAIM_OF = {"switch": "switch_penalty_helps", "compress": "compression_keeps_accuracy", "format": "dpo_fixes_format",
            "instruction": "instructions_barely_matter"}


def _ours(part: str, f: dict) -> tuple[str, str]:
    """(ours, control) cells of one finding."""
    if part == "compress":
        if f.get("skipped"):
            return f"`{f['model']}`: not measured ({f['skipped']})", "-"
        rand = f.get("random_direction") or {}
        return (f"`{f['model']}`, {f['n_pairs']} pairs, layer {f['layer']}, scale {f['scale']}: CoT length "
                f"{change(f['length_cut'])}, accuracy {signed(f['accuracy_change'])}, speed-up "
                f"{fixed(f['timing']['speedup'], 2)}x", f"random direction: length {change(rand.get('length_cut'))}, "
                f"accuracy {signed(rand.get('accuracy_change'))}")
    if part == "switch":
        def at(m: dict) -> str:
            top = m["by_strength"][m["strongest"]]
            return (f"`{m['model']}`, penalty {m['strongest']}: switch rate {signed(top['switch_change'])}, "
                    f"accuracy {signed(top['accuracy_change'])}, CoT length {change(top['length_change'])}")
        return at(f["model"]), at(f["control"]) if f.get("control") else "-"
    if part == "format":
        ms = f["models"]
        rates = lambda r: (f"`{ms[r]['model']}` ({r}): new format {cell(ms[r]['new_format'])}, old "  # noqa: E731
                           f"{cell(ms[r]['old_format'])}, right in it {cell(ms[r]['accuracy'])}")
        return (f"{rates('dpo')}; {rates('sft')}; DPO - SFT new format {signed(f['dpo_vs_sft']['new_format'])}",
                rates("floor") if "floor" in ms else "-")
    ms = f["models"]
    rates = lambda r: (f"`{ms[r]['model']}` ({r}): accuracy {cell(ms[r]['accuracy'])}, follows the held-out "  # noqa: E731
                       f"one {cell(ms[r]['held_out_follows'])}")
    return "; ".join(rates(r) for r in ("correct", "empty", "wrong")), rates("floor") if "floor" in ms else "-"


def pair_findings_rows(report: dict) -> list[dict]:
    """[{finding, source, paper, ours, control, claim, status}] in the findings' order."""
    from experiments.findings import BY_NAME

    status = {c["claim"]: c["status"] for c in report.get("claims") or []}
    rows = []
    for part, f in (report.get("findings") or {}).items():
        lit = BY_NAME[CLAIM_OF[part]]
        ours, control = _ours(part, f)
        rows.append({"finding": lit.finding, "source": lit.source, "paper": lit.paper, "ours": ours,
                     "control": control, "claim": CLAIM_OF[part], "status": status.get(CLAIM_OF[part], "-")})
    return rows
