"""Figures of the long training (utils.experiments.long_training): BN and GN trained 30
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
from utils import paper
from utils import recipe
from utils import results
from utils.config import RunConfig
from utils.experiments import long_training
from utils.plots import CURVES_LEGEND_TITLE
from utils.plots import ERROR_LABEL
from utils.plots import NORM_COLORS
from utils.plots import draw_cell
from utils.plots import epoch_axis
from utils.plots import runs_and_histories
from utils.plots import legend_below
from utils.plots import mean_text
from utils.plots import left_out_text
from utils.plots import train_cell
from utils.plots import data_and_profile
from utils.plots import save_figure
from utils.plots import title_figure

# The two normalizations trained at every batch size.
NORMS = ("batch", "group")
# The study's weight decay: long_training also trains BN and GN without any, runs that
# must not be averaged into the others.
WEIGHT_DECAY = RunConfig().weight_decay
# How much thinner training error is drawn than validation error: the line style already
# says whether runs are partial (dashed), so the width tells the two errors apart.
TRAIN_WIDTH = 0.5
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
# GN's runs of the study's width: an experiment may also hold GN with other group counts.
GROUPS = RunConfig().groups
RATE_NOTE = "base rate: the learning rate for 32 images; at batch b a run uses base × b/32 (linear scaling rule)"


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


def _draw_restyled(
    axis, runs, histories, column, color, label, *, width=1.0, solid="-", **selection
):
    """`draw_cell`, its lines and legend handle `width` times as wide and its solid lines
    drawn in the style `solid`; the dashes of partial runs and the dots of missing ones stay.

    Returns:
        The legend handle.
    """
    before = len(axis.lines)
    handle = draw_cell(axis, runs, histories, column, color, label, **selection)
    for line in (*axis.lines[before:], handle):
        line.set_linewidth(line.get_linewidth() * width)
        if line.get_linestyle() == "-":
            line.set_linestyle(solid)
    return handle


def _rates(runs, **selection) -> str:
    """The base rates of the selected runs, e.g. "0.03" ("" without runs)."""
    found = results.find_runs(runs, **selection)
    return ", ".join(f"{rate:g}" for rate in sorted(set(found["base_learning_rate"].astype(float))))


def _rate_text(runs, **selection) -> str:
    """The base rate BN's and GN's selected runs used: "0.003" when they share it, else
    "BN 0.03, GN 0.003" ("" without runs)."""
    rates = {paper.NORM_LABELS[norm]: _rates(runs, norm=norm, **selection) for norm in NORMS}
    found = {label: rate for label, rate in rates.items() if rate}
    if len(found) == len(NORMS) and len(set(found.values())) == 1:
        return next(iter(found.values()))
    return ", ".join(f"{label} {rate}" for label, rate in found.items())


def _epochs(runs, **selection) -> int | None:
    """The epochs the selected runs were set to train (None without runs)."""
    found = results.find_runs(runs, **selection)
    return int(found["epochs"].max()) if not found.empty else None


def _length(epochs) -> str:
    return f"{epochs} epochs" if epochs else "no runs yet"


def schedule_text(runs, experiment) -> str:
    """The rate schedules of an experiment's runs, e.g. "÷10 at 50%, 75%"."""
    found = runs[runs["experiment"] == experiment]
    schedules = sorted({tuple(fractions) for fractions in found["lr_decay_fractions"]})
    return "; ".join(recipe.schedule_label(fractions) for fractions in schedules) or "no runs yet"


def _epoch_range(axis, epochs):
    """The x axis over every epoch the runs were set to train, so that a partial run looks
    short and the columns show their lengths; left to matplotlib without runs."""
    epoch_axis(axis)
    if epochs:
        axis.set_xlim(0.5, epochs + 0.5)


def _note_below(figure, text):
    figure.text(0.5, -0.01, text, ha="center", va="top", fontsize=8, wrap=True)


def _panel_title(epochs, rates, rate_words, batch_size, start="") -> str:
    """E.g. "30 epochs, own base rate (BN 0.03, GN 0.003), batch 8", after `start`."""
    rate = f"{rate_words} base rate" + (f" ({rates})" if rates else "")
    return f"{start}{_length(epochs)}, {rate}, batch {batch_size}"


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


def plot_columns(
    runs, histories, columns, batch_sizes, *, title, note, figures_dir, dataset, profile, name
):
    """BN and GN side by side: one row per batch size, one column per experiment, each
    panel the validation (thick) and training (thin) error by epoch, both panels of a row
    on one y range. GN's runs are those with the study's 32 groups.

    Args: those utils.plots lists (figures_dir, dataset, profile, name), and:
        runs, histories: frames from `results.load_runs` and `results.load_histories`.
        columns: (experiment, fields that select its runs besides norm and batch size,
            how its rate was chosen, what its panel titles start with) per column.
        batch_sizes: the rows.
        title: the figure's title; note: the text below it.
    """
    dataset, profile = data_and_profile(runs, dataset, profile)
    figure, axes = plt.subplots(
        len(batch_sizes),
        len(columns),
        figsize=(13, 6.2 * len(batch_sizes)),
        sharey="row",
        squeeze=False,
    )
    for row, batch_size in enumerate(batch_sizes):
        for axis, (experiment, fields, rate_words, start) in zip(axes[row], columns):
            handles = []
            for norm in NORMS:
                selection = dict(
                    experiment=experiment,
                    norm=norm,
                    batch_size=batch_size,
                    groups=GROUPS if norm == "group" else None,
                    **fields,
                )
                cell = results.run_cell(runs, **selection)
                short, color = paper.NORM_LABELS[norm], NORM_COLORS[norm]
                handles.append(
                    draw_cell(
                        axis,
                        runs,
                        histories,
                        "val_error",
                        color,
                        f"{short} validation: {mean_text(cell)}{left_out_text(cell)}",
                        **selection,
                    )
                )
                handles.append(
                    _draw_restyled(
                        axis,
                        runs,
                        histories,
                        "train_error",
                        color,
                        f"{short} training: {mean_text(train_cell(runs, **selection))}",
                        width=TRAIN_WIDTH,
                        **selection,
                    )
                )
            panel = dict(experiment=experiment, batch_size=batch_size, **fields)
            epochs = _epochs(runs, **panel)
            axis.set_title(
                _panel_title(epochs, _rate_text(runs, **panel), rate_words, batch_size, start),
                fontsize=10,
            )
            _epoch_range(axis, epochs)
            axis.set_ylabel(ERROR_LABEL)
            axis.tick_params(labelleft=True)
            legend_below(
                axis,
                handles,
                f"{CURVES_LEGEND_TITLE}\nthick: validation error, thin: training error",
            )
    _note_below(figure, note)
    title_figure(figure, title, dataset, profile)
    # Over a grid this tall, with legends below every panel, tight_layout alone lets the
    # top panels' titles run into the figure's title: a third of an inch is kept for it.
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / figure.get_size_inches()[1]))
    return save_figure(figure, figures_dir, name)


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
        rate = _rates(runs, **selection)
        named = label + (f" (base rate {rate})" if rate else "")
        panels = (
            (train_axis, "train_error", train_handles, train_cell(runs, **selection)),
            (val_axis, "val_error", val_handles, cell),
        )
        for axis, column, handles, summary in panels:
            handles.append(
                _draw_restyled(
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
    epochs = _epochs(runs, experiment=long_training.LONG_TRAINING, batch_size=batch_size)
    for axis, panel, handles in (
        (train_axis, "training error", train_handles),
        (val_axis, "validation error", val_handles),
    ):
        axis.set_title(f"{panel}, batch {batch_size}, {_length(epochs)}")
        _epoch_range(axis, epochs)
        axis.set_ylabel(ERROR_LABEL)
        axis.tick_params(labelleft=True)
        legend_below(
            axis,
            handles,
            f"{CURVES_LEGEND_TITLE}\nweight decay {WEIGHT_DECAY:g} unless said; "
            "lighter, dash-dotted: no weight decay",
        )
    _note_below(
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
