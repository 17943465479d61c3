"""The "why GN trails" experiments read back: tables and findings.

Three measures of each run, each the median of its last 5 epochs, mean ± sd over seeds:
validation error; the fit in inference mode (the error on a fixed 2,000 training images,
unaugmented, BN with its moving statistics: fit.csv); and the training-mode running
average of history.csv (flipped or cropped images, BN with each batch's statistics, the
weights changing through the epoch), which earlier tables call "training error".
Differences are paired by seed.
"""

from __future__ import annotations

import math

import pandas as pd

from utils import paper
from utils import results
from utils import runs as runs_module
from utils.experiments import depth as depth_experiment
from utils.experiments.fair_comparison import rate_sweep
from utils.experiments.why_gn_trails import plan
from utils.results import format_points
from utils.results import paired_difference
from utils.results import seeds_text

FIT = "inference_train_error_median5"
TRAIN = "train_error_median5"
VALIDATION = "val_error_median5"
MEASURES = {
    VALIDATION: "validation error",
    FIT: "fit (inference mode)",
    TRAIN: "training-mode running error",
}
# (label, experiment, fields shared by its BN and GN runs)
ARMS = (
    ("one shared rate", plan.SHARED_RATE, dict(weight_standardization=False)),
    ("one shared rate, with WS", plan.SHARED_RATE, dict(weight_standardization=True)),
    ("scale augmentation", plan.SCALE_AUGMENTATION, dict(weight_standardization=False)),
)
_SETTING = (
    f"ResNet-10, batch 32, base rate {plan.BASE_LEARNING_RATE:g} for every method, {plan.EPOCHS} epochs, "
    f"÷10 at 30%, 60% and 90%"
)


def with_fit(source="results") -> pd.DataFrame:
    """The runs frame with the inference-mode fit of each run that recorded one (fit.csv):
    columns `FIT` and "inference_train_loss_median5" (NaN for the others)."""
    runs = results.as_runs(source).copy()
    errors, losses = [], []
    for path in runs["path"]:
        fit = runs_module.read_measurements(path, "fit.csv")
        median = lambda column: runs_module.median_of_last(fit[column]) if len(fit) else None
        errors.append(median("inference_train_error"))
        losses.append(median("inference_train_loss"))
    runs[FIT] = pd.Series(errors, index=runs.index, dtype=float)
    runs["inference_train_loss_median5"] = pd.Series(losses, index=runs.index, dtype=float)
    return runs


def cell(runs, experiment, norm, statistic=VALIDATION, **fields) -> results.Cell:
    """One method of one experiment at batch 32: its `statistic` over seeds."""
    return results.statistic_cell(
        runs, statistic, experiment=experiment, norm=norm, batch_size=plan.BATCH_SIZE, **fields
    )


def _direction(difference, lower) -> str:
    if not difference.n:
        return "no seed has both runs yet"
    return f"{lower} in {seeds_text(difference.negative, difference.n)}"


def methods_table(source="results"):
    """Every method of the experiments: validation error, fit in inference mode and the
    training-mode running error, mean ± sd over seeds, n and status."""
    runs = with_fit(source)
    methods = [
        (arm, experiment, norm, fields)
        for arm, experiment, fields in ARMS
        for norm in ("batch", "group")
    ]
    rate = no_norm_rate(runs.attrs.get("results_dir"))
    methods.append(
        (f"no normalization, rate {rate:g}", plan.NO_NORM, "none", dict(base_learning_rate=rate))
    )
    rows = []
    for arm, experiment, norm, fields in methods:
        label = {"batch": "BN", "group": "GN", "none": "none"}[norm]
        row = {
            "arm": arm,
            "method": label + ("+WS" if fields.get("weight_standardization") else ""),
        }
        for statistic, name in MEASURES.items():
            found = cell(runs, experiment, norm, statistic, **fields)
            row[name], row[f"{name} sd"] = found.value, found.sd
        row["n"], row["status"] = found.n, found.status
        rows.append(row)
    return results.captioned(
        rows,
        (
            f"{_SETTING}. Validation error and fit in inference mode (top-1 error on a fixed 2,000 training images, "
            "unaugmented, BN with its moving statistics), and the training-mode running error of history.csv (the "
            "augmented images, BN with each batch's statistics, averaged over the epoch), each the median of the last "
            "5 epochs, mean ± sd over n seeds. No normalization: seed 0, at the shared rate if it trains there, else "
            "at the highest rate below it that does. Runs: results/shared_rate/, results/scale_augmentation/, "
            "results/no_norm/."
        ),
    )


def no_norm_rate(results_dir) -> float:
    """The base rate of the no-normalization run the rule settles on (the last one it
    plans: the shared rate, or the highest below it that trains)."""
    return plan.no_norm_runs(results_dir, plan.NO_NORM_SEEDS)[-1]["base_learning_rate"]


def gaps_table(source="results"):
    """GN minus BN at batch 32 in each arm, in each measure, paired by seed, with in how
    many seeds GN is lower; the depth experiment's own-rate gap and the paper's beside."""
    runs = with_fit(source)
    rows = []
    for arm, experiment, fields in ARMS:
        row = {"arm": arm}
        for statistic, name in MEASURES.items():
            difference = paired_difference(
                cell(runs, experiment, "group", statistic, **fields),
                cell(runs, experiment, "batch", statistic, **fields),
            )
            row[f"GN minus BN, {name}"] = difference.mean
            row[f"GN minus BN, {name} sd"] = difference.sd
            row[f"GN lower, {name}"] = (
                f"{difference.negative}/{difference.n}" if difference.n else ""
            )
        rows.append(row)
    row = {"arm": "depth experiment: each at its own rate, 15 epochs"}
    for statistic, name in MEASURES.items():
        if statistic == FIT:
            row.update(
                {
                    f"GN minus BN, {name}": math.nan,
                    f"GN minus BN, {name} sd": math.nan,
                    f"GN lower, {name}": "not recorded",
                }
            )
            continue
        difference = paired_difference(
            results.statistic_cell(
                runs,
                statistic,
                experiment=depth_experiment.DEPTH,
                norm="group",
                batch_size=32,
                groups=32,
            ),
            results.statistic_cell(
                runs, statistic, experiment=depth_experiment.DEPTH, norm="batch", batch_size=32
            ),
        )
        row[f"GN minus BN, {name}"], row[f"GN minus BN, {name} sd"] = difference.mean, difference.sd
        row[f"GN lower, {name}"] = f"{difference.negative}/{difference.n}" if difference.n else ""
    rows.append(row)
    frame = results.captioned(
        rows,
        (
            f"GN minus BN at batch 32 (points), paired by seed, mean ± sd, and in how many seeds GN is lower, in each "
            f"arm ({_SETTING}) and in the depth experiment (results/depth_grid/). The paper's GN minus BN at batch 32: "
            f"{format_points(paper.TABLE2_GN_MINUS_BN[32])} (validation); its Figure 4 has GN's training error below "
            "BN's."
        ),
    )
    return frame


def small_cnn_table(source="results"):
    """The small CNN's rate sweep (each rate shared by the pair, 10 epochs): GN minus BN
    and GN+WS minus BN+WS, training-mode and validation error, paired by seed."""
    runs = results.as_runs(source)
    sweep = runs[runs["experiment"] == rate_sweep.RATE_SWEEP]
    rates = sorted(set(sweep["base_learning_rate"].astype(float)))
    rows = []
    for rate in rates:
        row = {"base rate": f"{rate:g}"}
        for label, standardized in (("GN minus BN", False), ("GN+WS minus BN+WS", True)):
            for statistic, name in (
                (TRAIN, "training-mode error"),
                (VALIDATION, "validation error"),
            ):
                pair = [
                    results.statistic_cell(
                        sweep,
                        statistic,
                        norm=norm,
                        weight_standardization=standardized,
                        base_learning_rate=rate,
                    )
                    for norm in ("group", "batch")
                ]
                difference = paired_difference(*pair)
                row[f"{label}, {name}"] = difference.mean
                row[f"{label}, {name} sd"] = difference.sd
                row[f"{label}, {name}: GN lower"] = (
                    f"{difference.negative}/{difference.n}" if difference.n else ""
                )
        rows.append(row)
    return results.captioned(
        rows,
        (
            "The small CNN's rate sweep (results/rate_sweep/: batch 32, 10 epochs, ÷10 at 50% and 75%): at each base "
            "rate, shared by the two methods of a pair, GN minus BN and GN+WS minus BN+WS in the training-mode running "
            "error and in validation error (points, paired by seed, mean ± sd), and in how many seeds GN is lower. "
            "A rate where a method collapsed gives a large gap."
        ),
    )


def _range_text(values) -> str:
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return (
        format_points(low)
        if round(low, 1) == round(high, 1)
        else f"{format_points(low)} to {format_points(high)}"
    )


def _gap_sentence(runs, arm, experiment, fields) -> str:
    texts = []
    for statistic, name in MEASURES.items():
        difference = paired_difference(
            cell(runs, experiment, "group", statistic, **fields),
            cell(runs, experiment, "batch", statistic, **fields),
        )
        texts.append(
            f"{name} {format_points(difference.mean, difference.sd)} ({_direction(difference, 'GN lower')})"
        )
    return f"Batch 32, {arm}, GN minus BN: " + "; ".join(texts) + "."


def conclusions(source="results") -> list[str]:
    """The answers as sentences, each with its regime and in how many seeds it holds: GN
    minus BN in each arm and each measure, beside the paper's and the depth experiment's
    gap; the small CNN's shared-rate comparison with and without WS; the spread of the
    last convolution's responses with and without normalization."""
    runs = with_fit(source)
    lines = [f"Setting of the arms: {_SETTING}."]
    lines += [_gap_sentence(runs, arm, experiment, fields) for arm, experiment, fields in ARMS]
    depth_gap = paired_difference(
        results.statistic_cell(
            runs,
            VALIDATION,
            experiment=depth_experiment.DEPTH,
            norm="group",
            batch_size=32,
            groups=32,
        ),
        results.statistic_cell(
            runs, VALIDATION, experiment=depth_experiment.DEPTH, norm="batch", batch_size=32
        ),
    )
    lines.append(
        f"For comparison, GN minus BN validation error at batch 32: the depth experiment (each at its own "
        f"rate, 15 epochs) {format_points(depth_gap.mean, depth_gap.sd)}; the paper "
        f"{format_points(paper.TABLE2_GN_MINUS_BN[32])}."
    )
    small = small_cnn_table(runs)
    if len(small):

        def seeds_lower(column):
            counts = [text for text in small[f"{column}: GN lower"] if text]
            if len(set(counts)) == 1:
                return f"{counts[0]} at each of {len(counts)} rates"
            return ", ".join(counts) if counts else "n/a"

        lines.append(
            "Small CNN, rate sweep (10 epochs, each rate shared by the pair): GN+WS minus BN+WS training-mode error "
            f"{_range_text(small['GN+WS minus BN+WS, training-mode error'])} points (GN+WS lower in "
            f"{seeds_lower('GN+WS minus BN+WS, training-mode error')} of {', '.join(small['base rate'])}), validation {_range_text(small['GN+WS minus BN+WS, validation error'])}; without WS, GN minus "
            f"BN training-mode error {_range_text(small['GN minus BN, training-mode error'])} (GN lower in "
            f"{seeds_lower('GN minus BN, training-mode error')})."
        )
    lines += response_sentences(runs)
    return lines


def responses(source="results") -> pd.DataFrame:
    """responses.csv of every run of these experiments, tagged with its experiment, run,
    norm, WS and seed."""
    runs = results.as_runs(source)
    mine = runs[runs["experiment"].isin([plan.SHARED_RATE, plan.SCALE_AUGMENTATION, plan.NO_NORM])]
    pieces = []
    for run in mine.itertuples(index=False):
        rows = runs_module.read_measurements(run.path, "responses.csv")
        if len(rows):
            pieces.append(
                rows.assign(
                    experiment=run.experiment,
                    run_name=run.run_name,
                    norm=run.norm,
                    weight_standardization=run.weight_standardization,
                    seed=run.seed,
                    base_learning_rate=run.base_learning_rate,
                )
            )
    if not pieces:
        return pd.DataFrame(
            columns=[
                "experiment",
                "run_name",
                "norm",
                "weight_standardization",
                "seed",
                "base_learning_rate",
                "epoch",
                "layer",
                "where",
                "p1",
                "p20",
                "p80",
                "p99",
            ]
        )
    return pd.concat(pieces, ignore_index=True)


# The runs whose responses are compared (the Figure 6 analogue): seed 0 of BN and GN at the
# shared rate, and the network without normalization.
RESPONSE_RUNS = (
    ("BN", plan.SHARED_RATE, "batch"),
    ("GN", plan.SHARED_RATE, "group"),
    ("no normalization", plan.NO_NORM, "none"),
)


def response_runs(frame, results_dir=None):
    """{label: its rows of `responses` before normalization}, seed 0, for `RESPONSE_RUNS`;
    the no-normalization run is the one at the rate its rule settles on."""
    chosen = {}
    rate = no_norm_rate(results_dir)
    for label, experiment, norm in RESPONSE_RUNS:
        rows = frame[
            (frame["experiment"] == experiment)
            & (frame["norm"] == norm)
            & (frame["seed"] == 0)
            & (frame["where"] == "before normalization")
            & ~frame["weight_standardization"].astype(bool)
        ]
        if norm == "none":
            rows = rows[(rows["base_learning_rate"].astype(float) - rate).abs() < 1e-12]
        chosen[label] = rows.sort_values("epoch")
    return chosen


def response_sentences(runs) -> list[str]:
    """The 1st-to-99th percentile span of the last convolution's responses at the last
    recorded epoch, seed 0, for BN, GN and no normalization."""
    chosen = response_runs(responses(runs), runs.attrs.get("results_dir"))
    texts = []
    for label, rows in chosen.items():
        if rows.empty:
            texts.append(f"{label} not recorded yet")
            continue
        last = rows.iloc[-1]
        texts.append(f"{label} {last['p1']:.2f} to {last['p99']:.2f} (epoch {int(last['epoch'])})")
    return [
        "Responses of the last convolution (before its normalization) on a fixed batch of 128 training images, "
        "1st to 99th percentile, seed 0: " + "; ".join(texts) + "."
    ]
