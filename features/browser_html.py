"""The feature browser as a static site: plain HTML, one stylesheet and one script, no
network (open `index.html` from disk).

    OUT/index.html                   the models, with their SAE's alive/dead/dense counts, and
                                     the elicitation dictionaries
    OUT/assets/browser.css, .js      copied from features/browser_assets
    OUT/<folder>/index.html          every latent with every score: sort, filter, search
    OUT/<folder>/latents/<i>.html    one page per latent

`render_site(views, out, ...)` takes one `ModelView` per dictionary (a model's SAE, or one of
the elicit stage's SAEs, transcoders and crosscoders; built from a run directory by
`experiments.browse`); its folder is the model's name or the view's own `folder`. Pages are
rendered with Jinja2 (autoescaped: token strings are text).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from features.fmt import FILTERS, fixed, sig

ASSETS = Path(__file__).with_name("browser_assets")
STYLE_CSS = ASSETS / "browser.css"
ROLE_CLASSES = ("question", "step", "answer")
FEATURES_TAGS = ("reasoning / value / causal = chosen by the features stage (top ReasonScore, top value AUROC, "
                 "harmful exact ablation)")
"""What the tags of a model's SAE mean (the index page says it)."""


@dataclass
class Column:
    """One sortable score of the index."""

    key: str
    label: str
    values: list
    """One value per latent (None where undefined)."""
    help: str = ""


@dataclass
class ModelView:
    """What the browser shows for one model's SAE."""

    name: str
    sae: str
    """The SAE's folder, relative to the run directory."""
    hook: str
    data: dict
    """`features.browser.latent_data` on this model's cache."""
    tokens: list[str]
    """Token id -> display string."""
    columns: list[Column] = field(default_factory=list)
    """Scores from the features stage, one value per latent."""
    chosen: dict[str, list[int]] = field(default_factory=dict)
    """Tag -> latents (reasoning, value, causal)."""
    label_names: dict[str, list[str]] = field(default_factory=dict)
    """Label -> names of its values (e.g. role -> question, step, answer); others show numbers."""
    compare: list[dict] = field(default_factory=list)
    """Other models read through this SAE: {"model", "density", "mean" (roles, d_sae), "roles"}."""
    logits: dict | None = None
    """`features.browser.logit_effects`."""
    steering: dict[int, list[dict]] = field(default_factory=dict)
    """Latent -> steering rows that include it."""
    note: str = ""
    """Said at the top of its index page."""
    folder: str = ""
    """The site folder of its pages (empty: `name`)."""
    section: Literal["models", "elicit"] = "models"
    """Where the site index lists it: the models' SAEs, or the elicitation dictionaries."""
    kind: str = "SAE"
    """What the dictionary is (SAE, transcoder, crosscoder), for the site index."""
    rows_note: str = ""
    """Which rows of the cache the statistics come from (said on every page of the view)."""
    explanations: list[dict | None] | None = None
    """Per latent its ground-truth explanation (`features.explain.explanation_record`) or None."""
    logits_label: str = ""
    """What `logits` is of (e.g. "variant decoder"; empty: the decoder)."""
    more_logits: dict[str, dict] = field(default_factory=dict)
    """Label -> `logit_effects` of another decoder (a crosscoder's base decoder)."""
    tags_help: str = FEATURES_TAGS
    """What the tags of `chosen` mean."""
    filter_tag: str = "reasoning"
    """The tag the index page's checkbox filters on."""


def explanation_columns(explanations: list[dict | None] | None) -> list[Column]:
    """The index columns of per-latent explanations: the text and its held-out precision and
    recall (none without explanations)."""
    if not explanations:
        return []
    get = lambda k: [None if e is None else e.get(k) for e in explanations]  # noqa: E731
    return [Column("explanation", "explanation", get("text"),
                   "the ground-truth label predicate (or conjunction of two) that best predicts where the latent "
                   "fires, chosen on 4/5 of the examples (features.explain)"),
            Column("explanation_precision", "precision (held-out)", get("precision"),
                   "of the explanation, on the held-out examples: the fraction of firings where it holds"),
            Column("explanation_recall", "recall (held-out)", get("recall"),
                   "of the explanation, on the held-out examples: the fraction of tokens where it holds that fire")]


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(FILTERS)  # the numbers as the report writes them: {{ x|sig(4) }}
    return env


def _tags(view: ModelView, dense: float) -> list[list[str]]:
    d = view.data["density"]
    tags = [[] for _ in d]
    for tag, latents in view.chosen.items():
        for i in latents:
            if tag not in tags[i]:
                tags[i].append(tag)
    for i, x in enumerate(d):
        if x == 0:
            tags[i].append("dead")
        elif x > dense:
            tags[i].append("dense")
    return tags


def _bars_svg(values: list[float], labels: list[str], width: int = 420, height: int = 120, color: str = "#3a7bd5",
              title: str = "") -> str:
    """A small bar chart as inline SVG (no image files, no scripts); None values draw no bar."""
    import html

    labels = [html.escape(str(x)) for x in labels]
    title = html.escape(title)
    values = [0.0 if v is None else float(v) for v in values]
    n = max(len(values), 1)
    top = max([v for v in values if v is not None] + [1e-12])
    bw = (width - 40) / n
    out = [f'<svg width="{width}" height="{height + 30}" role="img" aria-label="{title}">']
    for j, v in enumerate(values):
        h = 0 if not v or v < 0 else v / top * height
        x = 30 + j * bw
        out.append(f'<rect x="{fixed(x, 1)}" y="{fixed(height - h + 5, 1)}" width="{fixed(max(bw - 1, 1), 1)}" '
                   f'height="{fixed(h, 1)}" fill="{color}"><title>{labels[j]}: {sig(v, 4)}</title></rect>')
        if n <= 8 or j % -(-n // 5) == 0:  # at most ~5 labels on a long axis
            out.append(f'<text x="{fixed(x + bw / 2, 1)}" y="{height + 18}" text-anchor="middle">{labels[j]}</text>')
    out.append(f'<text x="2" y="12">{sig(top, 3)}</text><text x="2" y="{height + 5}">0</text></svg>')
    return "".join(out)


def context_html(ctx: dict, latent: int, peak: float, tokens: list[str], label_names: dict) -> str:
    """One context (from `latent_data(...)["contexts"]`) as HTML: each token's background is
    this latent's activation (relative to `peak`), its underline the token's role, the token
    the context was chosen for outlined. Needs the browser's stylesheet (`STYLE_CSS`)."""
    import html

    acts = ctx["acts"][latent] if latent in ctx["acts"] else ctx["acts"][str(latent)]
    roles = ctx["labels"].get("role")
    spans = []
    for t, (tid, a) in enumerate(zip(ctx["tokens"], acts)):
        alpha = 0.0 if peak <= 0 else min(max(a / peak, 0.0), 1.0)
        role = roles[t] if roles is not None else -1
        cls = ["tok"] + ([f"role-{ROLE_CLASSES[role]}"] if 0 <= role < len(ROLE_CLASSES) else []) + (
            ["at"] if t == ctx["at"] else [])
        rname = label_names.get("role", [])[role] if roles is not None and 0 <= role < len(label_names.get("role", [])) \
            else str(role)
        tip = f"act {sig(a, 3)} · {rname}"
        spans.append(f'<span class="{" ".join(cls)}" style="background:rgba(255,120,0,{fixed(alpha, 2)})" '
                     f'title="{html.escape(tip)}">{html.escape(tokens[tid])}</span>')
    return f'<div class="ctx" data-act="{sig(acts[ctx["at"]], 4)}">{"".join(spans)}</div>'


def _number(v):
    """A JSON-safe cell: floats rounded, NaN and inf as null (JSON.parse rejects them)."""
    if isinstance(v, float):
        return float(sig(v, 6)) if math.isfinite(v) else None  # significant digits: scores ~1e-8 stay
    return v


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return sig(v, 4)
    return str(v)


def _logit_sets(view: ModelView, i: int) -> list[dict]:
    """Latent `i`'s logit effects of each decoder the view has: {"title", "id", "pos", "neg"}."""
    sets = ([(view.logits_label, view.logits)] if view.logits else []) + list(view.more_logits.items())
    return [{"title": label, "id": "" if k == 0 else f"-{k}",
             "pos": [(view.tokens[t], v) for t, v in zip(e["pos"][i], e["pos_value"][i])],
             "neg": [(view.tokens[t], v) for t, v in zip(e["neg"][i], e["neg_value"][i])]}
            for k, (label, e) in enumerate(sets)]


def _render_view(env, view: ModelView, out: Path, dense: float) -> tuple[list[Path], dict]:
    """One dictionary's index and latent pages; returns them and its site-index row."""
    d = view.data
    d_sae = len(d["density"])
    tags = _tags(view, dense)
    folder = out / (view.folder or view.name)
    (folder / "latents").mkdir(parents=True, exist_ok=True)
    cols = [Column("latent", "latent", list(range(d_sae))),
            Column("density", "density", d["density"], "fraction of the tokens read where the latent is active"),
            Column("max", "max act", d["max"]),
            Column("mean_active", "mean act (active)", d["mean_active"])] + view.columns
    rows = [{c.key: _number(c.values[i]) for c in cols} | {"tags": tags[i]} for i in range(d_sae)]
    default = next((c.key for c in view.columns if c.key == "reason_score"), "density")
    payload = json.dumps({"columns": [{"key": c.key, "label": c.label, "help": c.help} for c in cols],
                          "rows": rows, "default_sort": default}, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/")  # inside <script>: never close the tag
    top_link = "all dictionaries" if view.section == "elicit" else "all models"
    (folder / "index.html").write_text(env.get_template("model_index.html").render(
        model=view.name, d_sae=d_sae, sae=view.sae, hook=view.hook, note=view.note, n_rows=d["n_rows"],
        rows_note=view.rows_note, tags_help=view.tags_help, filter_tag=view.filter_tag, top_link=top_link,
        dense_pct=sig(100 * dense), data=payload))
    pages = [folder / "index.html"]
    tmpl = env.get_template("latent.html")
    names = view.label_names
    for i in range(d_sae):
        peak = d["max"][i]
        groups = []
        for g, gd in d["groups"].items():
            labels = [names[g][v] if g in names and v < len(names[g]) else str(v) for v in gd["values"]]
            groups.append({"name": g, "svg": _bars_svg([row[i] for row in gd["mean"]], labels,
                                                          title=f"mean activation by {g}")})
        bins = d["bins"]
        hist_labels = [f"{sig(peak * j / bins, 3)}-{sig(peak * (j + 1) / bins, 3)}" for j in range(bins)]
        sampled = []
        nq = d["quantiles"]
        for interval in sorted({s["interval"] for s in d["sampled"][i]}, reverse=True):
            cs = [context_html(d["contexts"][s["row"]], i, peak, view.tokens, names)
                  for s in d["sampled"][i] if s["interval"] == interval]
            sampled.append((f"activation {sig(peak * interval / nq, 3)} to {sig(peak * (interval + 1) / nq, 3)} "
                            f"({interval + 1} of {nq} equal intervals of the max)", cs))
        compare = [{"model": c["model"], "density": c["density"][i], "means": [row[i] for row in c["mean"]]}
                   for c in view.compare]
        page = tmpl.render(
            model=view.name, i=i, prev=i - 1 if i > 0 else None, next=i + 1 if i + 1 < d_sae else None,
            tags=tags[i], sae=view.sae, hook=view.hook, density=d["density"][i],
            active=sum(d["hist"][i]), n_rows=d["n_rows"], rows_note=view.rows_note, max=peak,
            mean_active=d["mean_active"][i],
            explanation=view.explanations[i] if view.explanations and i < len(view.explanations) else None,
            hist_svg=_bars_svg(d["hist"][i], hist_labels, color="#e07b00", title="activation histogram"),
            bins=bins, scores=[(c.label, _fmt(c.values[i])) for c in view.columns], groups=groups,
            compare=compare, compare_roles=view.compare[0]["roles"] if view.compare else [],
            logit_sets=_logit_sets(view, i), steering=view.steering.get(i, []),
            top=[context_html(d["contexts"][t["row"]], i, peak, view.tokens, names) for t in d["top"][i]],
            sampled=sampled)
        (folder / "latents" / f"{i}.html").write_text(page)
        pages.append(folder / "latents" / f"{i}.html")
    summary = {"name": view.name, "folder": folder.name, "sae": view.sae, "hook": view.hook, "kind": view.kind,
               "d_sae": d_sae, "alive": sum(x > 0 for x in d["density"]), "dead": sum(x == 0 for x in d["density"]),
               "dense": sum("dense" in t for t in tags), "reasoning": len(view.chosen.get("reasoning", [])),
               "n_rows": d["n_rows"], "n_total": d.get("n_total", d["n_rows"]),
               "explained": ("not computed" if view.explanations is None
                             else sum(e is not None for e in view.explanations))}
    return pages, summary


def render_site(views: list[ModelView], out: Path, run: str, built: str, dense: float,
                elicit_rows: int | None = None) -> list[Path]:
    """Write the site into `out` (an empty or new folder). Returns the pages written.
    `elicit_rows`: the row limit the elicitation dictionaries were read with (the index says it)."""
    env = _env()
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ("browser.css", "browser.js"):
        shutil.copyfile(ASSETS / name, out / "assets" / name)
    pages, summary = [], {"models": [], "elicit": []}
    for view in views:
        p, row = _render_view(env, view, out, dense)
        pages += p
        summary[view.section].append(row)
    hook = next((v.hook for v in views if v.section == "models"), "")
    (out / "index.html").write_text(env.get_template("site_index.html").render(
        run=run, built=built, hook=hook, models=summary["models"], elicit=summary["elicit"], elicit_rows=elicit_rows))
    pages.append(out / "index.html")
    return pages
