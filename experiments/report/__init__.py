"""A run's report: report.json (every number) and report.md (rendered from templates).

    experiments.report.organisms   build_report, render_markdown, LITERATURE, FIGURE_CAPTIONS,
                                   relative_change: the organisms run's report
    experiments.report.summaries   sae_summary, elicit_summary: its sae and elicitation sections
    experiments.report.pairs       build_report, render_markdown: a model-pair run's report
    experiments.report.render      render(template, **context): the templates under templates/,
                                   with every formatter of `features.fmt` as a filter

Import the submodules by their full names.
"""
