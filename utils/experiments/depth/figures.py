"""Figures of the depth experiment (utils.experiments.depth): ResNet-10's training and
validation error by epoch, the paper's Figures 4 and 5 on a residual network, beside the
small CNN's. Arguments as in utils.plots; each function saves ``<figures_dir>/<name>.png``
and returns the figure."""

from utils import results
from utils.experiments import depth as depth_experiment
from utils.experiments.study import THREE_BATCH_SIZES
from utils.panels import GROUPS
from utils.panels import RATE_NOTE
from utils.panels import plot_columns
from utils.panels import schedule_text
from utils.plots import runs_and_histories
from utils.plots import plot_norm_comparison

DEPTH = depth_experiment.DEPTH


def plot_depth_comparison(
    results_source="results",
    *,
    histories=None,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="depth_comparison",
):
    """BN, LN, IN and GN (G = 32) on ResNet-10 at batch 32: training and validation error
    by epoch, mean and ±1 sd over seeds (the paper's Figure 4)."""
    return plot_norm_comparison(
        results_source,
        histories=histories,
        figures_dir=figures_dir,
        dataset=dataset,
        profile=profile,
        experiment=DEPTH,
        batch_size=32,
        name=name,
        groups=GROUPS,
        title="ResNet-10: error vs epoch by normalization (analogue of the paper's Figure 4)",
    )


def plot_depth_batch_sizes(
    results_source="results",
    *,
    histories=None,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="depth_batch_sizes",
):
    """BN and GN at batch 32, 8 and 2: the small CNN (left, the study's runs at the
    shared rate) beside ResNet-10 (right, each at its own rate), validation and training
    error by epoch, mean and ±1 sd over seeds (the paper's Figure 5)."""
    runs, histories = runs_and_histories(results_source, histories)
    columns = (
        (results.BATCH_SIZE_SWEEP, {}, "shared", "small CNN, "),
        (DEPTH, {}, "own", "ResNet-10, "),
    )
    note = (
        f"{RATE_NOTE}\nleft: the study's small CNN ({results.BATCH_SIZE_SWEEP}; "
        f"{schedule_text(runs, results.BATCH_SIZE_SWEEP)}); right: ResNet-10 ({DEPTH}; "
        f"{schedule_text(runs, DEPTH)}), GN with {GROUPS} groups; each row on one y range"
    )
    return plot_columns(
        runs,
        histories,
        columns,
        THREE_BATCH_SIZES,
        title="Depth: BN and GN on the small CNN (left) and on ResNet-10 (right) by batch size",
        note=note,
        figures_dir=figures_dir,
        dataset=dataset,
        profile=profile,
        name=name,
    )
