"""Depth: the paper's comparison on a residual network that two CPU cores train.

The study's network has two normalization layers; the paper's claims are about deep
residual networks. These experiments train ResNet-10 (utils.models.resnet10: basic
blocks, 64 to 256 channels, the last gamma of each block starting at 0) on the study's
data, with the study's schedule (÷10 at 50% and 75% of the epochs), for `EPOCHS` epochs.

- `depth_sweep`: BN and GN at batch 32, seed 0, base rates `LEARNING_RATES`; each one's
  rate by the rule of utils.rates (collapse excluded, the best not on the edge).
- `depth_grid`: at those rates (scaled by batch/32), BN and GN at batch 32, 8 and 2, LN and IN
  at 32, and GN with G = 8 and G = 64 at 32 (at GN's rate), every seed of the profile. A
  method's runs join the grid once its rate is chosen. LN and IN were first trained at
  GN's rate (they are GN with one group and with one channel per group); the sweep now
  chooses their own, and their runs at GN's rate stay in the grid until it has.
"""

from types import MappingProxyType

from utils.experiment import Experiment
from utils.experiment import TRAINING_MODE
from utils.experiment import Figure
from utils.experiment import Table
from utils.experiments.recipe_sweep import DECAY_FRACTIONS
from utils.experiments.study import THREE_BATCH_SIZES
from utils.rates import RateRule

DEPTH_SWEEP = "depth_sweep"
DEPTH = "depth_grid"
MODEL = "resnet10"
# Enough for ResNet-10's training error to fall well below the small CNN's, and few
# enough that the sweep and the grid fit the 12 hours of wall time (two workers on two
# cores) that the epoch times of benchmarks/model_benchmark.py predicted; the report's
# depth section gives the hours they took.
EPOCHS = 15
LEARNING_RATES = (0.01, 0.03, 0.1, 0.3)
# The sweep trains one seed; its rule decides on that seed alone.
SWEEP_SEEDS = (0,)
METHODS = {
    "BN": dict(norm="batch"),
    "GN": dict(norm="group"),
    "LN": dict(norm="layer"),
    "IN": dict(norm="instance"),
}
RULE = RateRule(
    DEPTH_SWEEP,
    MappingProxyType(METHODS),
    LEARNING_RATES,
    MappingProxyType(dict(model=MODEL, batch_size=32, lr_decay_fractions=DECAY_FRACTIONS)),
)
# (method whose rate is used, RunConfig fields, batch sizes), in the order they train.
PLAN = (
    ("BN", dict(norm="batch"), THREE_BATCH_SIZES),
    ("GN", dict(norm="group"), THREE_BATCH_SIZES),
    ("LN", dict(norm="layer"), (32,)),
    ("IN", dict(norm="instance"), (32,)),
    ("GN", dict(norm="group", groups=8), (32,)),
    ("GN", dict(norm="group", groups=64), (32,)),
)
# Until the sweep has chosen LN's and IN's own rates, they train at this method's.
FIRST_RATE_OF = {"LN": "GN", "IN": "GN"}


def rate_table(source="results", *, seeds=SWEEP_SEEDS):
    """The depth sweep's validation error by base rate and the rate its rule picks."""
    return RULE.table(
        source,
        seeds=seeds,
        caption=(
            "ResNet-10 rate sweep ({context}), batch 32, seed 0, ÷10 at 50% and 75% of the epochs: validation error "
            "(%, median of the last 5 epochs) by base learning rate."
        ),
    )


def chosen_runs(results_dir, seeds):
    """The runs of `PLAN` whose rate the depth sweep has chosen (seed 0 decides it)."""
    rates = RULE.chosen_rates(results_dir, SWEEP_SEEDS)
    for method, stand_in in FIRST_RATE_OF.items():
        if method not in rates and stand_in in rates:
            rates[method] = rates[stand_in]
    return [
        dict(
            fields,
            model=MODEL,
            batch_size=batch_size,
            base_learning_rate=rates[rate_of],
            lr_decay_fractions=DECAY_FRACTIONS,
        )
        for rate_of, fields, batch_sizes in PLAN
        if rate_of in rates
        for batch_size in batch_sizes
    ]


EXPERIMENTS = (
    Experiment(
        DEPTH_SWEEP,
        "depth",
        "ResNet-10: BN, GN, LN and IN at batch 32 and four base rates, seed 0: each one's rate",
        runs=tuple(RULE.run_fields(method, rate) for method in METHODS for rate in LEARNING_RATES),
        seeds=SWEEP_SEEDS,
        epochs={"cpu": EPOCHS, "paper": EPOCHS},
        more_runs=RULE.added_runs,
        tables=(
            Table(
                "ResNet-10 rate sweep: validation error by base rate, batch 32",
                "utils.experiments.depth:rate_table",
            ),
        ),
    ),
    Experiment(
        DEPTH,
        "depth",
        "ResNet-10: BN and GN at batch 32, 8 and 2, LN, IN and GN with G = 8 and 64 at 32",
        runs=(),
        epochs={"cpu": EPOCHS, "paper": EPOCHS},
        more_runs=chosen_runs,
        tables=(
            Table(
                "Table 1 on ResNet-10 beside the small CNN",
                "utils.experiments.depth.analysis:table1",
            ),
            Table(
                "Table 2 on ResNet-10 beside the small CNN",
                "utils.experiments.depth.analysis:table2",
            ),
        ),
        findings="utils.experiments.depth.analysis:conclusions",
        figures=(
            Figure(
                "utils.experiments.depth.figures:plot_depth_comparison",
                f"ResNet-10 at batch 32: BN, LN, IN and GN, {TRAINING_MODE} and validation error by epoch, "
                "mean and ±1 sd over seeds (Figure 4 analogue)",
            ),
            Figure(
                "utils.experiments.depth.figures:plot_depth_batch_sizes",
                f"The small CNN (left) and ResNet-10 (right): BN and GN at batch 32, 8 and 2, validation error "
                f"and {TRAINING_MODE} by epoch, mean and ±1 sd over seeds (Figure 5 analogue)",
            ),
        ),
    ),
)
