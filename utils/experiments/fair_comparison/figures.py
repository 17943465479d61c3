"""Figures of the long training (utils.experiments.fair_comparison.long_training): BN and GN trained 30
epochs, each at the base learning rate the rate sweep chose for it, beside the study's
runs at the shared rate, and the other methods trained as long at batch 32.

Each function saves ``<figures_dir>/<name>.png`` and returns the figure. Curves are the
mean over seeds with a ±1 sd band where two or more seeds ran (utils.plots); legends give
the mean ± sd over seeds (n) of the median of the last 5 epochs, or the status of the
runs when they are missing, partial or diverged. A run's base learning rate is the rate
for 32 images: at batch b it trains at base × b/32 (the linear scaling rule).
"""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.colors import to_hex
from matplotlib.colors import to_rgb

from utils import norms
from utils import results
from utils.config import RunConfig
from utils.experiments.fair_comparison import long_training
from utils.plots import CURVES_LEGEND_TITLE
from utils.plots import ERROR_LABEL
from utils.plots import NORM_COLORS
from utils.plots import runs_and_histories
from utils.plots import legend_below
from utils.plots import mean_text
from utils.plots import left_out_text
from utils.plots import train_cell
from utils.plots import data_and_profile
from utils.plots import save_figure
from utils.plots import title_figure
from utils.panels import RATE_NOTE
from utils.panels import draw_restyled
from utils.panels import epoch_range
from utils.panels import epochs_set
from utils.panels import length_text
from utils.panels import note_below
from utils.panels import plot_columns
from utils.panels import rates_text
from utils.panels import schedule_text

# The two normalizations trained at every batch size.
# The study's weight decay: long_training also trains BN and GN without any, runs that
# must not be averaged into the others.
WEIGHT_DECAY = RunConfig().weight_decay
# The first figure's columns: (experiment, fields that select its runs besides norm and
# batch size, how its rate was chosen, what its panel titles start with).
COLUMNS = (
    (results.BATCH_SIZE_SWEEP, {}, "shared", ""),
    (
        long_training.LONG_TRAINING,
        {"weight_standardization": False, "weight_decay": WEIGHT_DECAY},
        "own",
        "",
    ),
)


def shade(color, towards: str, amount: float) -> str:
    """`color` mixed with `towards` ("white": lighter, "black": darker) by `amount` in [0, 1]."""
    start, end = np.array(to_rgb(color)), np.array(to_rgb(towards))
    return to_hex(start + (end - start) * amount)


# The second figure's series: (label, colour, style of a complete run's line, fields that
# select its runs). GN+WS is GN's red darkened: the ablation figures draw WS dashed in its
# normalization's colour, but here dashes mark partial runs. The runs without weight decay
# are their normalization's colour lightened, dash-dotted.
OTHERS = (
    (
        "BN",
        NORM_COLORS["batch"],
        "-",
        dict(norm="batch", weight_standardization=False, weight_decay=WEIGHT_DECAY),
    ),
    (
        "GN",
        NORM_COLORS["group"],
        "-",
        dict(norm="group", weight_standardization=False, weight_decay=WEIGHT_DECAY),
    ),
    (
        "GN+WS",
        shade(NORM_COLORS["group"], "black", 0.45),
        "-",
        dict(norm="group", weight_standardization=True, weight_decay=WEIGHT_DECAY),
    ),
    (
        norms.LABELS["gn_plus_bn_first"],
        NORM_COLORS["gn_plus_bn_first"],
        "-",
        dict(norm="gn_plus_bn_first", weight_standardization=False, weight_decay=WEIGHT_DECAY),
    ),
    (
        "BN, no weight decay",
        shade(NORM_COLORS["batch"], "white", 0.5),
        "-.",
        dict(norm="batch", weight_standardization=False, weight_decay=0.0),
    ),
    (
        "GN, no weight decay",
        shade(NORM_COLORS["group"], "white", 0.5),
        "-.",
        dict(norm="group", weight_standardization=False, weight_decay=0.0),
    ),
)


def plot_long_training(
    results_source="results",
    *,
    histories=None,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="long_training",
):
    """BN and GN trained longer: validation and training error by epoch, the study's runs
    at the shared rate (left; 10 epochs in the cpu and paper profiles) beside 30 epochs at
    each one's own rate (right).

    One row per batch size of long_training (32, 8, 2), both panels of a row on one y
    range. Left: batch_size_sweep; right: long_training with the study's weight decay and
    without WS. Thick lines: validation error, thin: training error, each the mean over
    seeds with a ±1 sd band.

    Args: those utils.plots lists (results_source, figures_dir, dataset, profile, name), and:
        histories: the matching frame from load_histories (loaded from the runs when None).

    Returns:
        The matplotlib figure (a 3 x 2 grid).
    """
    runs, histories = runs_and_histories(results_source, histories)
    note = (
        f"{RATE_NOTE}\nleft: the study's runs ({results.BATCH_SIZE_SWEEP}; "
        f"{schedule_text(runs, results.BATCH_SIZE_SWEEP)}); right: {long_training.LONG_TRAINING} "
        f"({schedule_text(runs, long_training.LONG_TRAINING)}), weight decay {WEIGHT_DECAY:g}, "
        "no WS; each row on one y range"
    )
    title = (
        "BN and GN trained longer: the study's runs at its shared rate (left) beside "
        f"{long_training.EPOCHS} epochs at each one's own rate (right)"
    )
    return plot_columns(
        runs,
        histories,
        COLUMNS,
        long_training.BATCH_SIZES,
        title=title,
        note=note,
        figures_dir=figures_dir,
        dataset=dataset,
        profile=profile,
        name=name,
    )


def plot_long_training_others(
    results_source="results",
    *,
    histories=None,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="long_training_others",
):
    """Training and validation error by epoch at batch 32 in long_training: BN and GN,
    GN+WS, the BN-first GN+BN mixture, and BN and GN without weight decay, each at its own
    base rate (in the legend).

    Each series is the mean over seeds with a ±1 sd band; the runs without weight decay
    are lighter and dash-dotted, and never averaged into BN's and GN's.

    Args: those utils.plots lists (results_source, figures_dir, dataset, profile, name), and:
        histories: the matching frame from load_histories (loaded from the runs when None).

    Returns:
        The matplotlib figure (two panels: training, validation).
    """
    runs, histories = runs_and_histories(results_source, histories)
    dataset, profile = data_and_profile(runs, dataset, profile)
    batch_size = 32
    figure, (train_axis, val_axis) = plt.subplots(1, 2, figsize=(13, 7.5), sharey=True)
    train_handles, val_handles = [], []
    for label, color, solid, fields in OTHERS:
        selection = dict(experiment=long_training.LONG_TRAINING, batch_size=batch_size, **fields)
        cell = results.run_cell(runs, **selection)
        rate = rates_text(runs, **selection)
        named = label + (f" (base rate {rate})" if rate else "")
        panels = (
            (train_axis, "train_error", train_handles, train_cell(runs, **selection)),
            (val_axis, "val_error", val_handles, cell),
        )
        for axis, column, handles, summary in panels:
            handles.append(
                draw_restyled(
                    axis,
                    runs,
                    histories,
                    column,
                    color,
                    f"{named}: {mean_text(summary)}{left_out_text(cell)}",
                    solid=solid,
                    **selection,
                )
            )
    epochs = epochs_set(runs, experiment=long_training.LONG_TRAINING, batch_size=batch_size)
    for axis, panel, handles in (
        (train_axis, "training error", train_handles),
        (val_axis, "validation error", val_handles),
    ):
        axis.set_title(f"{panel}, batch {batch_size}, {length_text(epochs)}")
        epoch_range(axis, epochs)
        axis.set_ylabel(ERROR_LABEL)
        axis.tick_params(labelleft=True)
        legend_below(
            axis,
            handles,
            f"{CURVES_LEGEND_TITLE}\nweight decay {WEIGHT_DECAY:g} unless said; "
            "lighter, dash-dotted: no weight decay",
        )
    note_below(
        figure,
        f"{RATE_NOTE}\n{long_training.LONG_TRAINING} "
        f"({schedule_text(runs, long_training.LONG_TRAINING)}); each method at the base rate "
        "the rate sweep chose for it",
    )
    title_figure(
        figure,
        f"Trained {long_training.EPOCHS} epochs at each one's own rate: BN, GN, GN+WS, the "
        "BN-first mixture, and BN and GN without weight decay",
        dataset,
        profile,
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)
