"""How saelab writes a number for people: the one formatting module of the reports, the
figures' labels and the feature browser, so the same number reads the same everywhere.

Summaries are the dicts the metrics produce, `{"value", "ci95": [lo, hi] or None, "n"}`;
every function returns a string and writes a missing value as "-" unless it says otherwise.

    cell(c, digits=2)     "0.50 [0.30, 0.70] n=20"; "-" without a value
    value(x, digits=2)    a summary as `cell` (n also when nothing was measured: "- (n=0)"),
                          a float with `digits` decimals, anything else as str()
    sci(c)                "-0.012 [-0.02, -0.0051] n=20": 2 significant digits (log-probabilities)
    pct(x)                a relative change: "+12.5%"; "n/a" for None
    change(d)             a paired change with its interval: "+12.5% [+3.1, +20.0]"; "n/a" for None
    null(n)               a null distribution: "null median +2% [+0, +6], intervention at percentile 97 (...)"
    gap(g)                a gap recovered with its interval: "+42% [+10, +70]"; without a gap
                          the steered rate: "no gap; 0.40"
    recovered(c)          CE recovered with its clean-to-ablated gap: "0.812 (1.25)"
    fixed(x, digits=3)    fixed decimals: "0.125"; "-" for None
    signed(x, digits=2)   significant digits with a sign: "+0.012"
    sig(x, digits=None)   significant digits ("%g" without digits): "0.0123", "2.5"
    percent(x, sign=False) a fraction as a whole percentage: "42%", with sign "+42%"
    mib(n_bytes)          bytes in MiB with one decimal: "0.9"
"""

from __future__ import annotations


def fixed(x: float | None, digits: int = 3) -> str:
    """`x` with `digits` decimals; "-" for None."""
    return "-" if x is None else f"{x:.{digits}f}"


def sig(x: float, digits: int | None = None) -> str:
    """`x` in `digits` significant digits (Python's "g"; its default of 6 without `digits`)."""
    return f"{x:g}" if digits is None else f"{x:.{digits}g}"


def signed(x: float, digits: int = 2) -> str:
    """`x` in `digits` significant digits, always with its sign."""
    return f"{x:+.{digits}g}"


def percent(x: float, sign: bool = False) -> str:
    """A fraction as a whole percentage ("42%"; "+42%" with `sign`)."""
    return f"{x:+.0%}" if sign else f"{100 * x:.0f}%"


def pct(x: float | None) -> str:
    """A relative change as a signed percentage with one decimal; "n/a" for None."""
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def change(d: dict | None) -> str:
    """A paired relative change {"value", "ci95"} as a signed percentage with its interval."""
    if not d or d.get("value") is None:
        return "n/a"
    ci = d.get("ci95")
    return pct(d["value"]) + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")


def null(n: dict | None) -> str:
    """A control's null distribution of gap recovered: its median, 95% band and where the
    intervention falls in it; "-" without draws."""
    if not n or not n.get("n"):
        return "-"
    lo, hi = n["band95"]
    s = f"null median {100 * n['median']:+.0f}% [{100 * lo:+.0f}, {100 * hi:+.0f}]"
    if n.get("percentile") is not None:
        s += f", intervention at percentile {100 * n['percentile']:.0f} (p={n['p_value']:.2f}, {n['n']} draws)"
    return s


def cell(c: dict | None, digits: int = 2) -> str:
    """A summary as value [95% interval] n=sample size; "-" without a value."""
    if not c or c.get("value") is None:
        return "-"
    s = f"{c['value']:.{digits}f}"
    if c.get("ci95"):
        s += f" [{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]"
    return s + f" n={c['n']}"


def value(x, digits: int = 2) -> str:
    """A summary as `cell`, saying n also where nothing was measured ("- (n=0)"); a float
    with `digits` decimals; anything else as itself; "-" for None."""
    if x is None:
        return "-"
    if isinstance(x, dict):
        return f"- (n={x.get('n', 0)})" if x.get("value") is None else cell(x, digits)
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def sci(c: dict) -> str:
    """A mean with its interval in 2 significant digits (log-probabilities near 0)."""
    lo, hi = c["ci95"] or (None, None)
    return f"{c['value']:.2g}" + (f" [{lo:.2g}, {hi:.2g}]" if lo is not None else "") + f" n={c['n']}"


def gap(g: dict) -> str:
    """A gap recovered as a signed percentage with its interval; where base and variant agree
    (no gap) what steering did to the rate itself."""
    if g.get("value") is None:
        return "-" if g.get("steered") is None else f"no gap; {g['steered']:.2f}"
    if not g.get("ci95"):
        return f"{100 * g['value']:+.0f}%"
    lo, hi = g["ci95"]
    return f"{100 * g['value']:+.0f}% [{100 * lo:+.0f}, {100 * hi:+.0f}]"


def recovered(c: dict) -> str:
    """CE recovered with the clean-to-ablated gap (nats) it is a fraction of."""
    if c.get("ce_recovered") is None:
        return "-"
    return f"{c['ce_recovered']:.3f} ({c['ce_gap']:.2f})"


def mib(n_bytes: int) -> str:
    """A size in MiB with one decimal."""
    return f"{n_bytes / 2**20:.1f}"


FILTERS = {f.__name__: f for f in (fixed, sig, signed, percent, pct, change, null, cell, value, sci, gap, recovered,
                                   mib)}
"""Every formatter by name, for a template engine (the report registers them as Jinja2 filters)."""
