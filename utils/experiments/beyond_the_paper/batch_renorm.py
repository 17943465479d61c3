"""Batch Renormalization beside BN and GN (the paper compares them at 4 images per GPU)."""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table

BATCH_RENORM = "batch_renorm"
BATCH_SIZES = (32, 8, 4, 2)

EXPERIMENTS = (
    Experiment(
        BATCH_RENORM,
        "beyond_the_paper",
        "Batch Renorm, BN and GN at batch 32, 8, 4 and 2",
        runs=tuple(
            dict(norm=norm, batch_size=batch)
            for norm in ("batch_renorm", "batch", "group")
            for batch in BATCH_SIZES
        ),
        figures=(
            Figure(
                "utils.experiments.beyond_the_paper.figures:plot_batch_renorm",
                "Batch Renorm beside BN and GN by batch size, mean and ±1 sd over seeds",
            ),
        ),
        tables=(
            Table(
                "Batch Renorm beside BN and GN",
                "utils.experiments.beyond_the_paper.analysis:batch_renorm_table",
            ),
        ),
        findings="utils.experiments.beyond_the_paper.analysis:conclusions",
    ),
)
