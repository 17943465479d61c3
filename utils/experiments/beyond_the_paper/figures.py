"""Figures of the paper's further questions: how many groups, Batch Renorm, Weight
Standardization (the tables are in utils.experiments.beyond_the_paper.analysis).

Each function saves ``<figures_dir>/<name>.png`` and returns the figure. Our points are
the mean over seeds of each run's median val error of its last 5 epochs, with error bars
of ±1 sd over seeds; the published numbers (ResNet-50 on ImageNet, another scale
altogether) are drawn in their own panel, over a y range as many points wide as ours, so
that equal heights are equal differences in both. Cells that are not complete are named
below the figure with their status; a cell without a number has no point.
"""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.ticker import FixedLocator
from matplotlib.ticker import NullLocator

from utils.experiments.beyond_the_paper import analysis as ablations
from utils import paper
from utils import results
from utils.experiments.beyond_the_paper.group_ablation import SIZES as GROUP_ABLATION_SIZES
from utils.plots import NORM_COLORS
from utils.plots import equal_y_spans
from utils.plots import NORM_MARKERS
from utils.plots import VAL_ERROR_LABEL
from utils.plots import batch_axis
from utils.plots import data_and_profile
from utils.plots import left_out_note
from utils.plots import save_figure
from utils.plots import seed_count_text
from utils.plots import title_figure

# Colours and markers of the series that are not a plain normalization.
_SERIES_STYLE = {
    "G": (NORM_COLORS["group"], "s"),
    "C/G": ("#ff7f0e", "o"),
    "BN+WS": ("#1f77b4", "*"),
    "GN+WS": ("#d62728", "*"),
}
_FOOTER = (
    "ours: mean over seeds of the median of the last 5 epochs; error bars: ±1 sd (sample standard "
    "deviation) over seeds, none for a single seed"
)


def _style(label: str):
    """(colour, marker, line style) of a series: WS series dashed, in their norm's colour."""
    if label in _SERIES_STYLE:
        color, marker = _SERIES_STYLE[label]
        return color, marker, "--" if label.endswith("+WS") else "-"
    norm = {value: key for key, value in paper.NORM_LABELS.items()}[label]
    return NORM_COLORS[norm], NORM_MARKERS[norm], "-"


def _draw_series(axis, positions, cells, label, notes, names):
    """Error bars of one series of cells; cells that are not complete go to `notes`,
    under their `names`."""
    color, marker, linestyle = _style(label)
    values = np.array([cell.value for cell in cells], dtype=float)
    spreads = np.array([cell.sd for cell in cells], dtype=float)
    axis.errorbar(
        positions,
        values,
        yerr=spreads,
        color=color,
        marker=marker,
        linestyle=linestyle,
        linewidth=2,
        capsize=3,
        markersize=8 if marker == "*" else 6,
        label=label,
    )
    for cell_name, cell in zip(names, cells):
        left_out = left_out_note(cell)
        if left_out:
            notes.append(f"{cell_name}: {left_out}")


def _paper_title(paper_axis, text, span):
    paper_axis.set_title(f"{text}\ny axis: {span:.1f} points, as in ours", fontsize=11)


def _finish(
    figure, axes, cells, notes, title, runs, dataset, profile, figures_dir, name, footnote=""
):
    for axis in axes[1:]:
        axis.legend(fontsize=8, loc="best")
    axes[0].legend(
        fontsize=8,
        loc="best",
        title=f"error bars: ±1 sd over seeds, {seed_count_text(cells)}",
        title_fontsize=8,
    )
    footer = (
        _FOOTER
        + "; the paper's panel spans as many points of error as ours"
        + (f"\n{footnote}" if footnote else "")
        + ("\nnot complete: " + "; ".join(notes) if notes else "")
    )
    figure.text(0.5, -0.02, footer, ha="center", va="top", fontsize=8, wrap=True)
    title_figure(figure, title, *data_and_profile(runs, dataset, profile))
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def _groups_axis(axis, sizes, channels):
    """A log-2 x axis of G at the bottom and of C/G = `channels` / G at the top, both from
    LN-like on the left to IN-like on the right."""
    ticks = sorted(sizes)
    axis.set_xscale("log", base=2)
    axis.xaxis.set_major_locator(FixedLocator(ticks))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticklabels([str(value) for value in ticks])
    axis.set_xlim(min(ticks) / 1.4, max(ticks) * 1.4)
    axis.set_xlabel("groups G (1: LN, one group of all channels)", color=_SERIES_STYLE["G"][0])

    def other_axis(value):
        # Matplotlib probes the conversion at 0 too, where no group size lies.
        with np.errstate(divide="ignore"):
            return channels / np.asarray(value, dtype=float)

    top = axis.secondary_xaxis("top", functions=(other_axis, other_axis))
    top.xaxis.set_major_locator(FixedLocator(ticks))
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xticklabels([str(value) for value in ticks])
    top.set_xlabel(
        "channels per group C/G (1: IN, one channel per group)", color=_SERIES_STYLE["C/G"][0]
    )
    axis.set_ylabel(VAL_ERROR_LABEL)
    axis.grid(alpha=0.3)
    return top


def plot_group_ablation(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="group_ablation",
):
    """GN by number of groups and by channels per group, ours and the paper's (Table 3).

    G has its own x axis (bottom) and C/G its own (top), both running from LN-like groups
    (all channels in one) on the left to IN-like ones (one channel each) on the right; the
    two line up where G × C/G = 64, the channels of the narrowest layers.

    Returns:
        The figure (left: ours, batch 32; right: the paper's Table 3).
    """
    runs = results.as_runs(results_source)
    figure, (ours_axis, paper_axis) = plt.subplots(1, 2, figsize=(13, 6))
    sizes = np.array(GROUP_ABLATION_SIZES, dtype=float)
    # G = 64 is IN in a layer of 64 channels, as C/G = 1 is: there the two axes meet.
    channels = max(GROUP_ABLATION_SIZES)
    positions = {"G": sizes, "C/G": channels / sizes}
    notes, all_cells = [], []
    published = {"G": paper.TABLE3_GROUPS, "C/G": paper.TABLE3_CHANNELS_PER_GROUP}
    for index, (setting, label) in enumerate((("groups", "G"), ("channels_per_group", "C/G"))):
        cells = [
            ablations.group_ablation_cell(runs, setting, size) for size in GROUP_ABLATION_SIZES
        ]
        all_cells += cells
        # Apart by a hair, so that error bars at one position do not cover each other.
        shift = 2.0 ** (0.05 * (2 * index - 1))
        _draw_series(
            ours_axis,
            positions[label] * shift,
            cells,
            label,
            notes,
            [f"{label} = {s}" for s in GROUP_ABLATION_SIZES],
        )
        color, marker, _ = _style(label)
        paper_axis.plot(
            positions[label],
            [published[label][size] for size in GROUP_ABLATION_SIZES],
            color=color,
            marker=marker,
            linestyle="--",
            linewidth=2,
            label=f"{label} (paper)",
        )
    for axis in (ours_axis, paper_axis):
        _groups_axis(axis, GROUP_ABLATION_SIZES, channels)
    ours_axis.set_title("this reproduction (batch 32)")
    _paper_title(
        paper_axis, "paper (ResNet-50, ImageNet, Table 3)", equal_y_spans(ours_axis, paper_axis)
    )
    return _finish(
        figure,
        (ours_axis, paper_axis),
        all_cells,
        notes,
        "Group Norm: how many groups (analogue of the paper's Table 3)",
        runs,
        dataset,
        profile,
        figures_dir,
        name,
        footnote=f"G: bottom axis, C/G: top axis, both from LN-like (left) to IN-like (right); they line "
        f"up where G × C/G = {channels}, the channels of the narrowest layers",
    )


def _label_published(axis, published, span, shifts):
    """Writes the published numbers of each batch size in a column right of its points,
    moving labels apart where their points are closer than a line of text."""
    # About one line of 9-point text on a panel of this height, as a fraction of its span.
    gap = 0.05 * span
    # Right of the rightmost point of a batch size, by about a marker's width: the batch
    # axis decreases to the right, so that is below the smallest shift.
    column = min(shifts.values(), default=1.0) * 2.0**-0.12
    by_size = {}
    for label, numbers in published.items():
        for size, value in numbers.items():
            by_size.setdefault(size, []).append((value, label))
    for size, points in by_size.items():
        points.sort()
        heights = [points[0][0]]
        for value, _ in points[1:]:
            heights.append(max(value, heights[-1] + gap))
        # Centred on the points again, so that the stack does not drift upwards.
        drift = np.mean(heights) - np.mean([value for value, _ in points])
        for (value, label), height in zip(points, heights):
            axis.annotate(
                f"{value:g}",
                (size * shifts.get(label, 1.0), value),
                xytext=(size * column, height - drift),
                va="center",
                color=_style(label)[0],
                fontsize=9,
            )


def _by_batch_figure(
    runs,
    labelled_cells,
    batch_sizes,
    published,
    title,
    paper_title,
    dataset,
    profile,
    figures_dir,
    name,
):
    """Ours by batch size (left) and the published numbers (right) of labelled series.

    `labelled_cells(batch_size)` gives {label: run_cell}; `published` maps labels to
    {batch size: number}.
    """
    figure, (ours_axis, paper_axis) = plt.subplots(1, 2, figsize=(13, 5.5))
    by_label = {}
    for batch_size in batch_sizes:
        for label, cell in labelled_cells(batch_size).items():
            by_label.setdefault(label, []).append(cell)
    notes = []
    # A small sideways shift per series (the axis is log 2) keeps points of one batch size
    # apart; the published points take their series' shift too.
    shifts = {
        label: 2.0 ** (0.05 * (index - (len(by_label) - 1) / 2))
        for index, label in enumerate(by_label)
    }
    for label, cells in by_label.items():
        positions = np.array(batch_sizes, dtype=float) * shifts[label]
        _draw_series(
            ours_axis,
            positions,
            cells,
            label,
            notes,
            [f"{label} at batch {size}" for size in batch_sizes],
        )
    for label, numbers in published.items():
        color, marker, linestyle = _style(label)
        sizes = sorted(numbers, reverse=True)
        paper_axis.plot(
            np.array(sizes, dtype=float) * shifts.get(label, 1.0),
            [numbers[size] for size in sizes],
            color=color,
            marker=marker,
            linestyle=linestyle,
            linewidth=2,
            markersize=9,
            label=f"{label} (published)",
        )
    for axis in (ours_axis, paper_axis):
        batch_axis(axis, batch_sizes)
    ours_axis.set_title("this reproduction")
    span = equal_y_spans(ours_axis, paper_axis)
    _paper_title(paper_axis, paper_title, span)
    _label_published(paper_axis, published, span, shifts)
    all_cells = [cell for cells in by_label.values() for cell in cells]
    return _finish(
        figure,
        (ours_axis, paper_axis),
        all_cells,
        notes,
        title,
        runs,
        dataset,
        profile,
        figures_dir,
        name,
    )


def plot_batch_renorm(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    batch_sizes=ablations.BATCH_RENORM_SIZES,
    name="batch_renorm",
):
    """Batch Renorm beside BN and GN by batch size; the paper's three numbers at 4 images/GPU."""
    runs = results.as_runs(results_source)

    def cells(batch_size):
        return {
            paper.NORM_LABELS[norm]: results.run_cell(
                runs, experiment=ablations.BATCH_RENORM, norm=norm, batch_size=batch_size
            )
            for norm in ("batch", "batch_renorm", "group")
        }

    published = {
        paper.NORM_LABELS[norm]: {4: value} for norm, value in paper.BATCH_RENORM_AT_4.items()
    }
    return _by_batch_figure(
        runs,
        cells,
        batch_sizes,
        published,
        "Batch Renorm (r ≤ 1.5, d ≤ 0.5) beside BN and GN",
        "paper (ResNet-50, ImageNet, 4 images/GPU)",
        dataset,
        profile,
        figures_dir,
        name,
    )


def plot_weight_standardization(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    batch_sizes=ablations.WEIGHT_STANDARDIZATION_SIZES,
    name="weight_standardization",
):
    """BN and GN with and without Weight Standardization by batch size; the published
    ResNet-50 numbers at 32 images/GPU."""
    runs = results.as_runs(results_source)

    def cells(batch_size):
        return {
            label: results.run_cell(
                runs,
                experiment=ablations.WEIGHT_STANDARDIZATION,
                norm=norm,
                batch_size=batch_size,
                weight_standardization=standardized,
            )
            for (norm, standardized), label in ablations.WS_LABELS.items()
        }

    published = {
        "BN": {32: paper.WEIGHT_STANDARDIZATION["batch"]},
        "GN": {32: paper.WEIGHT_STANDARDIZATION["group"]},
        "GN+WS": {32: paper.WEIGHT_STANDARDIZATION["group+ws"]},
    }
    return _by_batch_figure(
        runs,
        cells,
        batch_sizes,
        published,
        "Weight Standardization with BN and GN",
        "published (ResNet-50, ImageNet, 32 images/GPU)",
        dataset,
        profile,
        figures_dir,
        name,
    )
