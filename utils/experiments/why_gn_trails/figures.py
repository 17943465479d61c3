"""Figures of the "why GN trails" experiments: fit in inference mode beside the
training-mode running error and validation error, by arm; and the analogue of the paper's
Figure 6, the percentiles of the last convolution's responses by epoch. Each function
takes a results folder (or runs frame) and `figures_dir`, saves `<figures_dir>/<name>.png`
and returns the figure."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import pandas as pd  # noqa: E402

from utils import norms  # noqa: E402
from utils import results  # noqa: E402
from utils import runs as runs_module  # noqa: E402
from utils.experiments.why_gn_trails import analysis  # noqa: E402
from utils.plots import data_and_profile  # noqa: E402
from utils.plots import save_figure  # noqa: E402
from utils.plots import title_figure  # noqa: E402

# (history or fit.csv column, its label, line style)
_FIT_CURVES = (
    ("inference_train_error", "fit: fixed training images, inference mode", "-"),
    ("train_error", "training-mode running average", "--"),
)


def _seed_curves(runs, column):
    """(mean, sd) by epoch over the runs of `runs` of one column of history.csv or fit.csv."""
    pieces = []
    for run in runs.itertuples(index=False):
        source = (
            runs_module.read_measurements(run.path, "fit.csv")
            if column.startswith("inference")
            else runs_module.read_run(run.path).history
        )
        if len(source):
            pieces.append(source.set_index("epoch")[column].rename(run.seed))
    if not pieces:
        return None
    frame = pd.concat(pieces, axis=1)
    return frame.mean(axis=1), frame.std(axis=1, ddof=1)


def _draw(axis, curves, color, style, label):
    if curves is None:
        return
    mean, sd = curves
    axis.plot(mean.index, mean.values, style, color=color, label=label, linewidth=1.6)
    axis.fill_between(
        mean.index, (mean - sd).values, (mean + sd).values, color=color, alpha=0.15, linewidth=0
    )


def plot_shared_rate_fit(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="shared_rate_fit",
):
    """BN and GN in each arm (one shared rate; with WS; scale augmentation): validation
    error (top) and training error (bottom: the fit in inference mode, solid, and the
    training-mode running average, dashed) by epoch, mean and ±1 sd over seeds; every
    panel of a row on one y range."""
    runs = results.as_runs(results_source)
    dataset, profile = data_and_profile(runs, dataset, profile)
    figure, axes = plt.subplots(
        2, len(analysis.ARMS), figsize=(5 * len(analysis.ARMS), 8.5), sharey="row", squeeze=False
    )
    for column, (arm, experiment, fields) in enumerate(analysis.ARMS):
        for norm in ("batch", "group"):
            selected = results.find_runs(
                runs, experiment=experiment, norm=norm, batch_size=32, **fields
            )
            row = norms.spec(norm)
            suffix = "+WS" if fields.get("weight_standardization") else ""
            counted = f"{row.label}{suffix} (n={selected['seed'].nunique()})"
            _draw(axes[0, column], _seed_curves(selected, "val_error"), row.color, "-", counted)
            for curve, label, style in _FIT_CURVES:
                _draw(
                    axes[1, column],
                    _seed_curves(selected, curve),
                    row.color,
                    style,
                    f"{row.label}{suffix}: {label}",
                )
        axes[0, column].set_title(f"{arm}: validation error")
        axes[1, column].set_title(f"{arm}: training error")
        for axis in axes[:, column]:
            axis.set_xlabel("epoch")
            axis.grid(alpha=0.3)
            if axis.lines:
                axis.legend(fontsize=8)
            else:
                axis.text(
                    0.5, 0.5, "not trained yet", ha="center", va="center", transform=axis.transAxes
                )
    for axis in axes[:, 0]:
        axis.set_ylabel("top-1 error (%)")
    title_figure(
        figure,
        f"Why GN trails BN: ResNet-10 at batch 32, one base rate ({analysis.plan.BASE_LEARNING_RATE:g}), "
        "mean and ±1 sd over seeds",
        dataset,
        profile,
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)


def plot_late_responses(
    results_source="results",
    *,
    figures_dir="figures",
    dataset=None,
    profile=None,
    name="late_responses",
):
    """The analogue of the paper's Figure 6: the 1st, 20th, 80th and 99th percentiles of
    the last convolution's responses (before its normalization) on a fixed batch of
    training images, by epoch, seed 0: BN and GN at the shared rate, and the network
    without normalization; every panel on one y range."""
    runs = results.as_runs(results_source)
    dataset, profile = data_and_profile(runs, dataset, profile)
    chosen = analysis.response_runs(analysis.responses(runs), runs.attrs.get("results_dir"))
    figure, axes = plt.subplots(
        1, len(chosen), figsize=(5 * len(chosen), 4.5), sharey=True, squeeze=False
    )
    colors = {
        "BN": norms.spec("batch").color,
        "GN": norms.spec("group").color,
        "no normalization": norms.spec("none").color,
    }
    for axis, (label, rows) in zip(axes[0], chosen.items()):
        color = colors[label]
        if rows.empty:
            axis.text(
                0.5, 0.5, "not recorded yet", ha="center", va="center", transform=axis.transAxes
            )
        else:
            axis.fill_between(
                rows["epoch"],
                rows["p1"],
                rows["p99"],
                color=color,
                alpha=0.2,
                label="1st to 99th percentile",
                linewidth=0,
            )
            axis.fill_between(
                rows["epoch"],
                rows["p20"],
                rows["p80"],
                color=color,
                alpha=0.5,
                label="20th to 80th percentile",
                linewidth=0,
            )
            axis.legend(fontsize=8, loc="upper left")
        rate = f", rate {rows['base_learning_rate'].iloc[0]:g}" if len(rows) else ""
        axis.set_title(f"{label}{rate}")
        axis.set_xlabel("epoch")
        axis.axhline(0, color="black", linewidth=0.5)
        axis.grid(alpha=0.3)
    axes[0, 0].set_ylabel("response of the last convolution")
    title_figure(
        figure,
        "Responses of ResNet-10's last convolution before normalization, seed 0 "
        "(analogue of the paper's Figure 6)",
        dataset,
        profile,
    )
    figure.tight_layout()
    return save_figure(figure, figures_dir, name)
