"""BN and GN with noise on every normalization's output, and without weight decay, beside
the recipe's runs (shared with the comparison): the 2021 study's sensitivity claims."""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table

DISTORTION = "distortion"
# The 2021 study's distortion: noise of mean 1e-3 and standard deviation 1.001, one draw
# per example and per group of channels (32 groups), as its code does.
NOISE = dict(norm_noise_mean=1e-3, norm_noise_stddev=1.001, norm_noise_groups=32)

EXPERIMENTS = (
    Experiment(
        DISTORTION,
        "understanding_gn",
        "BN and GN at batch 32 clean, with output noise, and without weight decay",
        runs=tuple(
            dict(norm=norm, batch_size=32, **change)
            for norm in ("batch", "group")
            for change in ({}, NOISE, dict(weight_decay=0.0))
        ),
        figures=(
            Figure(
                "utils.experiments.understanding_gn.figures:plot_distortion",
                "BN and GN with noise on the normalizations' outputs and without weight decay, mean and ±1 "
                "sd over seeds",
            ),
        ),
        tables=(
            Table(
                "Distortion and weight decay",
                "utils.experiments.understanding_gn.analysis:distortion_table",
            ),
        ),
        findings="utils.experiments.understanding_gn.analysis:conclusions",
    ),
)
