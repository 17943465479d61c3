"""The recipe sweep: the base learning rate of the study, chosen by a rule (utils.recipe).

BN, LN, IN and GN at batch 32, seed 0, at several base rates with the rate divided by 10
at 50% and 75% of the epochs; beside them, the paper's schedule (÷10 at 30%, 60%, 90%) at
the first study's rate, for comparison (those runs are the first study's).
"""

from utils.config import PAPER_DECAY_FRACTIONS
from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table
from utils.experiments.study import NORMS

RECIPE_SWEEP = "recipe_sweep"
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03)
# The sweep's schedule keeps the base rate for half of training.
DECAY_FRACTIONS = (0.5, 0.75)

EXPERIMENTS = (
    Experiment(
        RECIPE_SWEEP,
        None,
        "BN, LN, IN and GN at batch 32 and four base rates, seed 0: the study's rate",
        runs=tuple(
            dict(
                norm=norm,
                batch_size=32,
                base_learning_rate=rate,
                lr_decay_fractions=DECAY_FRACTIONS,
            )
            for norm in NORMS
            for rate in LEARNING_RATES
        )
        + tuple(
            dict(
                norm=norm,
                batch_size=32,
                base_learning_rate=0.003,
                lr_decay_fractions=PAPER_DECAY_FRACTIONS,
            )
            for norm in NORMS
        ),
        seeds=(0,),
        figures=(
            Figure(
                "utils.plots:plot_recipe_sweep",
                "Validation error against the base learning rate at batch 32, the recipe sweep",
            ),
        ),
        tables=(Table("Choosing the recipe (recipe sweep)", "utils.recipe:recipe_table"),),
        findings="utils.recipe:verdict",
    ),
)
