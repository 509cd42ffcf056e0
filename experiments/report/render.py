"""The report's templates (`templates/*.md.j2`, shipped with the package) and how they are
rendered: Jinja2, no escaping (Markdown), an error for any undefined name, block tags on
lines of their own leave no blank line, and every formatter of `features.fmt` is a filter
(`{{ c | cell(3) }}`, `{{ x | pct }}`, ...).

    render(template, **context) -> str
"""

from __future__ import annotations

from functools import lru_cache

import jinja2

from features.fmt import FILTERS


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment of the report templates."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("experiments.report", "templates"), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(FILTERS)
    return env


def render(template: str, **context) -> str:
    """Template `template` (a file name under templates/) rendered with `context`."""
    return environment().get_template(template).render(**context)
