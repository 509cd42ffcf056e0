"""Several seeds of one config as one result: `saelab sweep` and `saelab aggregate`.

    experiments.aggregate.headline   HEADLINE[study]: the metrics summarised, each a getter over
                                     report.json; metric_values(report)
    experiments.aggregate.combine    aggregate_report(reports): per metric the mean over seeds,
                                     its between-seed 95% t interval, n and each seed's value
    experiments.aggregate.runs       load_runs(paths): finished runs of one config but the seed
    experiments.aggregate.markdown   render_markdown(aggregate): aggregate.md
    experiments.aggregate.figure     the aggregate's figure and its data
    experiments.aggregate.sweepdir   SweepDir (runs/NAME/seed-<S>/, aggregate.*), the output
                                     folder rule, write_aggregate

The commands are in `experiments.commands.sweep`.
"""

from experiments.aggregate.combine import aggregate_report
from experiments.aggregate.headline import HEADLINE

__all__ = ["HEADLINE", "aggregate_report"]
