"""The report's rows for the literature's findings (`experiments.findings`): the
literature table (paper beside ours, paired, with intervals) and the execution cliff's
summary, including the findings measured by sweeps of their own (compression, the switch
penalty, a task change's format, instructions)."""

from __future__ import annotations

from typing import Callable

from features.fmt import cell, change, fixed


def cliff_summary(results: dict[str, dict], trained_max: int) -> dict:
    """Per model with a cliff: accuracy past the trained lengths (k > `trained_max`) with plain
    decoding and with the calculator, each a rate over those problems (Wilson)."""
    from experiments.behavior.cliff import beyond

    out = {}
    for v, r in results.items():
        if r.get("cliff"):
            plain = beyond(r["cliff"], trained_max, "accuracy")
            out[v] = {"plain": plain, "tool": beyond(r["cliff"], trained_max, "tool_accuracy"),
                      "ks": plain["ks"], "trained_max": trained_max}
    return out


def findings_rows(report: dict, paired: dict[str, Callable]) -> list[dict]:
    """The literature table's rows, one per finding this run measured (`experiments.findings`):
    the paper's result, ours (variant and control against the base, paired, on the same
    problems) and the claim's status. `paired` is the report's metric getters by name
    (`experiments.report.organisms.PAIRED`)."""
    from experiments.findings import FINDINGS

    status = {c["claim"]: c["status"] for c in report.get("claims") or []}
    results, pairs = report["behavior"], report.get("paired_vs_reference") or {}
    k = str(report.get("faithfulness_k", "2"))

    def ours(v: str | None, f) -> str:
        if v is None:
            return "-"
        if v not in results:
            return f"`{v}` not in this run"
        d = (pairs.get(v, {}).get(f.metric) or {}).get("relative" if f.relative else "difference")
        get = paired[f.metric]
        new, old = get(results[v], k) or {}, get(results[report["reference"]], k) or {}
        shown = change(d) if f.relative else _signed_cell(d)
        return f"`{v}` {fixed(new.get('value'), 2)} vs base {fixed(old.get('value'), 2)}: {shown}"

    rows = []
    for f in FINDINGS:
        if f.name not in status:
            continue
        if f.metric == "cliff":
            c = (report.get("cliff") or {}).get(report["reference"], {})
            mine = (f"{report['reference']}, k = {min(c['ks'])}..{max(c['ks'])}: {cell(c['plain'])} plain, "
                    f"{cell(c['tool'])} with the calculator" if c.get("ks") else "no k past the trained lengths measured")
            control = "-"
        elif f.metric in ("compress", "switch", "format", "instruction"):
            mine, control = _sweep_cells(results, f)
        else:
            mine, control = ours(f.variant, f), ours(f.control, f)
        rows.append({"claim": f.name, "finding": f.finding, "source": f.source, "paper": f.paper, "ours": mine,
                     "control": control, "status": status[f.name]})
    return rows


def _sweep_cells(results: dict, f) -> tuple[str, str]:
    """(ours, control) of a finding measured by a sweep of its own: steering against no
    steering, the penalty against none (each paired), a task change's format rates, the
    instructions followed."""
    m = (results.get(f.variant) or {}).get(f.metric)
    if not m or m.get("skipped"):
        return f"`{f.variant}`: not measured" + (f" ({m['skipped']})" if m else ""), "-"
    if f.metric in ("format", "instruction"):
        def rates(model: str) -> str:
            x = (results.get(model) or {}).get(f.metric)
            if not x:
                return f"`{model}`: not measured"
            if f.metric == "format":
                return (f"`{model}`: new format {cell(x['new_format'])}, old format {cell(x['old_format'])}, "
                        f"right in the new format {cell(x['accuracy'])}")
            return f"`{model}` follows " + ", ".join(
                f"{op}{' (held out)' if op in x['held_out'] else ''} {cell(c)}" for op, c in x["follows"].items())
        return rates(f.variant), "; ".join(rates(c) for c in (f.control, *f.others) if c) or "-"
    if f.metric == "compress":
        rand = m.get("random_direction") or {}
        return (f"`{f.variant}`, layer {m['layer']}, scale {m['scale']:g}: CoT length {change(m['length_cut'])}, "
                f"accuracy {_signed_cell(m['accuracy_change'])}, speed-up {fixed((m['speedup'] or {}).get('value'), 2)}x",
                f"random direction: length {change(rand.get('length_cut'))}, "
                f"accuracy {_signed_cell(rand.get('accuracy_change'))}")

    def at(model: str) -> str:
        sw = (results.get(model) or {}).get("switch") or {}
        top = (sw.get("by_strength") or {}).get(sw.get("strongest")) or {}
        if not top:
            return f"`{model}`: not measured"
        return (f"`{model}`, penalty {sw['strongest']}: switch rate {_signed_cell(top['switch_change'])}, "
                f"accuracy {_signed_cell(top['accuracy_change'])}, CoT length {change(top['length_change'])}")

    return at(f.variant), at(f.control) if f.control else "-"


def _signed_cell(d: dict | None) -> str:
    if not d or d.get("value") is None:
        return "n/a"
    ci = d.get("ci95")
    return f"{d['value']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
