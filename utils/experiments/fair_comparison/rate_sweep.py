"""Every method at its own best learning rate: the fair comparison's rate sweep.

The study trains every normalization at one base rate, chosen for the four together
(utils.recipe); a method compared at a rate tuned for the others may only be slower to
learn. This sweep trains each method at batch 32 with the study's schedule (÷10 at 50%
and 75% of the epochs) at the base rates `LEARNING_RATES`, with every seed of the
profile, and picks each method's rate by the rule of `utils.rates` (collapse excluded,
lowest mean over seeds, one more rate beyond the edge when the best is on it), fixed
before its runs finished.

Once the parallel mixture's rate is chosen, the sweep adds its control at that rate: the
same layer with s fixed at 0.5, so that a gain of the mixture can be told from a gain of
learning s. Runs that repeat another experiment's (the study's rate, the recipe sweep's
seed 0, WS and the mixtures at 0.003) reuse them.
"""

from __future__ import annotations

from types import MappingProxyType

from utils.experiment import Experiment
from utils.experiment import Table
from utils.experiments.recipe_sweep import DECAY_FRACTIONS
from utils.rates import RateRule

RATE_SWEEP = "rate_sweep"
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03)
# Every method of the comparison: a label and the RunConfig fields that make it.
METHODS = {
    "BN": dict(norm="batch"),
    "LN": dict(norm="layer"),
    "IN": dict(norm="instance"),
    "GN": dict(norm="group"),
    "BN+WS": dict(norm="batch", weight_standardization=True),
    "GN+WS": dict(norm="group", weight_standardization=True),
    "GN+BN parallel": dict(norm="gn_plus_parallel"),
    "GN+BN BN-first": dict(norm="gn_plus_bn_first"),
}
# The mixtures' control (utils.norms): the parallel mixture with s fixed at 0.5.
FIXED_MIXTURE = "gn_plus_parallel_fixed"
RULE = RateRule(
    RATE_SWEEP,
    MappingProxyType(METHODS),
    LEARNING_RATES,
    MappingProxyType(dict(batch_size=32, lr_decay_fractions=DECAY_FRACTIONS)),
)


def run_fields(method, rate):
    """The RunConfig fields of one method at one base rate."""
    return RULE.run_fields(method, rate)


def best_rates(source="results", *, seeds=None):
    """Each method's rate by the rule (`utils.rates.RateRule.best_rates`)."""
    return RULE.best_rates(source, seeds=seeds)


def rate_table(source="results", *, seeds=None):
    """One row per method: its validation error at each base rate and the rate the rule
    picks so far (`utils.rates.RateRule.table`)."""
    return RULE.table(
        source,
        seeds=seeds,
        caption=(
            "Rate sweep ({context}), batch 32, ÷10 at 50% and 75% of the epochs: validation error (%, median of the "
            "last 5 epochs), mean ± sd over seeds, by base learning rate."
        ),
    )


def chosen_rates(results_dir, seeds):
    """{method: chosen base rate} of the methods whose rate the rule has chosen."""
    return RULE.chosen_rates(results_dir, seeds)


def more_runs(results_dir, seeds):
    """The runs the rules add as the sweep finishes: the rates beyond the edge
    (`utils.rates.RateRule.added_runs`), and the mixtures' control, the parallel mixture
    with s fixed at 0.5, at the rate chosen for the parallel mixture."""
    runs = RULE.added_runs(results_dir, seeds)
    parallel = chosen_rates(results_dir, seeds).get("GN+BN parallel")
    if parallel is not None:
        runs.append(dict(run_fields("GN+BN parallel", parallel), norm=FIXED_MIXTURE))
    return runs


EXPERIMENTS = (
    Experiment(
        RATE_SWEEP,
        "fair_comparison",
        "every method at batch 32 and four base rates, each seed: its best rate",
        runs=tuple(run_fields(method, rate) for method in METHODS for rate in LEARNING_RATES),
        more_runs=more_runs,
        tables=(
            Table(
                "Rate sweep: validation error by base rate, batch 32",
                "utils.experiments.fair_comparison.rate_sweep:rate_table",
            ),
            Table(
                "Table 1 at each method's own rate",
                "utils.experiments.fair_comparison.analysis:table1",
            ),
            Table(
                "Weight Standardization at each method's own rate",
                "utils.experiments.fair_comparison.analysis:weight_standardization_table",
            ),
            Table(
                "GN+BN mixtures at each method's own rate",
                "utils.experiments.fair_comparison.analysis:mixtures_table",
            ),
        ),
        measurements=("utils.mixtures:mixing_measurement",),
    ),
)
