"""Every figure of a run, drawn from the numbers saved beside it.

    experiments.figures.style      the shared style: STYLE, PANEL, PALETTE, MARKERS, model_colors,
                                   variant_styles, line, interval, error_bars, new_figure, new_grid,
                                   annotated_heatmap
    experiments.figures.registry   render_figure, save_figure, write_figures, redraw_run,
                                   figure_names; the `figure` decorator a figure module registers with
    experiments.figures.behaviour  BEHAVIOUR names, behaviour_figures(results, n_steps)
    experiments.figures.sae        SAE names, sae_figures(eval, models)
    experiments.figures.elicit     ELICIT names, elicit_figures(features, steering)
    experiments.figures.pairs      PAIR names, pair_figures(behavior, steering)

Each group's entry returns `{figure name: data}`, the numbers each figure draws (what
`figures/NAME.json` holds); `registry.write_figures(datas, out)` draws and saves them. The
registry finds the figure modules itself (every module of this package), so nothing here
imports them; import the submodules by their full names.
"""
