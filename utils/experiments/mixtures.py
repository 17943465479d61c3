"""The three GN+BN mixture layers of the 2021 study beside BN and GN (shared with the
batch-size sweep)."""

from utils.experiment import Experiment

MIXTURES = "mixtures"
BATCH_SIZES = (32, 8, 2)
MIXTURE_NORMS = ("gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first")

EXPERIMENTS = (
    Experiment(
        MIXTURES, "understanding_gn", "the GN+BN mixtures, BN and GN at batch 32, 8 and 2",
        runs=tuple(dict(norm=norm, batch_size=batch)
                   for norm in MIXTURE_NORMS + ("batch", "group") for batch in BATCH_SIZES),
        figures=("utils.understanding_plots:plot_mixtures",),
    ),
)
