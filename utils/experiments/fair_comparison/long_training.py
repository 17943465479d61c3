"""Trained long enough to tell: 30 epochs at each method's own best rate.

In 10 epochs every model of the study still learns when the rate is cut, and training
error about equals validation error, so a gap may be speed, not end point. This
experiment trains three times as long (÷10 at 50% and 75% of the epochs, as the study)
at the base rate the rate sweep chose for each method (utils.experiments.fair_comparison.rate_sweep),
scaled by the linear rule at smaller batches: BN and GN at batch 32, 8 and 2; GN+WS and
the BN-first mixture at 32; BN and GN without weight decay at 32. A method's runs are
added once its rate is chosen, so the grid grows as the sweep finishes.
"""

from utils.experiment import Experiment
from utils.experiment import TRAINING_MODE
from utils.experiment import Figure
from utils.experiment import Table
from utils.experiments.fair_comparison import rate_sweep
from utils.experiments.study import THREE_BATCH_SIZES

LONG_TRAINING = "long_training"
EPOCHS = 30
BATCH_SIZES = THREE_BATCH_SIZES
# (method of the rate sweep, batch sizes, other fields)
PLAN = (
    ("BN", BATCH_SIZES, {}),
    ("GN", BATCH_SIZES, {}),
    ("GN+WS", (32,), {}),
    ("GN+BN BN-first", (32,), {}),
    ("BN", (32,), {"weight_decay": 0.0}),
    ("GN", (32,), {"weight_decay": 0.0}),
)


def chosen_runs(results_dir, seeds):
    """The runs of `PLAN` whose method has a chosen rate in the results folder."""
    rates = rate_sweep.chosen_rates(results_dir, seeds)
    return [
        dict(rate_sweep.run_fields(method, rates[method]), batch_size=batch_size, **fields)
        for method, batch_sizes, fields in PLAN
        if method in rates
        for batch_size in batch_sizes
    ]


EXPERIMENTS = (
    Experiment(
        LONG_TRAINING,
        "fair_comparison",
        "BN and GN at batch 32, 8, 2 and more, 30 epochs at each one's best rate",
        runs=(),
        epochs={"cpu": EPOCHS, "paper": EPOCHS},
        more_runs=chosen_runs,
        tables=(
            Table(
                "Table 2 trained three times as long",
                "utils.experiments.fair_comparison.analysis:table2",
            ),
            Table(
                "How hard the weight decay pulls",
                "utils.experiments.fair_comparison.analysis:weight_decay_table",
            ),
            Table(
                "Each claim at the shared rate and at each method's own",
                "utils.experiments.fair_comparison.analysis:claims_table",
            ),
        ),
        figures=(
            Figure(
                "utils.experiments.fair_comparison.figures:plot_long_training",
                f"BN and GN at batch 32, 8 and 2: validation error and {TRAINING_MODE} by epoch, mean and ±1 "
                "sd over seeds, the study's 10 epochs at the shared rate beside 30 epochs at each one's own rate",
            ),
            Figure(
                "utils.experiments.fair_comparison.figures:plot_long_training_others",
                f"Batch 32, 30 epochs at each method's own rate: {TRAINING_MODE} and validation error by epoch of BN, "
                "GN, GN+WS, the BN-first GN+BN mixture, and BN and GN without weight decay, mean and ±1 sd "
                "over seeds",
            ),
        ),
        measurements=("utils.mixtures:mixing_measurement",),
    ),
)
