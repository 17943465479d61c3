"""The study: the paper's Table 1 and Table 2 on the small CNN.

`norm_comparison` trains BN, LN, IN and GN at 32 images per step (the paper's Figure 4 and
Table 1); `batch_size_sweep` trains each of them at 32, 16, 8, 4 and 2 (Figures 1 and 5,
Table 2), its batch-32 runs being the comparison's.
"""

from utils import paper
from utils.experiment import Experiment
from utils.experiment import TRAINING_MODE
from utils.experiment import Figure
from utils.experiment import Table

NORM_COMPARISON = "norm_comparison"
BATCH_SIZE_SWEEP = "batch_size_sweep"
# The paper's four normalizations, in its tables' order, and its batch sizes.
NORMS = ("batch", "layer", "instance", "group")
BATCH_SIZES = paper.BATCH_SIZES
# The batch sizes the further experiments train: the study's largest, a middle one and its
# smallest.
THREE_BATCH_SIZES = (32, 8, 2)

EXPERIMENTS = (
    Experiment(
        NORM_COMPARISON,
        "study",
        "BN, LN, IN and GN at batch 32 (Table 1)",
        runs=tuple(dict(norm=norm, batch_size=32) for norm in NORMS),
        # The 2023 report's length for its batch-32 comparison.
        epochs={"paper": 100},
        figures=(
            Figure(
                "utils.plots:plot_norm_comparison",
                f"BN, LN, IN and GN at batch 32: {TRAINING_MODE} and validation error by epoch, mean and "
                "±1 sd over seeds (Figure 4 analogue)",
            ),
        ),
        tables=(Table("Table 1 analogue: BN, LN, IN, GN at batch 32", "utils.results:table1"),),
    ),
    Experiment(
        BATCH_SIZE_SWEEP,
        "study",
        "BN, LN, IN and GN at batch 32, 16, 8, 4 and 2 (Table 2)",
        runs=tuple(dict(norm=norm, batch_size=batch) for norm in NORMS for batch in BATCH_SIZES),
        figures=(
            Figure(
                "utils.plots:plot_batch_size_curves",
                "Validation error by epoch at batch sizes 32 to 2, mean and ±1 sd over seeds (Figure 5 analogue)",
            ),
            Figure(
                "utils.plots:plot_batch_size_sensitivity",
                "Final validation error against batch size, mean and ±1 sd over seeds, beside the paper "
                "(Figure 1 analogue)",
            ),
        ),
        tables=(
            Table("Table 2 analogue: every normalization by batch size", "utils.results:table2"),
            Table(
                "Beside the 2023 report (validation loss, which the report called error)",
                "utils.results:report_table",
                decimals=3,
            ),
        ),
        findings="utils.results:conclusions",
    ),
)
