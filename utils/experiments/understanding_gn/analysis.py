"""Tables and findings for the tests of the 2021 study's explanation of GN's lag.

Three experiments (`python -m utils.experiments --experiment understanding_gn`):

* "landscape": BN, GN and no normalization at batch 32 and 2, probing the loss landscape
  along the gradient during training (utils.landscape writes landscape.csv);
* "distortion": BN and GN at batch 32 with Gaussian noise on every normalization's
  output, and without weight decay, beside the recipe's runs;
* "mixtures": the three GN+BN mixture layers (utils.mixtures) at 32, 8 and 2 beside BN
  and GN; each run's mixing.csv holds the learnt weight s of each layer after each epoch.

The numbers follow utils.results: a run's val error is the median of its last 5 epochs,
cells are mean ± sd over seeds with n, differences are paired by seed, and runs that are
missing, partial or diverged are labelled, never dropped. This module reads files only
(no TensorFlow).
"""

from __future__ import annotations

import math

import pandas as pd

from utils import norms
from utils.experiments.understanding_gn import mixtures as mixtures_experiment
from utils import paper
from utils import runs as runs_module
from utils.experiments.understanding_gn.distortion import NOISE as DISTORTION_NOISE
from utils.config import RunConfig
from utils.results import Cell
from utils.results import Difference
from utils.results import OURS_NOTE
from utils.results import SPREAD_NOTE
from utils.results import as_runs
from utils.results import by_batch_table
from utils.results import cell_statuses
from utils.results import data_context
from utils.results import differing_settings
from utils.results import find_runs
from utils.results import format_points
from utils.results import not_averaged_text
from utils.results import paired_difference
from utils.results import run_cell
from utils.results import seed_counts
from utils.results import seeds_text
from utils.experiments.understanding_gn import distortion as distortion_experiment
from utils.experiments.understanding_gn import landscape as landscape_experiment

LANDSCAPE = landscape_experiment.LANDSCAPE
DISTORTION = distortion_experiment.DISTORTION
MIXTURES = mixtures_experiment.MIXTURES
MIXTURE_NORMS = mixtures_experiment.MIXTURE_NORMS
MIXTURE_LABELS = {name: norms.LABELS[name] for name in MIXTURE_NORMS}
LANDSCAPE_NORMS = ("batch", "group", "none")
# The landscape quantities, per probe: the spread of the loss along the gradient, the
# largest change of the gradient, the largest change per unit of distance moved, and the
# gradient's norm at the start (the loss's local slope: the loss range grows with its
# square at a given step size, so it tells a steeper landscape from a rougher one).
LANDSCAPE_MEASURES = {
    "loss_range": "loss range along the gradient",
    "gradient_change": "largest gradient change (l2)",
    "beta_smoothness": "effective beta-smoothness",
    "gradient_norm": "gradient norm (l2)",
}
# What each distortion run changes from the recipe.
DISTORTION_CONDITIONS = {
    "recipe": {},
    "noise": DISTORTION_NOISE,
    "no weight decay": {"weight_decay": 0.0},
}
_RECIPE_WEIGHT_DECAY = RunConfig().weight_decay
# A run "stops learning" when its last training error is within this many points of
# chance, as utils.recipe calls a rate at which a normalization collapses.
_STOPPED_MARGIN = 5.0


def label(norm: str) -> str:
    """The table label of a normalization, mixtures included ("GN+BN, GN first")."""
    return MIXTURE_LABELS.get(norm) or paper.NORM_LABELS[norm]


# ---------------------------------------------------------------- landscape


def probe_summary(probes: pd.DataFrame) -> pd.DataFrame:
    """One row per probe (epoch, step) of a landscape.csv: the landscape quantities.

    Args:
        probes: the rows of landscape.csv (columns epoch, step, multiplier, step_size,
            base_loss, loss, gradient_norm, gradient_distance, step_length).

    Returns:
        Columns epoch, step, loss_range (max - min of the losses at the probed points),
        gradient_change (the largest gradient distance), beta_smoothness (the largest
        gradient distance divided by its step length), gradient_norm (at the start).
    """
    columns = ["epoch", "step", *LANDSCAPE_MEASURES]
    if probes.empty:
        return pd.DataFrame(columns=columns)
    probes = probes.assign(ratio=probes["gradient_distance"] / probes["step_length"])
    grouped = probes.groupby(["epoch", "step"], sort=True)
    summary = pd.DataFrame(
        {
            "loss_range": grouped["loss"].max() - grouped["loss"].min(),
            "gradient_change": grouped["gradient_distance"].max(),
            "beta_smoothness": grouped["ratio"].max(),
            "gradient_norm": grouped["gradient_norm"].first(),
        }
    ).reset_index()
    return summary[columns]


def landscape_probes(source="results", *, experiment=LANDSCAPE) -> pd.DataFrame:
    """Every probe of every complete landscape run, tagged with the run's identity.

    Returns:
        `probe_summary` rows plus norm, batch_size, seed, run_name and `progress` (the
        training progress in epochs: step / steps per epoch).
    """
    runs = as_runs(source)
    runs = runs[(runs["experiment"] == experiment) & (runs["status"] == "complete")]
    pieces = []
    for run in runs.itertuples(index=False):
        summary = probe_summary(runs_module.read_measurements(run.path, "landscape.csv"))
        if summary.empty:
            continue
        summary = summary.assign(
            norm=run.norm,
            batch_size=int(run.batch_size),
            seed=int(run.seed),
            run_name=run.run_name,
            progress=summary["step"] / float(run.steps_per_epoch),
        )
        pieces.append(summary)
    if not pieces:
        return pd.DataFrame(
            columns=[
                "norm",
                "batch_size",
                "seed",
                "run_name",
                "progress",
                *probe_summary(pd.DataFrame()).columns,
            ]
        )
    return pd.concat(pieces, ignore_index=True)


def _landscape_cell(probes: pd.DataFrame, norm: str, batch_size: int, measure: str, epochs) -> Cell:
    """Mean over seeds (and sd) of each run's mean `measure` over the probes in `epochs`, as
    a `Cell` of that measure (so that `paired_difference` pairs it by seed): its train and
    loss are NaN and its status and run empty (the run_cell of the same runs has them)."""
    chosen = probes[
        (probes["norm"] == norm)
        & (probes["batch_size"] == batch_size)
        & probes["epoch"].isin(list(epochs))
    ]
    per_seed = chosen.groupby("seed")[measure].mean()
    return Cell(
        values=tuple(float(value) for value in per_seed),
        seeds=tuple(int(seed) for seed in per_seed.index),
        status="",
    )


def landscape_table(
    source="results", *, experiment=LANDSCAPE, batch_sizes=landscape_experiment.BATCH_SIZES
) -> pd.DataFrame:
    """The landscape quantities by normalization and batch size, in the first
    epoch and over all of training (mean of a run's probes, then mean ± sd over seeds).

    Returns:
        One row per (batch size, normalization) with, for each quantity, columns
        "<quantity>, epoch 1" and "<quantity>, all epochs" (each with its "... sd"),
        "n" and "status". The step sizes are multiples of the learning rate, which
        scales with the batch size, so the quantities compare normalizations within a
        batch size, not batch sizes with each other.
    """
    runs = as_runs(source)
    probes = landscape_probes(runs, experiment=experiment)
    rows = []
    for batch_size in batch_sizes:
        for norm in LANDSCAPE_NORMS:
            run = run_cell(runs, experiment=experiment, norm=norm, batch_size=batch_size)
            row = {"batch size": batch_size, "norm": label(norm)}
            counts = []
            # Runs of several settings in one cell are not averaged (results.differing_settings).
            mixed = bool(
                differing_settings(
                    find_runs(runs, experiment=experiment, norm=norm, batch_size=batch_size)
                )
            )
            for measure, name in LANDSCAPE_MEASURES.items():
                epochs_seen = sorted(probes["epoch"].unique()) if not probes.empty else []
                for window, epochs in (("epoch 1", [1]), ("all epochs", epochs_seen)):
                    cell = (
                        Cell()
                        if mixed
                        else _landscape_cell(probes, norm, batch_size, measure, epochs)
                    )
                    row[f"{name}, {window}"] = cell.value
                    row[f"{name}, {window} sd"] = cell.sd
                    counts.append(cell.n)
            row["n"] = min(counts)
            row["status"] = run.status
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Loss landscape along the gradient ({data_context(runs)}): at each probe the weights move along the "
        "current gradient by 0.5, 1, 2 and 4 learning rates on one training batch; loss range = max - min of "
        "the losses there, largest gradient change = max l2 distance between the gradient there and at the "
        "start, effective beta-smoothness = max of that distance over the distance moved, gradient norm = l2 norm "
        "of the gradient at the start (to first order the loss range is 3.5 learning rates times its square). "
        "Each run's probes are averaged over the window, then mean ± sd over seeds (n). Lower means smoother."
    )
    return frame


# ---------------------------------------------------------------- distortion


def distortion_cell(
    runs: pd.DataFrame, norm: str, condition: str, *, experiment=DISTORTION, batch_size=32
) -> Cell:
    """The `run_cell` of one distortion condition ("recipe", "noise", "no weight decay")."""
    if condition not in DISTORTION_CONDITIONS:
        raise ValueError(f"condition={condition!r} must be one of {list(DISTORTION_CONDITIONS)}.")
    fields = {
        "norm_noise_mean": 0.0,
        "norm_noise_stddev": 0.0,
        "norm_noise_groups": DISTORTION_NOISE["norm_noise_groups"],
        "weight_decay": _RECIPE_WEIGHT_DECAY,
        **DISTORTION_CONDITIONS[condition],
    }
    return run_cell(runs, experiment=experiment, norm=norm, batch_size=batch_size, **fields)


def _stopped(runs: pd.DataFrame, cell: Cell) -> int:
    """How many of a cell's runs ended with a training error within 5 points of chance."""
    chosen = runs[runs["run_name"].isin(cell.run.split(", "))]
    chance = 100.0 * (1 - 1 / chosen["classes"].astype(float))
    return int((chosen["final_train_error"] >= chance - _STOPPED_MARGIN).sum())


def _stopped_text(runs: pd.DataFrame, cell: Cell, suffix: str = "") -> str:
    """ "1 of 3<suffix>", or "no runs yet" for a cell without runs."""
    if not cell.n:
        return "no runs yet"
    return f"{_stopped(runs, cell)} of {cell.n}{suffix}"


def distortion_table(source="results", *, experiment=DISTORTION) -> pd.DataFrame:
    """BN and GN under the recipe, with noise on the normalizations' outputs, and without
    weight decay (batch 32).

    Returns:
        One row per normalization with the mean val error (and sd) of each condition,
        "noise minus recipe" and "no weight decay minus recipe" (paired by seed, with
        their sd), "near chance with noise" (runs whose last training error is
        within 5 points of chance, of n), "n" and "status".
    """
    runs = as_runs(source)
    rows = []
    for norm in ("batch", "group"):
        cells = {
            condition: distortion_cell(runs, norm, condition, experiment=experiment)
            for condition in DISTORTION_CONDITIONS
        }
        row = {"norm": label(norm)}
        for condition, cell in cells.items():
            row[condition] = cell.value
            row[f"{condition} sd"] = cell.sd
        for condition in ("noise", "no weight decay"):
            difference = paired_difference(cells[condition], cells["recipe"])
            row[f"{condition} minus recipe"] = difference.mean
            row[f"{condition} minus recipe sd"] = difference.sd
        row["near chance with noise"] = _stopped_text(runs, cells["noise"])
        row["n"] = seed_counts(cells)
        row["status"] = cell_statuses(cells)
        rows.append(row)
    noise = DISTORTION_NOISE
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Distortion and weight decay at batch 32 ({data_context(runs)}): validation error (%) with the "
        f"recipe, with Gaussian noise (mean {noise['norm_noise_mean']:g}, sd {noise['norm_noise_stddev']:g}, one "
        f"draw per example and per group of channels, {noise['norm_noise_groups']} groups, as in the study's code) "
        "added to every normalization's output while training, and with weight decay 0 instead of 1e-4. "
        f"{OURS_NOTE}; {SPREAD_NOTE}."
    )
    return frame


# ---------------------------------------------------------------- mixtures


def mixtures_table(
    source="results", *, experiment=MIXTURES, batch_sizes=mixtures_experiment.BATCH_SIZES
) -> pd.DataFrame:
    """The GN+BN mixtures beside BN and GN, by batch size.

    Returns:
        One row per batch size with the mean val error (and sd) of BN, GN and each
        mixture, each mixture minus GN (paired by seed, with sd), "n" and "status".
    """
    runs = as_runs(source)

    def cells(batch_size):
        return {
            label(norm): run_cell(runs, experiment=experiment, norm=norm, batch_size=batch_size)
            for norm in ("batch", "group", *MIXTURE_NORMS)
        }

    return by_batch_table(
        cells,
        batch_sizes,
        [(label(norm), "GN") for norm in MIXTURE_NORMS],
        caption=f"GN+BN mixture layers ({data_context(runs)}): validation error (%) by batch size. {OURS_NOTE}; "
        f"{SPREAD_NOTE}.",
    )


def mixing_weights(source="results", *, experiment=MIXTURES) -> pd.DataFrame:
    """The learnt weight s of GN in every mixture layer after every epoch.

    Returns:
        Columns norm, batch_size, seed, run_name, status (the run's), epoch, layer, mixing_weight
        (s = sigmoid(lambda): 1 is GN alone, 0 BN alone).
    """
    runs = as_runs(source)
    runs = runs[(runs["experiment"] == experiment) & runs["norm"].isin(MIXTURE_NORMS)]
    pieces = []
    for run in runs.itertuples(index=False):
        weights = runs_module.read_measurements(run.path, "mixing.csv", epochs=run.epochs_completed)
        if not weights.empty:
            pieces.append(
                weights.assign(
                    norm=run.norm,
                    batch_size=int(run.batch_size),
                    seed=int(run.seed),
                    run_name=run.run_name,
                    status=run.status,
                )
            )
    columns = [
        "norm",
        "batch_size",
        "seed",
        "run_name",
        "status",
        "epoch",
        "layer",
        "mixing_weight",
    ]
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pd.concat(pieces, ignore_index=True)[columns]


def mixing_weight_table(
    source="results", *, experiment=MIXTURES, batch_sizes=mixtures_experiment.BATCH_SIZES
) -> pd.DataFrame:
    """The learnt weight s of GN in each mixture layer after the first and the last
    epoch, by batch size and mixture, over the complete runs.

    Returns:
        One row per (batch size, mixture) with, for each normalization layer of the
        model ("layer 1" is the first), s after epoch 1 and after the last epoch (mean,
        and sd over seeds), and "n", the number of complete runs behind them.
    """
    runs = as_runs(source)
    weights = mixing_weights(runs, experiment=experiment)
    weights = weights[weights["status"] == "complete"]
    layers = sorted(weights["layer"].unique())
    rows, unaveraged = [], []
    for batch_size in batch_sizes:
        for norm in MIXTURE_NORMS:
            chosen = weights[(weights["norm"] == norm) & (weights["batch_size"] == batch_size)]
            matches = find_runs(runs, experiment=experiment, norm=norm, batch_size=batch_size)
            differing = differing_settings(matches[matches["status"] == "complete"])
            if differing:
                # Runs of several settings are not seeds of one number: named, not averaged.
                chosen = chosen.iloc[0:0]
            last_epoch = chosen.groupby("run_name")["epoch"].transform("max")
            row = {"batch size": batch_size, "mixture": label(norm)}
            for number, layer in enumerate(layers, start=1):
                in_layer = chosen["layer"] == layer
                for name, when in (
                    ("epoch 1", chosen["epoch"] == 1),
                    ("last epoch", chosen["epoch"] == last_epoch),
                ):
                    values = chosen[in_layer & when]["mixing_weight"]
                    row[f"s, layer {number}, {name}"] = values.mean() if len(values) else math.nan
                    row[f"s, layer {number}, {name} sd"] = (
                        values.std(ddof=1) if len(values) > 1 else math.nan
                    )
            row["n"] = chosen["run_name"].nunique()
            if differing:
                unaveraged.append(
                    f"{label(norm)} at batch {batch_size}: {not_averaged_text(differing)}"
                )
            rows.append(row)
    frame = pd.DataFrame(rows)
    initial = 1 / (1 + math.exp(-1.0))
    frame.attrs["caption"] = (
        f"Learnt weight s of GN in the mixture layers ({data_context(runs)}): s = sigmoid(lambda), 1 is GN "
        f"alone and 0 BN alone, starting at {initial:.3f} (lambda = 1); layer 1 is the model's first normalization, "
        "after each epoch's training; mean ± sd over the complete runs' seeds (n)."
    ) + "".join(f" {text}." for text in unaveraged)
    return frame


# ---------------------------------------------------------------- findings


def _direction(difference: Difference, text: str, *, negative=False) -> str:
    """ "<text> in k of n seeds": k counts the positive differences (the negative ones
    with `negative=True`)."""
    total = difference.n
    if not total:
        return "no seed has both runs yet"
    count = difference.negative if negative else sum(value > 0 for value in difference.values)
    return f"{text} in {seeds_text(count, total)}"


def _value(cell: Cell) -> str:
    """A cell's mean with 3 significant digits ("n/a" without one)."""
    return "n/a" if math.isnan(cell.value) else f"{cell.value:.3g}"


def _significant(difference: Difference) -> str:
    """A paired difference with 3 significant digits, "+0.0123 ± 0.004" ("n/a" without one)."""
    if math.isnan(difference.mean):
        return "n/a"
    text = f"{difference.mean:+.3g}"
    return text if math.isnan(difference.sd) else f"{text} ± {difference.sd:.2g}"


def _mixture_differences(mixtures, reference, name):
    """ "GN+BN parallel -5.0 ± 0.3 (lower than GN in 3 of 3 seeds); ..." for each mixture's cell."""
    parts = []
    for norm, cell in mixtures.items():
        difference = paired_difference(cell, reference)
        parts.append(
            f"{label(norm)} {format_points(difference.mean, difference.sd)} "
            f"({_direction(difference, f'lower than {name}', negative=True)})"
        )
    return "; ".join(parts)


def conclusions(source="results") -> list[str]:
    """Each claim of the 2021 study, and what these runs say about it, as sentences.

    Every difference is paired by seed and says in how many seeds its direction holds;
    "n/a" means the runs are not there yet (the tables' status says which).
    """
    runs = as_runs(source)
    lines = []
    probes = landscape_probes(runs)
    for batch_size in landscape_experiment.BATCH_SIZES:
        cells = {
            norm: _landscape_cell(probes, norm, batch_size, "loss_range", [1])
            for norm in LANDSCAPE_NORMS
        }
        smooth = {
            norm: _landscape_cell(probes, norm, batch_size, "beta_smoothness", [1])
            for norm in LANDSCAPE_NORMS
        }
        gap, smooth_gap = (
            paired_difference(cells["group"], cells["batch"]),
            paired_difference(smooth["group"], smooth["batch"]),
        )
        lines.append(
            f"Claim: GN smooths the loss landscape less than BN early in training. Batch {batch_size}, first epoch: "
            f"loss range GN {_value(cells['group'])}, BN {_value(cells['batch'])}, no norm "
            f"{_value(cells['none'])} (GN minus BN {_significant(gap)}; "
            f"{_direction(gap, 'GN higher')}); effective beta-smoothness GN minus BN "
            f"{_significant(smooth_gap)} ({_direction(smooth_gap, 'GN higher')})."
        )
    cells = {
        norm: {
            condition: distortion_cell(runs, norm, condition) for condition in DISTORTION_CONDITIONS
        }
        for norm in ("batch", "group")
    }
    noise = {
        norm: paired_difference(by_condition["noise"], by_condition["recipe"])
        for norm, by_condition in cells.items()
    }
    lines.append(
        "Claim: GN is more sensitive than BN to noise on its output (GN stops learning). With noise, val error "
        f"changes by {format_points(noise['group'].mean, noise['group'].sd)} points for GN "
        f"({_stopped_text(runs, cells['group']['noise'], ' runs ended within 5 points of chance')}) and "
        f"{format_points(noise['batch'].mean, noise['batch'].sd)} for BN "
        f"({_stopped_text(runs, cells['batch']['noise'], ' did')})."
    )
    decay = {
        norm: paired_difference(by_condition["recipe"], by_condition["no weight decay"])
        for norm, by_condition in cells.items()
    }
    published = paper.UNDERSTANDING_WEIGHT_DECAY
    lines.append(
        "Claim: weight decay hurts GN more than BN. Recipe (weight decay 1e-4) minus no weight decay: GN "
        f"{format_points(decay['group'].mean, decay['group'].sd)} points ({_direction(decay['group'], 'worse with decay')}), "
        f"BN {format_points(decay['batch'].mean, decay['batch'].sd)} ({_direction(decay['batch'], 'worse with decay')}); "
        f"the study (VGG-11, CIFAR-10, accuracy): weight decay 5e-5 costs GN "
        f"{published['group'][0.0] - published['group'][5e-5]:.2f} points and BN "
        f"{published['batch'][0.0] - published['batch'][5e-5]:.2f}."
    )
    for batch_size in mixtures_experiment.BATCH_SIZES:
        gn, bn = (
            run_cell(runs, experiment=MIXTURES, norm=norm, batch_size=batch_size)
            for norm in ("group", "batch")
        )
        mixtures = {
            norm: run_cell(runs, experiment=MIXTURES, norm=norm, batch_size=batch_size)
            for norm in MIXTURE_NORMS
        }
        lines.append(
            f"Claim: mixing BN into GN helps. Batch {batch_size}, mixture minus GN: {_mixture_differences(mixtures, gn, 'GN')}. "
            f"Mixture minus BN: {_mixture_differences(mixtures, bn, 'BN')}."
        )
    return lines
