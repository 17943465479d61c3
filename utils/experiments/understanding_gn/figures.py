"""Figures of the tests of the 2021 study's explanation of GN's lag (tables in
utils.experiments.understanding_gn.analysis).

Each function saves ``<figures_dir>/<name>.png`` and returns the figure. Lines are means
over seeds with a ±1 sd band (bars on points), except on the log axes of the landscape,
where they are geometric means with a ×/÷ one geometric sd band; a cell without complete
runs is named below the figure with its status.
"""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from utils import results
from utils.experiments.understanding_gn import analysis as understanding
from utils.plots import BAND_ALPHA
from utils.plots import NORM_COLORS
from utils.plots import NORM_MARKERS
from utils.plots import VAL_ERROR_LABEL
from utils.plots import batch_axis
from utils.plots import data_and_profile
from utils.plots import left_out_note
from utils.plots import save_figure
from utils.plots import seed_count_text
from utils.plots import title_figure
from utils.experiments.understanding_gn import landscape as landscape_experiment
from utils.experiments.understanding_gn import mixtures as mixtures_experiment

_LAYER_STYLES = {"norm1": "-", "norm2": "--"}


def _band(axis, frame, x, y, color, label):
    """Mean of `y` over seeds at each `x`, with a ±1 sd band."""
    grouped = frame.groupby(x)[y].agg(["mean", "std"]).sort_index()
    axis.plot(grouped.index, grouped["mean"], color=color, linewidth=1.8, label=label)
    axis.fill_between(
        grouped.index,
        grouped["mean"] - grouped["std"].fillna(0),
        grouped["mean"] + grouped["std"].fillna(0),
        color=color,
        alpha=BAND_ALPHA,
        linewidth=0,
    )


def _geometric_band(axis, frame, x, y, color, label) -> int:
    """Geometric mean of `y` over seeds at each `x`, with a ×/÷ one geometric sd band (the
    exponentials of the mean and sd of the logs); returns how many values were not positive
    and so left out.

    A ±1 sd band on a log axis plunges to the bottom of the panel wherever the sd exceeds
    the mean; the band of the logs stays positive and spreads equally above and below the
    line, as the axis shows ratios.
    """
    values = frame[y].astype(float)
    logs = np.log(values.where(values > 0))
    grouped = logs.groupby(frame[x]).agg(["mean", "std"]).sort_index()
    centre = np.exp(grouped["mean"])
    factor = np.exp(grouped["std"].fillna(0))
    axis.plot(grouped.index, centre, color=color, linewidth=1.8, label=label)
    axis.fill_between(
        grouped.index, centre / factor, centre * factor, color=color, alpha=BAND_ALPHA, linewidth=0
    )
    return int((values <= 0).sum())


def _chance_error(runs, experiment) -> float | None:
    """The error (%) of guessing, 100 (1 - 1 / classes), when the experiment's runs agree on
    the number of classes; None otherwise."""
    chosen = runs[runs["experiment"] == experiment]
    classes = set(chosen["classes"].dropna().astype(int))
    if len(classes) != 1:
        return None
    return 100.0 * (1 - 1 / classes.pop())


def _footer(figure, text, notes):
    figure.text(
        0.5,
        -0.01,
        text + ("\nnot complete: " + "; ".join(notes) if notes else ""),
        ha="center",
        va="top",
        fontsize=8,
        wrap=True,
    )


def plot_landscape(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    batch_sizes=landscape_experiment.BATCH_SIZES,
    name="landscape",
):
    """Loss range, largest gradient change, effective beta-smoothness and gradient norm
    along training, for BN, GN and no normalization (one row per batch size, log scale).

    Lines are geometric means over seeds and bands ×/÷ one geometric sd, which stay
    positive on the log axes where an arithmetic ±1 sd band would not."""
    runs = results.as_runs(results_source)
    probes = understanding.landscape_probes(runs)
    measures = understanding.LANDSCAPE_MEASURES
    figure, axes = plt.subplots(
        len(batch_sizes),
        len(measures),
        figsize=(5 * len(measures), 4.2 * len(batch_sizes)),
        squeeze=False,
    )
    notes = []
    not_positive = 0
    for row, batch_size in enumerate(batch_sizes):
        for norm in understanding.LANDSCAPE_NORMS:
            cell = results.run_cell(
                runs, experiment=understanding.LANDSCAPE, norm=norm, batch_size=batch_size
            )
            if left_out_note(cell):
                notes.append(
                    f"{understanding.label(norm)} at batch {batch_size}: {left_out_note(cell)}"
                )
            chosen = probes[(probes["norm"] == norm) & (probes["batch_size"] == batch_size)]
            for column, measure in enumerate(measures):
                if not chosen.empty:
                    not_positive += _geometric_band(
                        axes[row, column],
                        chosen,
                        "progress",
                        measure,
                        NORM_COLORS[norm],
                        f"{understanding.label(norm)} ({results.seeds_text(chosen['seed'].nunique())})",
                    )
        for column, title in enumerate(measures.values()):
            axis = axes[row, column]
            axis.set_title(f"{title}, batch {batch_size}", fontsize=10)
            axis.set_xlabel("training progress (epochs)")
            axis.set_yscale("log")
            axis.grid(alpha=0.3)
            if axis.lines:
                axis.legend(fontsize=8)
        axes[row, 0].set_ylabel("geometric mean over seeds, ×/÷ geometric sd")
    left_out = (
        f"; {not_positive} values ≤ 0 left out (a log axis cannot show them)"
        if not_positive
        else ""
    )
    _footer(
        figure,
        "each probe moves the weights along the gradient by 0.5, 1, 2 and 4 learning rates on one "
        "training batch; lines: geometric mean over seeds, bands: ×/÷ one geometric sd (exp of the "
        f"mean ± sd over seeds of the log), positive on the log axes{left_out}; lower is smoother",
        notes,
    )
    title_figure(
        figure,
        "Loss landscape along the gradient (after Santurkar et al., 2018)",
        *data_and_profile(runs, dataset, profile),
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def plot_distortion(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="distortion",
):
    """BN and GN at batch 32: the recipe, noise on the normalizations' outputs, no weight
    decay (bars: mean val error, error bars ±1 sd over seeds)."""
    runs = results.as_runs(results_source)
    figure, axis = plt.subplots(figsize=(9.5, 5))
    conditions = list(understanding.DISTORTION_CONDITIONS)
    width = 0.8 / len(conditions)
    notes, cells_drawn = [], []
    hatches = {"recipe": "", "noise": "//", "no weight decay": ".."}
    for index, norm in enumerate(("batch", "group")):
        for offset, condition in enumerate(conditions):
            cell = understanding.distortion_cell(runs, norm, condition)
            cells_drawn.append(cell)
            position = index + (offset - (len(conditions) - 1) / 2) * width
            axis.bar(
                position,
                cell.value,
                width * 0.95,
                yerr=cell.sd if cell.n > 1 else None,
                capsize=3,
                color=NORM_COLORS[norm],
                hatch=hatches[condition],
                edgecolor="white",
                label=condition if index == 0 else None,
            )
            if left_out_note(cell):
                notes.append(f"{understanding.label(norm)} {condition}: {left_out_note(cell)}")
    chance = _chance_error(runs, understanding.DISTORTION)
    if chance is not None:
        # The error of a run that learnt nothing, against which the noisy runs are read.
        axis.axhline(
            chance, color="black", linestyle="--", linewidth=1, label=f"chance ({chance:.1f}%)"
        )
    axis.set_xticks([0, 1], ["BN", "GN"])
    axis.set_ylabel(VAL_ERROR_LABEL)
    # Beside the panel: the chance line runs along its top, and the bars fill the rest.
    axis.legend(
        fontsize=8,
        title=f"error bars: ±1 sd over seeds, {seed_count_text(cells_drawn)}",
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
    )
    axis.grid(alpha=0.3, axis="y")
    _footer(
        figure,
        "batch 32; noise: Gaussian, mean 1e-3, sd 1.001, on every normalization's output while "
        "training; no weight decay: 0 instead of 1e-4",
        notes,
    )
    title_figure(
        figure,
        "Sensitivity to distortion and to weight decay",
        *data_and_profile(runs, dataset, profile),
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def plot_mixtures(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    batch_sizes=mixtures_experiment.BATCH_SIZES,
    name="mixtures",
):
    """Left: val error by batch size of BN, GN and the three mixtures. Right: the learnt
    weight s of GN in each mixture layer by epoch, one panel per batch size."""
    runs = results.as_runs(results_source)
    weights = understanding.mixing_weights(runs)
    figure, axes = plt.subplots(1, 1 + len(batch_sizes), figsize=(5.2 * (1 + len(batch_sizes)), 5))
    notes, all_cells = [], []
    norms = ("batch", "group", *understanding.MIXTURE_NORMS)
    for index, norm in enumerate(norms):
        cells = [
            results.run_cell(runs, experiment=understanding.MIXTURES, norm=norm, batch_size=size)
            for size in batch_sizes
        ]
        all_cells += cells
        positions = np.array(batch_sizes, dtype=float) * 2.0 ** (
            0.04 * (index - (len(norms) - 1) / 2)
        )
        axes[0].errorbar(
            positions,
            [cell.value for cell in cells],
            yerr=[cell.sd for cell in cells],
            color=NORM_COLORS[norm],
            marker=NORM_MARKERS[norm],
            capsize=3,
            linewidth=2,
            label=understanding.label(norm),
        )
        notes += [
            f"{understanding.label(norm)} at batch {size}: {left_out_note(cell)}"
            for size, cell in zip(batch_sizes, cells)
            if left_out_note(cell)
        ]
    batch_axis(axes[0], batch_sizes)
    axes[0].set_title("validation error")
    axes[0].legend(
        fontsize=8,
        title=f"error bars: ±1 sd over seeds, {seed_count_text(all_cells)}",
        title_fontsize=8,
    )
    for axis, batch_size in zip(axes[1:], batch_sizes):
        chosen = weights[(weights["batch_size"] == batch_size) & (weights["status"] == "complete")]
        for norm in understanding.MIXTURE_NORMS:
            for layer, linestyle in _LAYER_STYLES.items():
                frame = chosen[(chosen["norm"] == norm) & (chosen["layer"] == layer)]
                if frame.empty:
                    continue
                _band(
                    axis,
                    frame,
                    "epoch",
                    "mixing_weight",
                    NORM_COLORS[norm],
                    f"{understanding.label(norm)}, {layer}",
                )
                axis.lines[-1].set_linestyle(linestyle)
        if not axis.lines:
            axis.text(
                0.5,
                0.5,
                "no complete mixture run yet",
                transform=axis.transAxes,
                ha="center",
                va="center",
                color="gray",
            )
        axis.axhline(
            1 / (1 + np.exp(-1.0)),
            color="black",
            linewidth=0.8,
            linestyle=":",
            label="start, sigmoid(1)",
        )
        axis.set_ylim(0, 1)
        axis.set_xlabel("epoch")
        axis.set_ylabel("s (weight of GN; 1 - s of BN)")
        axis.set_title(f"learnt s, batch {batch_size}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    _footer(
        figure,
        "mixture: (s * GN(x) + (1 - s) * BN(x)) * gamma + beta, s = sigmoid(lambda) learnt per layer; "
        "solid: first normalization (64 channels), dashed: second (256)",
        notes,
    )
    title_figure(
        figure,
        "GN+BN mixture layers (Gunawan et al., 2021)",
        *data_and_profile(runs, dataset, profile),
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)
