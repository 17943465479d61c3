"""The three GN+BN mixture layers of the 2021 study beside BN and GN (shared with the
batch-size sweep)."""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table
from utils.experiments.study import THREE_BATCH_SIZES

MIXTURES = "mixtures"
BATCH_SIZES = THREE_BATCH_SIZES
MIXTURE_NORMS = ("gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first")

EXPERIMENTS = (
    Experiment(
        MIXTURES,
        "understanding_gn",
        "the GN+BN mixtures, BN and GN at batch 32, 8 and 2",
        runs=tuple(
            dict(norm=norm, batch_size=batch)
            for norm in MIXTURE_NORMS + ("batch", "group")
            for batch in BATCH_SIZES
        ),
        figures=(
            Figure(
                "utils.experiments.understanding_gn.figures:plot_mixtures",
                "The GN+BN mixture layers beside BN and GN by batch size, and the learnt weight s of GN by "
                "epoch",
            ),
        ),
        tables=(
            Table("GN+BN mixtures", "utils.experiments.understanding_gn.analysis:mixtures_table"),
            Table(
                "Learnt weight of GN in the mixtures",
                "utils.experiments.understanding_gn.analysis:mixing_weight_table",
                decimals=2,
            ),
        ),
        findings="utils.experiments.understanding_gn.analysis:conclusions",
        measurements=("utils.mixtures:mixing_measurement",),
    ),
)
