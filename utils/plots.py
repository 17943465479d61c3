"""The figures: analogues of the paper's Figures 1, 2, 4 and 5, plus a data sanity grid.

Every function saves ``<figures_dir>/<name>.png`` (150 dpi) and returns the matplotlib
figure. Curves and points come from history.csv through utils.results (median of the last
5 completed epochs, as in the paper); the paper's numbers (Wu & He, ECCV 2018,
arXiv:1803.08494; ResNet-50 on ImageNet) are drawn dashed or quoted in legends as
"paper". Missing, partial and diverged runs appear in the legends with their status.
Titles carry the dataset and profile, read from the runs unless given.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
from pathlib import Path

import matplotlib

# Without a display (CI, servers) pick the file-only backend; notebooks keep their own.
if not os.environ.get("MPLBACKEND") and not os.environ.get("DISPLAY") and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator  # noqa: E402

from utils import paper, results  # noqa: E402

DPI = 150
# One colour per normalization, the same in every figure.
NORM_COLORS = {
    "batch": "#1f77b4",
    "layer": "#2ca02c",
    "instance": "#9467bd",
    "group": "#d62728",
    "none": "#7f7f7f",
}
# One colour per batch size, dark (large batch) to light (small batch).
BATCH_SIZE_COLORS = {
    size: matplotlib.colormaps["plasma"](position)
    for size, position in zip(paper.BATCH_SIZES, np.linspace(0.0, 0.8, len(paper.BATCH_SIZES)))
}
ERROR_LABEL = "top-1 error (%)"
VAL_ERROR_LABEL = "validation top-1 error (%)"
NORM_NAMES = {"batch": "Batch Norm", "layer": "Layer Norm", "instance": "Instance Norm", "group": "Group Norm"}


def _frames(results_source, histories):
    """(runs, histories) from a results folder path or from already loaded frames."""
    runs = results.as_runs(results_source)
    if histories is None:
        histories = results.load_histories(runs=runs)
    return runs, histories


def _context(runs: pd.DataFrame, dataset, profile) -> tuple[str, str]:
    def derive(column):
        found = sorted({str(value) for value in runs[column].dropna()}) if column in runs else []
        return ", ".join(found) if found else "unknown"

    return dataset or derive("dataset"), profile or derive("profile")


def _suptitle(figure, text: str, dataset: str, profile: str):
    figure.suptitle(f"{text}\ndataset: {dataset}, profile: {profile}", fontsize=11)


def _save(figure, figures_dir, name: str):
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / f"{name}.png", dpi=DPI, bbox_inches="tight")
    return figure


def _history_of(histories: pd.DataFrame, run_name: str, experiment: str) -> pd.DataFrame:
    if histories.empty:
        return histories
    chosen = histories[(histories["run_name"] == run_name) & (histories["experiment"] == experiment)]
    return chosen.sort_values("epoch")


def _draw_runs(axis, runs, histories, column, color, label, *, experiment, **selection):
    """Plot `column` vs epoch for every run matching `selection`; returns the legend handle."""
    matches = results.find_runs(runs, experiment=experiment, **selection)
    handle = Line2D([], [], color=color, linewidth=2, label=label,
                    linestyle="-" if not matches.empty else ":")
    for run in matches.itertuples(index=False):
        history = _history_of(histories, run.run_name, experiment)
        if history.empty:
            continue
        style = "--" if run.state == "partial" else "-"
        axis.plot(history["epoch"], history[column], color=color, linewidth=1.8, linestyle=style)
        if run.state == "diverged":
            finite = history[np.isfinite(pd.to_numeric(history[column], errors="coerce"))]
            handle.set_marker("X")
            handle.set_markeredgecolor("black")
            if not finite.empty:
                axis.plot(finite["epoch"].iloc[-1], finite[column].iloc[-1], marker="X",
                          markersize=10, color=color, markeredgecolor="black")
        if run.state == "partial":
            handle.set_linestyle("--")
    return handle


def _status_text(cell: dict) -> str:
    status = cell["status"]
    return "" if status == "complete" else f" [{status}]"


def _value_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}%"


def _legend_below(axis, handles, title):
    # Below the panel, so that no legend ever hides a curve (e.g. a diverging one).
    axis.legend(handles=handles, title=title, fontsize=8, title_fontsize=8, loc="upper center",
                bbox_to_anchor=(0.5, -0.2), frameon=False)


def _epoch_axis(axis):
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def plot_norm_comparison(results_source="results", *, histories=None, figures_dir="figures",
                         dataset=None, profile=None, experiment=results.NORM_COMPARISON,
                         batch_size=32, name="norm_comparison"):
    """Train and validation error vs epoch for BN, LN, IN, GN (the paper's Figure 4).

    Args:
        results_source: a results folder or a runs frame from utils.results.load_runs.
        histories: the matching frame from load_histories (loaded from the runs when None).
        figures_dir: where ``<name>.png`` is written.
        dataset: dataset name for the title (default: read from the runs).
        profile: profile name for the title (default: read from the runs).
        experiment: the experiment holding the runs.
        batch_size: the batch size of the compared runs.
        name: file name without extension.

    Returns:
        The matplotlib figure (two panels: train, validation).
    """
    runs, histories = _frames(results_source, histories)
    dataset, profile = _context(runs, dataset, profile)
    figure, (train_axis, val_axis) = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    train_handles, val_handles = [], []
    for norm in paper.TABLE1_NORMS:
        cell = results.run_cell(runs, experiment=experiment, norm=norm, batch_size=batch_size)
        short = paper.NORM_LABELS[norm]
        color = NORM_COLORS[norm]
        train_label = f"{short}: {_value_text(cell['train'])}{_status_text(cell)}"
        val_label = (f"{short}: ours {_value_text(cell['value'])}, paper {paper.TABLE1[norm]:.1f}%"
                     f"{_status_text(cell)}")
        train_handles.append(_draw_runs(train_axis, runs, histories, "train_error", color, train_label,
                                        experiment=experiment, norm=norm, batch_size=batch_size))
        val_handles.append(_draw_runs(val_axis, runs, histories, "val_error", color, val_label,
                                      experiment=experiment, norm=norm, batch_size=batch_size))
    for axis, panel, handles, legend_title in (
        (train_axis, "training error", train_handles, "median of last 5 epochs"),
        (val_axis, "validation error", val_handles, "median of last 5 epochs\n(paper: ResNet-50, ImageNet)"),
    ):
        axis.set_title(f"{panel}, batch {batch_size}")
        _epoch_axis(axis)
        _legend_below(axis, handles, legend_title)
        axis.set_ylabel(ERROR_LABEL)
        axis.tick_params(labelleft=True)
    _suptitle(figure, "Error vs epoch by normalization (analogue of the paper's Figure 4)", dataset, profile)
    figure.tight_layout()
    return _save(figure, figures_dir, name)


def plot_batch_size_curves(results_source="results", *, histories=None, figures_dir="figures",
                           dataset=None, profile=None, experiment=results.BATCH_SIZE_SWEEP,
                           batch_sizes=paper.BATCH_SIZES, name="batch_size_curves"):
    """Validation error vs epoch at each batch size, BN beside GN (the paper's Figure 5).

    Args:
        results_source: a results folder or a runs frame from utils.results.load_runs.
        histories: the matching frame from load_histories (loaded from the runs when None).
        figures_dir: where ``<name>.png`` is written.
        dataset: dataset name for the title (default: read from the runs).
        profile: profile name for the title (default: read from the runs).
        experiment: the experiment holding the runs.
        batch_sizes: the batch sizes to draw, largest first.
        name: file name without extension.

    Returns:
        The matplotlib figure (two panels sharing the y axis: BN, GN).
    """
    runs, histories = _frames(results_source, histories)
    dataset, profile = _context(runs, dataset, profile)
    figure, axes = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    for axis, norm in zip(axes, ("batch", "group")):
        handles = []
        for batch_size in batch_sizes:
            cell = results.run_cell(runs, experiment=experiment, norm=norm, batch_size=batch_size)
            color = BATCH_SIZE_COLORS.get(batch_size, "black")
            paper_value = paper.TABLE2[norm].get(batch_size, math.nan)
            label = (f"batch {batch_size}: ours {_value_text(cell['value'])}, paper "
                     f"{_value_text(paper_value)}{_status_text(cell)}")
            handles.append(_draw_runs(axis, runs, histories, "val_error", color, label,
                                      experiment=experiment, norm=norm, batch_size=batch_size))
        axis.set_title(f"{NORM_NAMES[norm]} ({paper.NORM_LABELS[norm]})")
        _epoch_axis(axis)
        axis.set_ylabel(VAL_ERROR_LABEL)
        axis.tick_params(labelleft=True)
        _legend_below(axis, handles, "median of last 5 epochs (paper: ResNet-50, ImageNet)")
    _suptitle(figure, "Validation error vs epoch by batch size (analogue of the paper's Figure 5)",
              dataset, profile)
    figure.tight_layout()
    return _save(figure, figures_dir, name)


def _batch_axis(axis, batch_sizes):
    axis.set_xscale("log", base=2)
    axis.xaxis.set_major_locator(FixedLocator(list(batch_sizes)))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticklabels([str(size) for size in batch_sizes])
    # Decreasing to the right, as in the paper's Figure 1.
    axis.set_xlim(max(batch_sizes) * 1.35, min(batch_sizes) / 1.35)
    axis.set_xlabel("batch size (images per worker)")
    axis.set_ylabel(VAL_ERROR_LABEL)
    axis.grid(alpha=0.3)


def plot_batch_size_sensitivity(results_source="results", *, figures_dir="figures", dataset=None,
                                profile=None, experiment=results.BATCH_SIZE_SWEEP,
                                batch_sizes=paper.BATCH_SIZES, name="batch_size_sensitivity"):
    """Final validation error vs batch size for BN and GN, ours beside the paper's (Figure 1).

    Args:
        results_source: a results folder or a runs frame from utils.results.load_runs.
        figures_dir: where ``<name>.png`` is written.
        dataset: dataset name for the title (default: read from the runs).
        profile: profile name for the title (default: read from the runs).
        experiment: the experiment holding the runs.
        batch_sizes: the batch sizes on the x axis.
        name: file name without extension.

    Returns:
        The matplotlib figure (left: this reproduction; right: the paper's Table 2 values).
    """
    runs = results.as_runs(results_source)
    dataset, profile = _context(runs, dataset, profile)
    models = sorted({str(model) for model in runs["model"].dropna()}) if "model" in runs else []
    figure, (ours_axis, paper_axis) = plt.subplots(1, 2, figsize=(12, 5))
    notes = []
    series = {}
    for norm in ("batch", "group"):
        cells = [results.run_cell(runs, experiment=experiment, norm=norm, batch_size=size)
                 for size in batch_sizes]
        series[norm] = (cells, np.array([cell["value"] for cell in cells], dtype=float),
                        np.array([paper.TABLE2[norm].get(size, math.nan) for size in batch_sizes]))
    for norm, marker in (("batch", "o"), ("group", "s")):
        other = "group" if norm == "batch" else "batch"
        color = NORM_COLORS[norm]
        short = paper.NORM_LABELS[norm]
        cells, values, paper_values = series[norm]
        ours_axis.plot(batch_sizes, values, color=color, marker=marker, linewidth=2, label=short)
        paper_axis.plot(batch_sizes, paper_values, color=color, marker=marker, linewidth=2,
                        linestyle="--", label=f"{short} (paper)")
        for axis, own, others in ((ours_axis, values, series[other][1]),
                                  (paper_axis, paper_values, series[other][2])):
            for size, value, competitor in zip(batch_sizes, own, others):
                if math.isnan(value):
                    continue
                # The higher of BN and GN is labelled above its point, the lower below.
                above = math.isnan(competitor) or value > competitor or (value == competitor and norm == "batch")
                axis.annotate(f"{value:.1f}", (size, value), textcoords="offset points",
                              xytext=(0, 9 if above else -15), ha="center", fontsize=8, color=color,
                              bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                    "alpha": 0.8})
        for index, (size, value, cell) in enumerate(zip(batch_sizes, values, cells)):
            if cell["status"] == "complete":
                continue
            notes.append(f"{short} batch {size}: {cell['status']}")
            if not math.isnan(value):
                # Partial: hollow marker over the filled one.
                ours_axis.plot(size, value, marker=marker, markersize=11, markerfacecolor="white",
                               markeredgecolor=color, markeredgewidth=2)
                continue
            # No number: a cross near the top edge of the panel, with the reason beside it.
            height = 0.95 if norm == "batch" else 0.86
            ours_axis.plot(size, height, marker="x", markersize=9, color=color, markeredgewidth=2,
                           transform=ours_axis.get_xaxis_transform(), clip_on=False)
            align = "right" if index == len(batch_sizes) - 1 else "left" if index == 0 else "center"
            ours_axis.annotate(f"{short}: {cell['status']}", (size, height),
                               xycoords=ours_axis.get_xaxis_transform(), textcoords="offset points",
                               xytext=(0, -13), ha=align, fontsize=7, color=color)
    _batch_axis(ours_axis, batch_sizes)
    _batch_axis(paper_axis, batch_sizes)
    model_text = ", ".join(models) if models else "our model"
    ours_axis.set_title(f"this reproduction ({model_text}, {dataset})")
    paper_axis.set_title("paper (ResNet-50, ImageNet, Table 2)")
    ours_handles, _ = ours_axis.get_legend_handles_labels()
    if notes:
        ours_handles += [
            Line2D([], [], marker="o", markerfacecolor="white", markeredgecolor="black", linestyle="",
                   label="hollow: partial run"),
            Line2D([], [], marker="x", color="black", linestyle="", label="x near top: no number"),
        ]
    ours_axis.legend(handles=ours_handles, fontsize=8, loc="upper left")
    paper_axis.legend(fontsize=8, loc="upper left")
    for axis in (ours_axis, paper_axis):
        low, high = axis.get_ylim()
        # Head room for the value labels and the no-number crosses.
        axis.set_ylim(low - 0.08 * (high - low), high + 0.3 * (high - low))
    footer = "median of the last 5 epochs (of all completed epochs when fewer)"
    if notes:
        footer += "\nnot complete: " + "; ".join(notes)
    figure.text(0.5, -0.02, footer, ha="center", va="top", fontsize=8, wrap=True)
    _suptitle(figure, "Sensitivity to batch size (analogue of the paper's Figure 1)", dataset, profile)
    figure.tight_layout()
    return _save(figure, figures_dir, name)


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


def plot_sample_images(images, labels, class_names=None, *, figures_dir="figures", dataset="Tiny ImageNet-200",
                       profile=None, count=32, columns=8, name="sample_images"):
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
        raise ValueError(f"got {len(images)} images but {len(labels)} labels; pass one label per image")
    count = min(count, len(images))
    if count == 0:
        raise ValueError("no images to show; pass at least one image")
    if images.dtype != np.uint8:
        scale = 255.0 if float(np.nanmax(images[:count])) > 1.0 else 1.0
        images = np.clip(images[:count] / scale, 0.0, 1.0)
    rows = math.ceil(count / columns)
    columns = min(columns, count)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.95 * rows + 0.6), squeeze=False)
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
    return _save(figure, figures_dir, name)


def _draw_block(axis, normalized, samples, channels, pixels, color, *, group_size=None):
    """An oblique N x C x (H, W) block, shading the cells (n, c) that share one statistic."""
    depth_x, depth_y = 0.55, 0.45

    def point(n, c, h):
        return (n + depth_x * c, h + depth_y * c)

    def cell(corners, shaded):
        axis.add_patch(Polygon([point(*corner) for corner in corners], closed=True,
                               facecolor=color if shaded else "white", edgecolor="#444444", linewidth=0.7))

    for n in range(samples):  # front face, channel 0
        for h in range(pixels):
            cell([(n, 0, h), (n + 1, 0, h), (n + 1, 0, h + 1), (n, 0, h + 1)], normalized(n, 0))
    for n in range(samples):  # top face
        for c in range(channels):
            cell([(n, c, pixels), (n + 1, c, pixels), (n + 1, c + 1, pixels), (n, c + 1, pixels)],
                 normalized(n, c))
    for c in range(channels):  # right face, last sample
        for h in range(pixels):
            cell([(samples, c, h), (samples, c + 1, h), (samples, c + 1, h + 1), (samples, c, h + 1)],
                 normalized(samples - 1, c))
    if group_size:  # thick lines between channel groups on the right and top faces
        for c in range(0, channels + 1, group_size):
            axis.plot(*zip(point(samples, c, 0), point(samples, c, pixels), point(0, c, pixels)),
                      color="black", linewidth=1.8)
    arrow = {"arrowstyle": "->", "linewidth": 1.2}
    axis.annotate("", xy=point(samples, 0, -0.5), xytext=point(0, 0, -0.5), arrowprops=arrow)
    axis.text(*point(samples / 2, 0, -1.1), "N (samples)", ha="center", va="center", fontsize=9)
    axis.annotate("", xy=point(samples + 0.4, channels, -0.3), xytext=point(samples + 0.4, 0, -0.3),
                  arrowprops=arrow)
    axis.text(*point(samples + 0.9, channels / 2, -0.6), "C (channels)", ha="left", va="center", fontsize=9)
    axis.annotate("", xy=point(-0.4, 0, pixels), xytext=point(-0.4, 0, 0), arrowprops=arrow)
    axis.text(*point(-0.7, 0, pixels / 2), "H, W\n(pixels)", ha="right", va="center", fontsize=9)
    low_x, low_y = point(-2.6, 0, -1.6)
    high_x, high_y = point(samples + 3.2, channels, pixels + 0.4)
    axis.set_xlim(low_x, high_x)
    axis.set_ylim(low_y, high_y)
    axis.set_aspect("equal")
    axis.axis("off")


def plot_normalization_axes(*, figures_dir="figures", groups=3, samples=5, channels=6, pixels=4,
                            dataset=None, profile=None, name="normalization_axes"):
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
        ("instance", "over H, W\n(one sample, one channel)", lambda n, c: n == last and c == 0, None),
        ("group", f"over C/G, H, W (G = {groups} drawn)\n(one sample, one group of channels)",
         lambda n, c: n == last and c < group_size, group_size),
    )
    figure, axes = plt.subplots(1, 4, figsize=(16, 4.6))
    for axis, (norm, subtitle, normalized, sizes) in zip(axes, methods):
        _draw_block(axis, normalized, samples, channels, pixels, NORM_COLORS[norm], group_size=sizes)
        axis.set_title(f"{NORM_NAMES[norm]}\n{subtitle}", fontsize=10)
    title = "Shaded: the activations that share one mean and variance (after the paper's Figure 2)"
    context = [f"dataset: {dataset}"] if dataset else []
    context += [f"profile: {profile}"] if profile else []
    if context:
        title += "\n" + ", ".join(context)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _save(figure, figures_dir, name)
