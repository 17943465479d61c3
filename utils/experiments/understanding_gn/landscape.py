"""Loss-landscape probes along the gradient during training (Santurkar et al., 2018), for
BN, GN and no normalization at a large and a small batch (utils.landscape)."""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table

LANDSCAPE = "landscape"
BATCH_SIZES = (32, 2)
# Probes per epoch: every 31 steps at batch 32 on the cpu data, every 500 at batch 2;
# each probe costs about five training steps of its batch size.
PROBES_PER_EPOCH = 20

EXPERIMENTS = (
    Experiment(
        LANDSCAPE,
        "understanding_gn",
        "BN, GN and no normalization at batch 32 and 2, probed 20 times an epoch",
        runs=tuple(
            dict(norm=norm, batch_size=batch, landscape_probes=PROBES_PER_EPOCH)
            for norm in ("batch", "group", "none")
            for batch in BATCH_SIZES
        ),
        figures=(
            Figure(
                "utils.experiments.understanding_gn.figures:plot_landscape",
                "Loss range, largest gradient change and effective beta-smoothness along the gradient "
                "during training, BN, GN and no normalization, geometric mean and ×/÷ geometric sd over "
                "seeds",
            ),
        ),
        tables=(
            Table(
                "Loss landscape",
                "utils.experiments.understanding_gn.analysis:landscape_table",
                decimals=3,
            ),
        ),
        findings="utils.experiments.understanding_gn.analysis:conclusions",
        measurements=("utils.landscape:probe_measurement",),
    ),
)
