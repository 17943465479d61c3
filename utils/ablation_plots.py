"""Figures of the paper's further questions: how many groups, Batch Renorm, Weight
Standardization (the tables are in utils.ablations).

Each function saves ``<figures_dir>/<name>.png`` and returns the figure. Our points are
the mean over seeds of each run's median val error of its last 5 epochs, with error bars
of ±1 sd over seeds; the published numbers (ResNet-50 on ImageNet, another scale
altogether) are drawn in their own panel. Cells that are not complete are named below
the figure with their status; a cell without a number has no point.
"""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from utils import ablations
from utils import paper
from utils import results
from utils.experiments.group_ablation import SIZES as GROUP_ABLATION_SIZES
from utils.plots import NORM_COLORS
from utils.plots import NORM_MARKERS
from utils.plots import batch_axis
from utils.plots import data_and_profile
from utils.plots import left_out_note
from utils.plots import save_figure
from utils.plots import seed_count_text
from utils.plots import decreasing_log2_axis
from utils.plots import title_figure

# Colours and markers of the series that are not a plain normalization.
_SERIES_STYLE = {
    "G": (NORM_COLORS["group"], "s"),
    "C/G": ("#ff7f0e", "o"),
    "BN+WS": ("#1f77b4", "*"),
    "GN+WS": ("#d62728", "*"),
}
_FOOTER = ("ours: mean over seeds of the median of the last 5 epochs; error bars: ±1 sd (sample standard "
           "deviation) over seeds, none for a single seed")


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
    axis.errorbar(positions, values, yerr=spreads, color=color, marker=marker, linestyle=linestyle,
                  linewidth=2, capsize=3, markersize=8 if marker == "*" else 6, label=label)
    for cell_name, cell in zip(names, cells):
        left_out = left_out_note(cell)
        if left_out:
            notes.append(f"{cell_name}: {left_out}")


def _finish(figure, axes, cells, notes, title, runs, dataset, profile, figures_dir, name):
    for axis in axes[1:]:
        axis.legend(fontsize=8, loc="best")
    axes[0].legend(fontsize=8, loc="best", title=f"error bars: ±1 sd over seeds, {seed_count_text(cells)}",
                   title_fontsize=8)
    footer = _FOOTER + ("\nnot complete: " + "; ".join(notes) if notes else "")
    figure.text(0.5, -0.02, footer, ha="center", va="top", fontsize=8, wrap=True)
    title_figure(figure, title, *data_and_profile(runs, dataset, profile))
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def plot_group_ablation(results_source="results", *, figures_dir="figures", dataset=None, profile=None,
                        name="group_ablation"):
    """GN by number of groups and by channels per group, ours and the paper's (Table 3).

    Returns:
        The figure (left: ours, batch 32; right: the paper's Table 3).
    """
    runs = results.as_runs(results_source)
    figure, (ours_axis, paper_axis) = plt.subplots(1, 2, figsize=(13, 5.5))
    sizes = np.array(GROUP_ABLATION_SIZES, dtype=float)
    notes, all_cells = [], []
    published = {"G": paper.TABLE3_GROUPS, "C/G": paper.TABLE3_CHANNELS_PER_GROUP}
    for index, (setting, label) in enumerate((("groups", "G"), ("channels_per_group", "C/G"))):
        cells = [ablations.group_ablation_cell(runs, setting, size) for size in GROUP_ABLATION_SIZES]
        all_cells += cells
        shift = 2.0 ** (0.05 * (2 * index - 1))
        _draw_series(ours_axis, sizes * shift, cells, label, notes, [f"{label} = {s}" for s in GROUP_ABLATION_SIZES])
        color, marker, _ = _style(label)
        paper_axis.plot(sizes, [published[label][size] for size in GROUP_ABLATION_SIZES], color=color,
                        marker=marker, linestyle="--", linewidth=2, label=f"{label} (paper)")
    for axis in (ours_axis, paper_axis):
        decreasing_log2_axis(axis, GROUP_ABLATION_SIZES,
                             "G (groups), or C/G (channels per group); 1 is LN for G, IN for C/G", margin=1.4)
    ours_axis.set_title("this reproduction (batch 32)")
    paper_axis.set_title("paper (ResNet-50, ImageNet, Table 3)")
    return _finish(figure, (ours_axis, paper_axis), all_cells, notes,
                   "Group Norm: how many groups (analogue of the paper's Table 3)", runs, dataset, profile,
                   figures_dir, name)


def _by_batch_figure(runs, labelled_cells, batch_sizes, published, title, paper_title, dataset, profile,
                     figures_dir, name):
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
    for index, (label, cells) in enumerate(by_label.items()):
        positions = np.array(batch_sizes, dtype=float) * 2.0 ** (0.05 * (index - (len(by_label) - 1) / 2))
        _draw_series(ours_axis, positions, cells, label, notes, [f"{label} at batch {size}" for size in batch_sizes])
    for label, numbers in published.items():
        color, marker, linestyle = _style(label)
        sizes = sorted(numbers, reverse=True)
        paper_axis.plot(sizes, [numbers[size] for size in sizes], color=color, marker=marker, linestyle=linestyle,
                        linewidth=2, markersize=9, label=f"{label} (published)")
        for size in sizes:
            paper_axis.annotate(f"{numbers[size]:g}", (size, numbers[size]), textcoords="offset points",
                                xytext=(10, -3), color=color, fontsize=9)
    for axis in (ours_axis, paper_axis):
        batch_axis(axis, batch_sizes)
    ours_axis.set_title("this reproduction")
    paper_axis.set_title(paper_title)
    all_cells = [cell for cells in by_label.values() for cell in cells]
    return _finish(figure, (ours_axis, paper_axis), all_cells, notes, title, runs, dataset, profile,
                   figures_dir, name)


def plot_batch_renorm(results_source="results", *, figures_dir="figures", dataset=None, profile=None,
                      batch_sizes=ablations.BATCH_RENORM_SIZES, name="batch_renorm"):
    """Batch Renorm beside BN and GN by batch size; the paper's three numbers at 4 images/GPU."""
    runs = results.as_runs(results_source)

    def cells(batch_size):
        return {paper.NORM_LABELS[norm]: results.run_cell(runs, experiment=ablations.BATCH_RENORM, norm=norm,
                                                          batch_size=batch_size)
                for norm in ("batch", "batch_renorm", "group")}

    published = {paper.NORM_LABELS[norm]: {4: value} for norm, value in paper.BATCH_RENORM_AT_4.items()}
    return _by_batch_figure(runs, cells, batch_sizes, published,
                            "Batch Renorm (r ≤ 1.5, d ≤ 0.5) beside BN and GN",
                            "paper (ResNet-50, ImageNet, 4 images/GPU)", dataset, profile, figures_dir, name)


def plot_weight_standardization(results_source="results", *, figures_dir="figures", dataset=None, profile=None,
                                batch_sizes=ablations.WEIGHT_STANDARDIZATION_SIZES,
                                name="weight_standardization"):
    """BN and GN with and without Weight Standardization by batch size; the published
    ResNet-50 numbers at 32 images/GPU."""
    runs = results.as_runs(results_source)

    def cells(batch_size):
        return {label: results.run_cell(runs, experiment=ablations.WEIGHT_STANDARDIZATION, norm=norm,
                                        batch_size=batch_size, weight_standardization=standardized)
                for (norm, standardized), label in ablations.WS_LABELS.items()}

    published = {"BN": {32: paper.WEIGHT_STANDARDIZATION["batch"]}, "GN": {32: paper.WEIGHT_STANDARDIZATION["group"]},
                 "GN+WS": {32: paper.WEIGHT_STANDARDIZATION["group+ws"]}}
    return _by_batch_figure(runs, cells, batch_sizes, published, "Weight Standardization with BN and GN",
                            "published (ResNet-50, ImageNet, 32 images/GPU)", dataset, profile, figures_dir, name)
