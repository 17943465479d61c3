"""Panels of BN's and GN's curves side by side: one row per batch size, one column per
experiment (a regime: the study's shared rate, each method's own rate, another network),
each panel the validation and training error by epoch. The fair comparison's and the
depth experiment's figures draw with it.
"""

from __future__ import annotations

from matplotlib import pyplot as plt

from utils import paper
from utils import recipe
from utils import results
from utils.config import RunConfig
from utils.plots import CURVES_LEGEND_TITLE
from utils.plots import ERROR_LABEL
from utils.plots import NORM_COLORS
from utils.plots import data_and_profile
from utils.plots import draw_cell
from utils.plots import epoch_axis
from utils.plots import left_out_text
from utils.plots import legend_below
from utils.plots import mean_text
from utils.plots import save_figure
from utils.plots import title_figure
from utils.plots import train_cell

NORMS = ("batch", "group")
# How much thinner training error is drawn than validation error: the line style already
# says whether runs are partial (dashed), so the width tells the two errors apart.
TRAIN_WIDTH = 0.5
# GN's runs of the study's width: an experiment may also hold GN with other group counts.
GROUPS = RunConfig().groups
RATE_NOTE = "base rate: the learning rate for 32 images; at batch b a run uses base × b/32 (linear scaling rule)"


def draw_restyled(
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


def rates_text(runs, **selection) -> str:
    """The base rates of the selected runs, e.g. "0.03" ("" without runs)."""
    found = results.find_runs(runs, **selection)
    return ", ".join(f"{rate:g}" for rate in sorted(set(found["base_learning_rate"].astype(float))))


def rate_text(runs, **selection) -> str:
    """The base rate BN's and GN's selected runs used: "0.003" when they share it, else
    "BN 0.03, GN 0.003" ("" without runs)."""
    rates = {paper.NORM_LABELS[norm]: rates_text(runs, norm=norm, **selection) for norm in NORMS}
    found = {label: rate for label, rate in rates.items() if rate}
    if len(found) == len(NORMS) and len(set(found.values())) == 1:
        return next(iter(found.values()))
    return ", ".join(f"{label} {rate}" for label, rate in found.items())


def epochs_set(runs, **selection) -> int | None:
    """The epochs the selected runs were set to train (None without runs)."""
    found = results.find_runs(runs, **selection)
    return int(found["epochs"].max()) if not found.empty else None


def length_text(epochs) -> str:
    return f"{epochs} epochs" if epochs else "no runs yet"


def schedule_text(runs, experiment) -> str:
    """The rate schedules of an experiment's runs, e.g. "÷10 at 50%, 75%"."""
    found = runs[runs["experiment"] == experiment]
    schedules = sorted({tuple(fractions) for fractions in found["lr_decay_fractions"]})
    return "; ".join(recipe.schedule_label(fractions) for fractions in schedules) or "no runs yet"


def epoch_range(axis, epochs):
    """The x axis over every epoch the runs were set to train, so that a partial run looks
    short and the columns show their lengths; left to matplotlib without runs."""
    epoch_axis(axis)
    if epochs:
        axis.set_xlim(0.5, epochs + 0.5)


def note_below(figure, text):
    figure.text(0.5, -0.01, text, ha="center", va="top", fontsize=8, wrap=True)


def _panel_title(epochs, rates, rate_words, batch_size, start="") -> str:
    """E.g. "30 epochs, own base rate (BN 0.03, GN 0.003), batch 8", after `start`."""
    rate = f"{rate_words} base rate" + (f" ({rates})" if rates else "")
    return f"{start}{length_text(epochs)}, {rate}, batch {batch_size}"


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
                    draw_restyled(
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
            epochs = epochs_set(runs, **panel)
            axis.set_title(
                _panel_title(epochs, rate_text(runs, **panel), rate_words, batch_size, start),
                fontsize=10,
            )
            epoch_range(axis, epochs)
            axis.set_ylabel(ERROR_LABEL)
            axis.tick_params(labelleft=True)
            legend_below(
                axis,
                handles,
                f"{CURVES_LEGEND_TITLE}\nthick: validation error, thin: training error",
            )
    note_below(figure, note)
    title_figure(figure, title, dataset, profile)
    # Over a grid this tall, with legends below every panel, tight_layout alone lets the
    # top panels' titles run into the figure's title: a third of an inch is kept for it.
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / figure.get_size_inches()[1]))
    return save_figure(figure, figures_dir, name)
