"""GN and BN with and without Weight Standardization (the runs without are the sweep's)."""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table
from utils.experiments.study import THREE_BATCH_SIZES

WEIGHT_STANDARDIZATION = "weight_standardization"
BATCH_SIZES = THREE_BATCH_SIZES

EXPERIMENTS = (
    Experiment(
        WEIGHT_STANDARDIZATION,
        "beyond_the_paper",
        "GN and BN with and without WS at batch 32, 8 and 2",
        runs=tuple(
            dict(norm=norm, batch_size=batch, weight_standardization=standardized)
            for norm in ("group", "batch")
            for standardized in (True, False)
            for batch in BATCH_SIZES
        ),
        figures=(
            Figure(
                "utils.experiments.beyond_the_paper.figures:plot_weight_standardization",
                "BN and GN with and without Weight Standardization by batch size, mean and ±1 sd over "
                "seeds",
            ),
        ),
        tables=(
            Table(
                "Weight Standardization",
                "utils.experiments.beyond_the_paper.analysis:weight_standardization_table",
            ),
        ),
        findings="utils.experiments.beyond_the_paper.analysis:conclusions",
    ),
)
