"""The figures: analogues of the paper's Figures 1, 2, 4 and 5, the recipe sweep, and a data
sanity grid.

Every function saves ``<figures_dir>/<name>.png`` (150 dpi) and returns the matplotlib
figure. Curves and points come from history.csv through utils.results (median of the last
5 completed epochs, as in the paper); a cell trained with several seeds is drawn as the
mean over seeds with its spread, ±1 sample standard deviation ("sd", n - 1 in the
denominator), as a shaded band around curves and as error bars on points. The paper's
numbers (Wu & He, ECCV 2018, arXiv:1803.08494; ResNet-50 on ImageNet) are drawn dashed or
quoted in legends as "paper". Missing, partial and diverged runs appear in the legends with
their status. Titles carry the dataset and profile, read from the runs unless given.

The figure functions of results share these arguments:
    results_source: a results folder or a runs frame from utils.results.load_runs.
    figures_dir: where ``<name>.png`` is written.
    dataset, profile: the dataset and profile names for the title (default: read from
        the runs).
    experiment: the experiment holding the runs.
    name: file name without extension.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from pathlib import Path

import matplotlib

# Without a display (CI, servers) pick the file-only backend; notebooks keep their own.
if (
    not os.environ.get("MPLBACKEND")
    and not os.environ.get("DISPLAY")
    and "ipykernel" not in sys.modules
):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator  # noqa: E402

from utils import norms, paper, recipe, results  # noqa: E402
from utils.experiments import recipe_sweep  # noqa: E402

DPI = 150
# One colour and marker per normalization, the same in every figure (utils.norms).
NORM_COLORS = {name: row.color for name, row in norms.REGISTRY.items()}
NORM_MARKERS = {name: row.marker for name, row in norms.REGISTRY.items()}
# One colour per batch size, cool (large batch) to warm (small batch), each of its own hue
# so that neighbouring batch sizes are told apart at a glance.
BATCH_SIZE_COLORS = dict(
    zip(paper.BATCH_SIZES, ("#3b0f70", "#2c7fb8", "#1a9850", "#f46d43", "#d7191c"), strict=True)
)
ERROR_LABEL = "top-1 error (%)"
VAL_ERROR_LABEL = "validation top-1 error (%)"
NORM_NAMES = {name: row.long_label for name, row in norms.REGISTRY.items()}
# Opacity of the ±1 sd bands: light enough to see the other curves through them.
BAND_ALPHA = 0.2
# Where the recipe figure draws runs of another schedule: this factor right of their rate.
OTHER_SCHEDULE_SHIFT = 1.12
# How far apart (a factor of the rate) the recipe figure draws the collapsed runs of one
# rate: near chance they end at about the same error and would cover each other.
COLLAPSED_SPREAD = 1.1
CURVES_LEGEND_TITLE = (
    "mean ± sd over seeds (n) of the median of the last 5 epochs\nshaded: ±1 sd over seeds"
)


def runs_and_histories(results_source, histories):
    """(runs, histories) from a results folder path or from already loaded frames."""
    runs = results.as_runs(results_source)
    if histories is None:
        histories = results.load_histories(runs=runs)
    return runs, histories


def data_and_profile(runs: pd.DataFrame, dataset, profile) -> tuple[str, str]:
    def derive(column):
        found = sorted({str(value) for value in runs[column].dropna()}) if column in runs else []
        return ", ".join(found) if found else "unknown"

    return dataset or derive("dataset"), profile or derive("profile")


def title_figure(figure, text: str, dataset: str, profile: str):
    figure.suptitle(f"{text}\ndataset: {dataset}, profile: {profile}", fontsize=11)


def save_figure(figure, figures_dir, name: str):
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / f"{name}.png", dpi=DPI, bbox_inches="tight")
    return figure


def _history_of(histories: pd.DataFrame, run_name: str, experiment: str) -> pd.DataFrame:
    if histories.empty:
        return histories
    chosen = histories[
        (histories["run_name"] == run_name) & (histories["experiment"] == experiment)
    ]
    return chosen.sort_values("epoch")


def _seed_curve(
    histories: pd.DataFrame, runs: pd.DataFrame, column: str, experiment: str
) -> pd.DataFrame:
    """Mean, sd and count over `runs` of `column`, epoch by epoch (index: epoch)."""
    chosen = histories[
        (histories["experiment"] == experiment) & histories["run_name"].isin(runs["run_name"])
    ]
    values = pd.to_numeric(chosen[column], errors="coerce")
    # sd with n - 1 in the denominator, as in utils.results; NaN where only one run has the epoch.
    return values.groupby(chosen["epoch"]).agg(["mean", "std", "count"]).sort_index()


def _draw_single_run(axis, history, column, color, handle, status, linewidth):
    """One run outside the mean: dashed when partial, with an X where it diverged."""
    axis.plot(
        history["epoch"],
        history[column],
        color=color,
        linewidth=linewidth,
        linestyle="--" if status == "partial" else "-",
    )
    if status != "diverged":
        return
    finite = history[np.isfinite(pd.to_numeric(history[column], errors="coerce"))]
    handle.set_marker("X")
    handle.set_markeredgecolor("black")
    if not finite.empty:
        axis.plot(
            finite["epoch"].iloc[-1],
            finite[column].iloc[-1],
            marker="X",
            markersize=10,
            color=color,
            markeredgecolor="black",
        )


def draw_cell(axis, runs, histories, column, color, label, *, experiment, **selection):
    """Plot `column` vs epoch for one cell (the runs matching `selection`); returns the legend handle.

    The runs behind the cell's number are drawn as their mean over seeds, with a ±1 sd band
    at the epochs two or more seeds reached (none for a single seed); the others (diverged
    runs, partial runs beside complete ones) are drawn one by one.
    """
    matches = results.find_runs(runs, experiment=experiment, **selection)
    handle = Line2D(
        [], [], color=color, linewidth=2, label=label, linestyle="-" if not matches.empty else ":"
    )
    if histories.empty:
        return handle
    averaged = results.averaged_runs(matches)
    if not averaged.empty:
        partial = bool((averaged["status"] == "partial").all())
        curve = _seed_curve(histories, averaged, column, experiment)
        axis.plot(
            curve.index,
            curve["mean"],
            color=color,
            linewidth=1.8,
            linestyle="--" if partial else "-",
        )
        spread = curve[curve["count"] >= 2]
        if not spread.empty:
            axis.fill_between(
                spread.index,
                spread["mean"] - spread["std"],
                spread["mean"] + spread["std"],
                color=color,
                alpha=BAND_ALPHA,
                linewidth=0,
            )
        if partial:
            handle.set_linestyle("--")
    # Thinner than a mean beside them; as wide as one when they are all the cell has.
    linewidth = 1.0 if not averaged.empty else 1.8
    for run in matches.drop(averaged.index).itertuples(index=False):
        history = _history_of(histories, run.run_name, experiment)
        if not history.empty:
            _draw_single_run(axis, history, column, color, handle, run.status, linewidth)
    return handle


def train_cell(runs: pd.DataFrame, **selection) -> results.Cell:
    """`results.run_cell` for the training error, over the same runs as the validation number."""
    return results.statistic_cell(runs, "train_error_median5", **selection)


def left_out_note(cell: results.Cell) -> str:
    """What a legend or note must add to the cell's number: "" when every run is complete."""
    status = cell.status
    if status.startswith("complete"):
        # The seed count is shown with the number; only runs left out of it need naming.
        _, _, others = status.partition("; also ")
        return f"also {others}" if others else ""
    return status


def left_out_text(cell: results.Cell) -> str:
    left_out = left_out_note(cell)
    return f" [{left_out}]" if left_out else ""


def _value_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}%"


def mean_text(cell: results.Cell) -> str:
    """ "76.1 ± 0.4% (n=3)": the mean over seeds, its sd when there are two or more, and n."""
    if not cell.n or math.isnan(cell.value):
        return "n/a"
    spread = "" if math.isnan(cell.sd) else f" ± {cell.sd:.1f}"
    return f"{cell.value:.1f}{spread}% (n={cell.n})"


def seed_count_text(cells) -> str:
    """ "n=3" when every cell with a number has 3 seeds, "n=1–3" when they differ."""
    counts = sorted({cell.n for cell in cells if cell.n})
    if not counts:
        return "n=0"
    return f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}–{counts[-1]}"


def legend_below(axis, handles, title):
    # Below the panel, so that no legend ever hides a curve (e.g. a diverging one).
    axis.legend(
        handles=handles,
        title=title,
        fontsize=8,
        title_fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        frameon=False,
    )


def epoch_axis(axis):
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def plot_norm_comparison(
    results_source="results",
    *,
    histories=None,
    figures_dir="figures",
    dataset=None,
    profile=None,
    experiment=results.NORM_COMPARISON,
    batch_size=32,
    name="norm_comparison",
    groups=None,
    title="Error vs epoch by normalization (analogue of the paper's Figure 4)",
):
    """Train and validation error vs epoch for BN, LN, IN, GN (the paper's Figure 4).

    Each normalization is drawn as its mean curve over seeds with a ±1 sd band (where two
    or more seeds ran); the legends give the mean ± sd of the median of the last 5 epochs
    and the number of seeds n, or the status of runs that are not complete.

    Args: those the module docstring lists (results_source, figures_dir, dataset, profile,
    experiment, name), and:
        histories: the matching frame from load_histories (loaded from the runs when None).
        batch_size: the batch size of the compared runs.
        groups: GN's group count, when the experiment holds GN with several (None: any).
        title: the figure's title.

    Returns:
        The matplotlib figure (two panels: train, validation).
    """
    runs, histories = runs_and_histories(results_source, histories)
    dataset, profile = data_and_profile(runs, dataset, profile)
    figure, (train_axis, val_axis) = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    train_handles, val_handles = [], []
    for norm in paper.TABLE1_NORMS:
        selection = {
            "experiment": experiment,
            "norm": norm,
            "batch_size": batch_size,
            "groups": groups if norm == "group" else None,
        }
        cell = results.run_cell(runs, **selection)
        short = paper.NORM_LABELS[norm]
        color = NORM_COLORS[norm]
        train_label = f"{short}: {mean_text(train_cell(runs, **selection))}{left_out_text(cell)}"
        val_label = (
            f"{short}: ours {mean_text(cell)}, paper {paper.TABLE1[norm]:.1f}%{left_out_text(cell)}"
        )
        train_handles.append(
            draw_cell(train_axis, runs, histories, "train_error", color, train_label, **selection)
        )
        val_handles.append(
            draw_cell(val_axis, runs, histories, "val_error", color, val_label, **selection)
        )
    for axis, panel, handles, legend_title in (
        (train_axis, "training error", train_handles, CURVES_LEGEND_TITLE),
        (
            val_axis,
            "validation error",
            val_handles,
            f"{CURVES_LEGEND_TITLE}\n(paper: ResNet-50, ImageNet)",
        ),
    ):
        axis.set_title(f"{panel}, batch {batch_size}")
        epoch_axis(axis)
        legend_below(axis, handles, legend_title)
        axis.set_ylabel(ERROR_LABEL)
        axis.tick_params(labelleft=True)
    title_figure(figure, title, dataset, profile)
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def plot_batch_size_curves(
    results_source="results",
    *,
    histories=None,
    figures_dir="figures",
    dataset=None,
    profile=None,
    experiment=results.BATCH_SIZE_SWEEP,
    batch_sizes=paper.BATCH_SIZES,
    name="batch_size_curves",
):
    """Validation error vs epoch at each batch size, one panel per normalization (the paper's
    Figure 5, which shows BN and GN; LN and IN are added here).

    Each batch size is drawn as its mean curve over seeds with a ±1 sd band (where two or
    more seeds ran).

    Args: those the module docstring lists (results_source, figures_dir, dataset, profile,
    experiment, name), and:
        histories: the matching frame from load_histories (loaded from the runs when None).
        batch_sizes: the batch sizes to draw, largest first.

    Returns:
        The matplotlib figure (a 2 x 2 grid sharing the y axis: BN, LN in the top row, IN,
        GN in the bottom row).
    """
    runs, histories = runs_and_histories(results_source, histories)
    dataset, profile = data_and_profile(runs, dataset, profile)
    # Shared axes: panels compare at a glance, and a panel without runs keeps the epoch axis.
    figure, axes = plt.subplots(2, 2, figsize=(13, 13), sharex=True, sharey=True)
    for axis, norm in zip(axes.flat, paper.TABLE1_NORMS):
        published = paper.TABLE2.get(norm, {})
        handles = []
        for batch_size in batch_sizes:
            selection = {"experiment": experiment, "norm": norm, "batch_size": batch_size}
            cell = results.run_cell(runs, **selection)
            label = f"batch {batch_size}: ours {mean_text(cell)}"
            if published:  # the paper reports only BN and GN by batch size
                label += f", paper {_value_text(published.get(batch_size, math.nan))}"
            color = BATCH_SIZE_COLORS.get(batch_size, "black")
            handles.append(
                draw_cell(
                    axis,
                    runs,
                    histories,
                    "val_error",
                    color,
                    label + left_out_text(cell),
                    **selection,
                )
            )
        axis.set_title(f"{NORM_NAMES[norm]} ({paper.NORM_LABELS[norm]})")
        epoch_axis(axis)
        axis.set_ylabel(VAL_ERROR_LABEL)
        axis.tick_params(labelleft=True, labelbottom=True)
        legend_title = CURVES_LEGEND_TITLE + ("\n(paper: ResNet-50, ImageNet)" if published else "")
        legend_below(axis, handles, legend_title)
    title_figure(
        figure,
        "Validation error vs epoch by batch size (analogue of the paper's Figure 5)",
        dataset,
        profile,
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def decreasing_log2_axis(axis, ticks, label, *, margin=1.35):
    """A log-2 x axis with a tick at each value, decreasing to the right (as the paper's
    Figure 1 draws batch sizes), and the val error as y label."""
    axis.set_xscale("log", base=2)
    axis.xaxis.set_major_locator(FixedLocator(list(ticks)))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticklabels([str(value) for value in ticks])
    axis.set_xlim(max(ticks) * margin, min(ticks) / margin)
    axis.set_xlabel(label)
    axis.set_ylabel(VAL_ERROR_LABEL)
    axis.grid(alpha=0.3)


def batch_axis(axis, batch_sizes):
    decreasing_log2_axis(axis, batch_sizes, "batch size (images per device and step)")


def _label_points(axis, positions, values, competitors, color, *, above_on_tie):
    """Writes each value beside its point: above when it is the higher of the two series."""
    for position, value, competitor in zip(positions, values, competitors):
        if math.isnan(value):
            continue
        above = (
            math.isnan(competitor) or value > competitor or (value == competitor and above_on_tie)
        )
        axis.annotate(
            f"{value:.1f}",
            (position, value),
            textcoords="offset points",
            xytext=(0, 9 if above else -15),
            ha="center",
            fontsize=8,
            color=color,
            bbox={
                "boxstyle": "round,pad=0.1",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.8,
            },
        )


def _mark_without_number(
    axis, position, height, color, marker, text, *, align="center", hollow=False
):
    """A marker at `height` (a fraction of the panel) for a point that has no number, with the reason."""
    axis.plot(
        position,
        height,
        marker=marker,
        markersize=9,
        color=color,
        markeredgewidth=2,
        markerfacecolor="white" if hollow else color,
        transform=axis.get_xaxis_transform(),
        clip_on=False,
    )
    axis.annotate(
        text,
        (position, height),
        xycoords=axis.get_xaxis_transform(),
        textcoords="offset points",
        xytext=(0, -13),
        ha=align,
        fontsize=7,
        color=color,
    )


def _hollow(axis, position, value, color, marker):
    """A hollow marker over a point: the number is not final (partial) or the run collapsed."""
    axis.plot(
        position,
        value,
        marker=marker,
        markersize=11,
        color=color,
        markerfacecolor="white",
        markeredgewidth=2,
        linestyle="",
    )


def equal_y_spans(*axes) -> float:
    """Gives every panel the y span of the widest, each centred where it was, and returns
    that span (points of error): panels set side by side compare as drawn.

    Each panel scaled to its own points would stretch the paper's differences of a point or
    two to the height of ours of ten or more.
    """
    limits = [axis.get_ylim() for axis in axes]
    span = max(high - low for low, high in limits)
    for axis, (low, high) in zip(axes, limits):
        centre = (low + high) / 2
        axis.set_ylim(centre - span / 2, centre + span / 2)
    return span


def _head_room(axis, fraction):
    """Extends the y axis upwards by `fraction` of its range, for labels and marks at the top."""
    low, high = axis.get_ylim()
    axis.set_ylim(low - 0.08 * (high - low), high + fraction * (high - low))


def plot_batch_size_sensitivity(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    experiment=results.BATCH_SIZE_SWEEP,
    batch_sizes=paper.BATCH_SIZES,
    name="batch_size_sensitivity",
):
    """Final validation error vs batch size for BN, LN, IN and GN, ours beside the paper's BN
    and GN (Figure 1).

    Our points are the mean over seeds with error bars of ±1 sd over seeds (none for a
    single seed); the points of one batch size are shifted slightly sideways so that their
    bars do not overlap.

    Args: those the module docstring lists (results_source, figures_dir, dataset, profile,
    experiment, name), and:
        batch_sizes: the batch sizes on the x axis.

    Returns:
        The matplotlib figure (left: this reproduction; right: the paper's Table 2 values).
    """
    runs = results.as_runs(results_source)
    dataset, profile = data_and_profile(runs, dataset, profile)
    # The models of this experiment's runs only: the results hold other experiments' models too.
    plotted = runs[runs["experiment"] == experiment] if "experiment" in runs else runs
    models = (
        sorted({str(model) for model in plotted["model"].dropna()}) if "model" in plotted else []
    )
    figure, (ours_axis, paper_axis) = plt.subplots(1, 2, figsize=(13, 5.5))
    cells = {
        norm: [
            results.run_cell(runs, experiment=experiment, norm=norm, batch_size=size)
            for size in batch_sizes
        ]
        for norm in paper.TABLE1_NORMS
    }
    # One row of no-number marks near the top edge for each normalization that needs one.
    marked = [norm for norm, row in cells.items() if any(math.isnan(cell.value) for cell in row)]
    notes = []
    for index, norm in enumerate(paper.TABLE1_NORMS):
        color, marker, short = NORM_COLORS[norm], NORM_MARKERS[norm], paper.NORM_LABELS[norm]
        values = np.array([cell.value for cell in cells[norm]], dtype=float)
        spreads = np.array([cell.sd for cell in cells[norm]], dtype=float)
        # A small sideways shift per normalization (the axis is log 2) keeps the error bars
        # of one batch size apart.
        positions = np.array(batch_sizes, dtype=float) * 2.0 ** (0.06 * (index - 1.5))
        ours_axis.errorbar(
            positions,
            values,
            yerr=spreads,
            color=color,
            marker=marker,
            linewidth=2,
            capsize=3,
            label=short,
        )
        for place, (position, value, cell) in enumerate(zip(positions, values, cells[norm])):
            left_out = left_out_note(cell)
            if not left_out:
                continue
            notes.append(f"{short} batch {batch_sizes[place]}: {left_out}")
            if not math.isnan(value):
                if not cell.status.startswith("complete"):
                    _hollow(ours_axis, position, value, color, marker)
                continue
            align = "right" if place == len(batch_sizes) - 1 else "left" if place == 0 else "center"
            _mark_without_number(
                ours_axis,
                position,
                0.95 - 0.09 * marked.index(norm),
                color,
                "x",
                f"{short}: {cell.status}",
                align=align,
            )
    published = {
        norm: np.array([paper.TABLE2[norm].get(size, math.nan) for size in batch_sizes])
        for norm in ("batch", "group")
    }
    for norm, other in (("batch", "group"), ("group", "batch")):
        color, short = NORM_COLORS[norm], paper.NORM_LABELS[norm]
        paper_axis.plot(
            batch_sizes,
            published[norm],
            color=color,
            marker=NORM_MARKERS[norm],
            linewidth=2,
            linestyle="--",
            label=f"{short} (paper)",
        )
        _label_points(
            paper_axis,
            batch_sizes,
            published[norm],
            published[other],
            color,
            above_on_tie=norm == "batch",
        )
    batch_axis(ours_axis, batch_sizes)
    batch_axis(paper_axis, batch_sizes)
    model_text = ", ".join(models) if models else "our model"
    ours_axis.set_title(f"this reproduction ({model_text}, {dataset})")
    paper_axis.set_title("paper (ResNet-50, ImageNet, Table 2)")
    ours_handles, _ = ours_axis.get_legend_handles_labels()
    if notes:
        ours_handles += [
            Line2D(
                [],
                [],
                marker="o",
                markerfacecolor="white",
                markeredgecolor="black",
                linestyle="",
                label="hollow: partial run",
            ),
            Line2D([], [], marker="x", color="black", linestyle="", label="x near top: no number"),
        ]
    seed_count = seed_count_text([cell for row in cells.values() for cell in row])
    # Below the panel: the top of it holds the rows of no-number marks.
    ours_axis.legend(
        handles=ours_handles,
        fontsize=8,
        title_fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=3,
        frameon=False,
        title=f"mean; error bars: ±1 sd over seeds, {seed_count}",
    )
    paper_axis.legend(fontsize=8, loc="upper left")
    # Head room for the rows of no-number marks, and for the paper's legend and value labels.
    _head_room(ours_axis, 0.1 + 0.16 * len(marked))
    _head_room(paper_axis, 0.3)
    span = equal_y_spans(ours_axis, paper_axis)
    paper_axis.set_title(
        f"paper (ResNet-50, ImageNet, Table 2)\ny axis: {span:.1f} points, as in ours"
    )
    footer = (
        "ours: mean over seeds of the median of the last 5 epochs (of all completed epochs when fewer); "
        "error bars: ±1 sd (sample standard deviation) over seeds, none for a single seed"
    )
    if notes:
        footer += "\nnot complete: " + "; ".join(notes)
    figure.text(0.5, -0.02, footer, ha="center", va="top", fontsize=8, wrap=True)
    title_figure(
        figure, "Sensitivity to batch size (analogue of the paper's Figure 1)", dataset, profile
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def _matches_fractions(runs: pd.DataFrame, fractions) -> pd.Series:
    # A frame column of tuples cannot be compared to a tuple with ==, which pandas would
    # read as one value per row.
    return runs["lr_decay_fractions"].apply(lambda value: tuple(value) == tuple(fractions))


def _recipe_notes(runs: pd.DataFrame, sweep_label: str) -> list[str]:
    """The runs of the sweep that are not complete, e.g. "BN at 0.03: partial (5/10 epochs)"."""
    sweep_runs = runs[runs["experiment"] == recipe.RECIPE_SWEEP]
    if sweep_runs.empty:
        return ["no runs of the recipe sweep yet"]
    planned = [
        (tuple(recipe_sweep.DECAY_FRACTIONS), float(rate)) for rate in recipe_sweep.LEARNING_RATES
    ]
    found = [
        (tuple(fractions), float(rate))
        for fractions, rate in zip(
            sweep_runs["lr_decay_fractions"], sweep_runs["base_learning_rate"]
        )
    ]
    notes = []
    for fractions, rate in dict.fromkeys(planned + found):
        schedule = recipe.schedule_label(fractions)
        chosen = sweep_runs[
            _matches_fractions(sweep_runs, fractions)
            & np.isclose(sweep_runs["base_learning_rate"].astype(float), rate)
        ]
        where = f"{rate:g}" + ("" if schedule == sweep_label else f" ({schedule})")
        for norm in paper.TABLE1_NORMS:
            left_out = left_out_note(results.run_cell(chosen, norm=norm))
            if left_out:
                notes.append(f"{paper.NORM_LABELS[norm]} at {where}: {left_out}")
    return notes


def _collapsed_shifts(on_sweep: pd.DataFrame) -> dict:
    """{(normalization label, rate): factor} that spreads sideways, centred on their rate,
    the collapsed runs with a number at a rate where two or more collapsed."""
    shifts = {}
    for _, row in on_sweep.iterrows():
        collapsed = row["collapsed"].split(", ")
        crowded = [
            paper.NORM_LABELS[norm]
            for norm in paper.TABLE1_NORMS
            if paper.NORM_LABELS[norm] in collapsed
            and not math.isnan(float(row[paper.NORM_LABELS[norm]]))
        ]
        if len(crowded) < 2:
            continue
        for place, short in enumerate(crowded):
            shifts[(short, float(row["base lr"]))] = COLLAPSED_SPREAD ** (
                place - (len(crowded) - 1) / 2
            )
    return shifts


def plot_recipe_sweep(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="recipe_sweep",
):
    """Validation error vs base learning rate for BN, LN, IN and GN in the recipe sweep
    (utils.recipe), with the rate its rule chooses.

    Lines: the sweep's schedule (÷10 at 50% and 75% of the epochs) at each base rate.
    Hollow markers: collapsed runs (diverged, or a last training error within
    `recipe.COLLAPSE_MARGIN` points of chance); one that diverged has no number and is
    marked near the top of the panel. Where several runs of one rate collapsed, their points
    are spread a little sideways, so that none hides another. Crosses: the runs of another
    schedule (the paper's, ÷10 at 30%, 60%, 90%, at 0.003), drawn slightly right of their
    rate so as not to hide the sweep's points. The dotted vertical line marks the chosen rate, once
    every run of the sweep's schedule has finished. One seed per run: no spread is drawn.

    Args: those the module docstring lists (results_source, figures_dir, dataset, profile,
    experiment, name), and:

    Returns:
        The matplotlib figure (one panel).
    """
    runs = results.as_runs(results_source)
    dataset, profile = data_and_profile(runs, dataset, profile)
    table = recipe.recipe_table(runs)
    sweep_label = recipe.schedule_label(recipe_sweep.DECAY_FRACTIONS)
    on_sweep = table[table["schedule"] == sweep_label]
    elsewhere = table[table["schedule"] != sweep_label]
    sweep_rates = on_sweep["base lr"].astype(float)
    rates = sorted(
        {float(rate) for rate in recipe_sweep.LEARNING_RATES}
        | set(sweep_rates)
        | set(elsewhere["base lr"].astype(float))
    )
    figure, axis = plt.subplots(figsize=(11, 6))
    handles = []
    collapsed_notes = []
    # One row of marks near the top edge for each normalization with a diverged run.
    marked = [
        norm
        for norm in paper.TABLE1_NORMS
        if any(
            paper.NORM_LABELS[norm] in collapsed.split(", ") and math.isnan(value)
            for collapsed, value in zip(on_sweep["collapsed"], on_sweep[paper.NORM_LABELS[norm]])
        )
    ]
    shifts = _collapsed_shifts(on_sweep)
    for norm in paper.TABLE1_NORMS:
        color, marker, short = NORM_COLORS[norm], NORM_MARKERS[norm], paper.NORM_LABELS[norm]
        values = on_sweep[short].astype(float)
        positions = [rate * shifts.get((short, rate), 1.0) for rate in sweep_rates]
        handles += axis.plot(
            positions,
            values,
            color=color,
            marker=marker,
            linewidth=2,
            label=f"{NORM_NAMES[norm]} ({short})",
        )
        for rate, position, value, collapsed in zip(
            sweep_rates, positions, values, on_sweep["collapsed"]
        ):
            if short not in collapsed.split(", "):
                continue
            collapsed_notes.append(f"{short} at {rate:g}")
            if math.isnan(value):
                _mark_without_number(
                    axis,
                    rate,
                    0.95 - 0.09 * marked.index(norm),
                    color,
                    marker,
                    f"{short}: diverged",
                    hollow=True,
                )
            else:
                _hollow(axis, position, value, color, marker)
        for rate, value in zip(elsewhere["base lr"].astype(float), elsewhere[short].astype(float)):
            # Shifted a little to the right of the rate, so as not to hide the sweep's point there.
            axis.plot(
                rate * OTHER_SCHEDULE_SHIFT,
                value,
                marker="x",
                markersize=10,
                markeredgewidth=2,
                color=color,
                linestyle="",
            )
    handles += axis.plot(
        sweep_rates,
        on_sweep["mean"].astype(float),
        color="black",
        linestyle="--",
        linewidth=1,
        label="mean of the four (the rule's criterion)",
    )
    for schedule in dict.fromkeys(elsewhere["schedule"]):
        handles.append(
            Line2D(
                [],
                [],
                marker="x",
                markersize=9,
                markeredgewidth=2,
                color="black",
                linestyle="",
                label=schedule,
            )
        )
    if collapsed_notes:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                markerfacecolor="white",
                markeredgecolor="black",
                markeredgewidth=2,
                linestyle="",
                label="hollow: collapsed" + (" (spread sideways at one rate)" if shifts else ""),
            )
        )
    chosen = table.attrs["chosen"]
    if chosen is not None:
        handles.append(
            axis.axvline(
                chosen, color="black", linestyle=":", linewidth=1.5, label=f"chosen: {chosen:g}"
            )
        )
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(FixedLocator(rates))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticklabels([f"{rate:g}" for rate in rates])
    axis.set_xlim(min(rates) / 1.6, max(rates) * 1.6)
    axis.set_xlabel("base learning rate (for 32 images; log scale)")
    axis.set_ylabel(VAL_ERROR_LABEL)
    axis.grid(alpha=0.3)
    axis.set_title(f"lines: {sweep_label}; batch 32, one seed")
    axis.legend(
        handles=handles,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        title_fontsize=8,
        title="median of the last 5 epochs",
    )
    _head_room(axis, 0.05 + 0.16 * len(marked))
    footer = [
        f"collapsed: diverged, or a last training error within {recipe.COLLAPSE_MARGIN:g} points of chance"
        + (f" ({'; '.join(collapsed_notes)})" if collapsed_notes else " (none)")
    ]
    if chosen is None:
        finished = not on_sweep.empty and (on_sweep["finished"] == "yes").all()
        footer.append(
            "no rate chosen: every rate has a collapsed normalization"
            if finished
            else "no rate chosen yet: a rate that is still a candidate has unfinished runs"
        )
    else:
        footer.append(
            f"chosen: {chosen:g}, the lowest mean among the rates where no normalization collapsed"
        )
    notes = _recipe_notes(runs, sweep_label)
    if notes:
        footer.append("not complete: " + "; ".join(notes))
    figure.text(0.5, -0.02, "\n".join(footer), ha="center", va="top", fontsize=8, wrap=True)
    title_figure(
        figure, "Base learning rate sweep (how the study's rate was chosen)", dataset, profile
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def _class_name(class_names, label) -> str:
    if class_names is None:
        return str(label)
    entry = class_names[label]
    if isinstance(entry, (tuple, list)):
        entry = entry[-1]
    # Tiny ImageNet names list synonyms after commas; the first is enough to recognise.
    text = str(entry).split(",")[0].strip()
    # Two short lines fit above a thumbnail; longer names are cut on the second line.
    lines = textwrap.wrap(text, width=16, max_lines=2, placeholder="…")
    return "\n".join(lines)


def plot_sample_images(
    images,
    labels,
    class_names=None,
    *,
    figures_dir="figures",
    dataset="Tiny ImageNet-200",
    profile=None,
    count=32,
    columns=8,
    name="sample_images",
):
    """A grid of training images with their class names, to check the data by eye.

    Args:
        images: array (n, height, width, 3), uint8 in [0, 255] or float in [0, 1] or [0, 255].
        labels: n integer labels.
        class_names: sequence indexed by label of names or (wnid, name) pairs; None shows labels.
        figures_dir: where ``<name>.png`` is written.
        dataset: dataset name for the title.
        profile: profile name for the title (None: omitted).
        count: how many images to show (the first `count`).
        columns: images per row.
        name: file name without extension.

    Returns:
        The matplotlib figure.
    """
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, height, width, 3), got {images.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"got {len(images)} images but {len(labels)} labels; pass one label per image"
        )
    count = min(count, len(images))
    if count == 0:
        raise ValueError("no images to show; pass at least one image")
    if images.dtype != np.uint8:
        scale = 255.0 if float(np.nanmax(images[:count])) > 1.0 else 1.0
        images = np.clip(images[:count] / scale, 0.0, 1.0)
    rows = math.ceil(count / columns)
    columns = min(columns, count)
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.6 * columns, 1.95 * rows + 0.6), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        axis.imshow(images[index].squeeze(), cmap="gray" if images.shape[-1] == 1 else None)
        label = int(labels[index])
        axis.set_title(f"{label}: {_class_name(class_names, label)}", fontsize=7)
    title = f"Sample training images\ndataset: {dataset}"
    if profile:
        title += f", profile: {profile}"
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def _draw_block(axis, normalized, samples, channels, pixels, color, *, group_size=None):
    """An oblique N x C x (H, W) block, shading the cells (n, c) that share one statistic."""
    depth_x, depth_y = 0.55, 0.45

    def point(n, c, h):
        return (n + depth_x * c, h + depth_y * c)

    def cell(corners, shaded):
        axis.add_patch(
            Polygon(
                [point(*corner) for corner in corners],
                closed=True,
                facecolor=color if shaded else "white",
                edgecolor="#444444",
                linewidth=0.7,
            )
        )

    for n in range(samples):  # front face, channel 0
        for h in range(pixels):
            cell([(n, 0, h), (n + 1, 0, h), (n + 1, 0, h + 1), (n, 0, h + 1)], normalized(n, 0))
    for n in range(samples):  # top face
        for c in range(channels):
            cell(
                [(n, c, pixels), (n + 1, c, pixels), (n + 1, c + 1, pixels), (n, c + 1, pixels)],
                normalized(n, c),
            )
    for c in range(channels):  # right face, last sample
        for h in range(pixels):
            cell(
                [
                    (samples, c, h),
                    (samples, c + 1, h),
                    (samples, c + 1, h + 1),
                    (samples, c, h + 1),
                ],
                normalized(samples - 1, c),
            )
    if group_size:  # thick lines between channel groups on the right and top faces
        for c in range(0, channels + 1, group_size):
            axis.plot(
                *zip(point(samples, c, 0), point(samples, c, pixels), point(0, c, pixels)),
                color="black",
                linewidth=1.8,
            )
    arrow = {"arrowstyle": "->", "linewidth": 1.2}
    axis.annotate("", xy=point(samples, 0, -0.5), xytext=point(0, 0, -0.5), arrowprops=arrow)
    axis.text(*point(samples / 2, 0, -1.1), "N (samples)", ha="center", va="center", fontsize=9)
    axis.annotate(
        "",
        xy=point(samples + 0.4, channels, -0.3),
        xytext=point(samples + 0.4, 0, -0.3),
        arrowprops=arrow,
    )
    axis.text(
        *point(samples + 0.9, channels / 2, -0.6),
        "C (channels)",
        ha="left",
        va="center",
        fontsize=9,
    )
    axis.annotate("", xy=point(-0.4, 0, pixels), xytext=point(-0.4, 0, 0), arrowprops=arrow)
    axis.text(*point(-0.7, 0, pixels / 2), "H, W\n(pixels)", ha="right", va="center", fontsize=9)
    low_x, low_y = point(-2.6, 0, -1.6)
    high_x, high_y = point(samples + 3.2, channels, pixels + 0.4)
    axis.set_xlim(low_x, high_x)
    axis.set_ylim(low_y, high_y)
    axis.set_aspect("equal")
    axis.axis("off")


def plot_normalization_axes(
    *,
    figures_dir="figures",
    groups=3,
    samples=5,
    channels=6,
    pixels=4,
    dataset=None,
    profile=None,
    name="normalization_axes",
):
    """Which elements each of BN, LN, IN, GN normalizes together (the paper's Figure 2 idea).

    Each panel is a block of activations with N (samples), C (channels) and H, W (pixels,
    flattened to one axis); the shaded cells share one mean and variance.

    Args:
        figures_dir: where ``<name>.png`` is written.
        groups: number of channel groups drawn for Group Norm (must divide `channels`).
        samples: N drawn.
        channels: C drawn.
        pixels: H * W cells drawn.
        dataset: optional dataset name added to the title.
        profile: optional profile name added to the title.
        name: file name without extension.

    Returns:
        The matplotlib figure (one panel per method).
    """
    if groups <= 0 or channels % groups:
        raise ValueError(f"groups={groups} must be positive and divide channels={channels}")
    group_size = channels // groups
    last = samples - 1
    methods = (
        ("batch", "over N, H, W\n(one channel, whole batch)", lambda n, c: c == 0, None),
        ("layer", "over C, H, W\n(one sample, all channels)", lambda n, c: n == last, None),
        (
            "instance",
            "over H, W\n(one sample, one channel)",
            lambda n, c: n == last and c == 0,
            None,
        ),
        (
            "group",
            f"over C/G, H, W (G = {groups} drawn)\n(one sample, one group of channels)",
            lambda n, c: n == last and c < group_size,
            group_size,
        ),
    )
    figure, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    for axis, (norm, subtitle, normalized, sizes) in zip(axes, methods):
        _draw_block(
            axis, normalized, samples, channels, pixels, NORM_COLORS[norm], group_size=sizes
        )
        axis.set_title(f"{NORM_NAMES[norm]}\n{subtitle}", fontsize=10)
    title = "Shaded: the activations that share one mean and variance (after the paper's Figure 2)"
    context = [f"dataset: {dataset}"] if dataset else []
    context += [f"profile: {profile}"] if profile else []
    if context:
        title += "\n" + ", ".join(context)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)
