"""Results folders into pandas tables, side by side with the paper.

A results folder holds ``<experiment>/<run_name>/{config.json, history.csv, summary.json}``
(utils.runs reads them). Every statistic here is recomputed from history.csv (summary.json
gives only the run's status and divergence epoch): the headline number is the
MEDIAN of the last 5 completed epochs, as in the paper, or of all completed epochs when a
run has fewer than 5. Our numbers are top-1 validation error (%) of the project's model
on the run's dataset; the paper's are ResNet-50 on ImageNet (see utils.paper).

Runs that are missing, partial (still running, or fewer epochs than configured) or
diverged are kept and labelled, never dropped: see the ``state`` and ``label`` columns of
`load_runs` and the ``status`` columns of the tables.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from utils import paper
from utils import runs as runs_module
from utils.norms import canonical_norm

NORM_COMPARISON = "norm_comparison"
BATCH_SIZE_SWEEP = "batch_size_sweep"
RUN_COLUMNS = (
    "experiment", "run_name", "norm", "groups", "batch_size", "seed", "status", "state", "label",
    "epochs_completed", "epochs", "diverged_epoch", "val_error_median5", "train_error_median5",
    "val_loss_median5", "median_epochs", "final_val_error", "best_val_error", "dataset", "profile",
    "model", "base_learning_rate", "wall_seconds", "steps_per_epoch", "reused_from", "path",
)
OURS_NOTE = (
    "ours: top-1 validation error (%), median of the last 5 completed epochs (of all "
    "completed epochs when a run has fewer than 5), recomputed from history.csv"
)
PAPER_NOTE = f"paper: {paper.PAPER_UNIT}, {paper.PAPER_SETTING} ({paper.CITATION})"


def _tail_median(values: pd.Series) -> float:
    """Median of the last 5 values (all when fewer); NaN when there are none."""
    median = runs_module.median_of_last(values)
    return math.nan if median is None else median


def run_row(record: runs_module.RunRecord) -> dict:
    """One row of `load_runs` for a run read back with `utils.runs.read_run`."""
    config, history = record.config, record.history
    completed = len(history)
    return {
        "experiment": config.experiment,
        "run_name": config.run_name,
        "norm": config.norm,
        "groups": config.groups,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "status": record.status,
        "state": record.state,
        "label": record.label,
        "epochs_completed": completed,
        "epochs": config.epochs,
        "diverged_epoch": record.diverged_epoch,
        "val_error_median5": _tail_median(history["val_error"]),
        "train_error_median5": _tail_median(history["train_error"]),
        "val_loss_median5": _tail_median(history["val_loss"]),
        "median_epochs": min(completed, runs_module.MEDIAN_EPOCHS),
        "final_val_error": float(history["val_error"].iloc[-1]) if completed else math.nan,
        "best_val_error": float(history["val_error"].min()) if completed else math.nan,
        "dataset": config.dataset,
        "profile": config.profile,
        "model": config.model,
        "base_learning_rate": config.base_learning_rate,
        "wall_seconds": float(history["seconds"].sum()) if completed else math.nan,
        "steps_per_epoch": float(history["steps"].median()) if completed else math.nan,
        "reused_from": record.summary.get("reused_from"),
        "path": str(record.path),
    }


def load_runs(results_dir="results") -> pd.DataFrame:
    """One row per run folder found under `results_dir`.

    Args:
        results_dir: the results root (``<results_dir>/<experiment>/<run_name>/``).

    Returns:
        A DataFrame with the columns RUN_COLUMNS. The ``*_median5`` statistics are the
        median of the last 5 completed epochs of history.csv (of all of them when fewer;
        ``median_epochs`` says how many). ``state`` is "complete", "partial" (running, or
        fewer epochs than configured) or "diverged"; ``label`` is the text tables show,
        e.g. "partial (3/10 epochs)".
    """
    rows = [run_row(runs_module.read_run(run_dir)) for run_dir in runs_module.run_folders(results_dir)]
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    for column in ("groups", "batch_size", "seed", "epochs", "diverged_epoch"):
        frame[column] = frame[column].astype("Int64")
    frame.attrs["results_dir"] = str(results_dir)
    return frame


def load_histories(results_dir="results", runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per completed epoch of every run, tagged with the run's identity.

    Args:
        results_dir: the results root; ignored when `runs` is given.
        runs: a frame from `load_runs` (its ``path`` column says where each run lives).

    Returns:
        The history.csv columns plus experiment, run_name, norm, groups, batch_size, seed,
        state, dataset and profile.
    """
    if runs is None:
        runs = load_runs(results_dir)
    identity = ["experiment", "run_name", "norm", "groups", "batch_size", "seed", "state", "dataset", "profile"]
    pieces = []
    for run in runs.itertuples(index=False):
        history = runs_module.read_run(run.path).history
        if history.empty:
            continue
        for column in identity:
            history[column] = getattr(run, column)
        pieces.append(history)
    columns = identity + list(runs_module.HISTORY_COLUMNS)
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pd.concat(pieces, ignore_index=True)[columns]


def as_runs(source) -> pd.DataFrame:
    """A runs frame from a results folder path or an already loaded frame.

    Args:
        source: a path (str or Path) to a results folder, or a frame from `load_runs`.
    """
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_runs(source)
    raise TypeError(
        f"expected a results folder path or a DataFrame from load_runs, got {type(source).__name__}"
    )


def find_runs(runs: pd.DataFrame, *, experiment=None, norm=None, batch_size=None, groups=None) -> pd.DataFrame:
    """The rows of `runs` that match every given field (None matches anything)."""
    mask = pd.Series(True, index=runs.index)
    if experiment is not None:
        mask &= runs["experiment"] == experiment
    if norm is not None:
        mask &= runs["norm"] == canonical_norm(norm)
    if batch_size is not None:
        mask &= runs["batch_size"] == batch_size
    if groups is not None:
        mask &= runs["groups"] == groups
    return runs[mask.fillna(False).astype(bool)]


def run_cell(runs: pd.DataFrame, **selection) -> dict:
    """Our number for one table cell, with its status and the run(s) behind it.

    Args:
        runs: a frame from `load_runs`.
        **selection: fields passed to `find_runs` (experiment, norm, batch_size, groups).

    Returns:
        {"value": float, "train": float, "loss": float, "status": str, "run": str}. Value is
        the median val error of the complete runs (averaged over seeds when several), of the
        partial runs when none is complete, and NaN when the run is missing or diverged.
    """
    matches = find_runs(runs, **selection)
    if matches.empty:
        return {"value": math.nan, "train": math.nan, "loss": math.nan, "status": "missing", "run": ""}
    names = ", ".join(matches["run_name"].astype(str))
    for state in ("complete", "partial"):
        usable = matches[(matches["state"] == state) & matches["val_error_median5"].notna()]
        if usable.empty:
            continue
        if state == "complete":
            status = "complete" if len(usable) == 1 else f"complete (mean of {len(usable)} runs)"
        else:
            status = "; ".join(usable["label"])
        others = matches.drop(usable.index)
        if not others.empty:
            status += "; also " + "; ".join(others["run_name"] + ": " + others["label"])
        return {
            "value": float(usable["val_error_median5"].mean()),
            "train": float(usable["train_error_median5"].mean()),
            "loss": float(usable["val_loss_median5"].mean()),
            "status": status,
            "run": names,
        }
    return {"value": math.nan, "train": math.nan, "loss": math.nan,
            "status": "; ".join(matches["label"]), "run": names}


def _context(runs: pd.DataFrame) -> str:
    def values(column):
        found = sorted({str(value) for value in runs[column].dropna()}) if column in runs else []
        return ", ".join(found) if found else "unknown"
    return f"dataset {values('dataset')}, profile {values('profile')}"


def table1(source="results", *, experiment=NORM_COMPARISON, batch_size=32, groups=None) -> pd.DataFrame:
    """Table 1 side by side: BN, LN, IN, GN at batch 32, ours beside the paper's.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiment: the experiment whose runs fill the table.
        batch_size: our batch size for the comparison (the paper's is 32 images/GPU).
        groups: restrict GN to runs with this many groups (None: any).

    Returns:
        One row per normalization with columns "norm", "ours val error (%)", "ours minus BN",
        "paper val error (%)", "paper minus BN", "status", "run". Units and sources are in
        ``frame.attrs["caption"]``.
    """
    runs = as_runs(source)
    cells = {norm: run_cell(runs, experiment=experiment, norm=norm, batch_size=batch_size,
                            groups=groups if norm == "group" else None)
             for norm in paper.TABLE1_NORMS}
    ours_bn = cells["batch"]["value"]
    rows = [{
        "norm": paper.NORM_LABELS[norm],
        "ours val error (%)": cell["value"],
        "ours minus BN": cell["value"] - ours_bn,
        "paper val error (%)": paper.TABLE1[norm],
        "paper minus BN": paper.TABLE1_DIFFERENCE_TO_BN[norm],
        "status": cell["status"],
        "run": cell["run"],
    } for norm, cell in cells.items()]
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Table 1 analogue: validation error at batch {batch_size} ({_context(runs)}). "
        f"{OURS_NOTE}. {PAPER_NOTE}, 32 images/GPU."
    )
    return frame


def table2(source="results", *, experiment=BATCH_SIZE_SWEEP, batch_sizes=paper.BATCH_SIZES,
           groups=None) -> pd.DataFrame:
    """Table 2 side by side: BN and GN by batch size, with GN minus BN, ours beside the paper's.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiment: the experiment whose runs fill the table.
        batch_sizes: the batch sizes to list, largest first like the paper.
        groups: restrict GN to runs with this many groups (None: any).

    Returns:
        One row per batch size with columns "batch size", "ours BN", "ours GN",
        "ours GN minus BN", "paper BN", "paper GN", "paper GN minus BN", "BN status",
        "GN status", "BN run", "GN run". Units are in ``frame.attrs["caption"]``.
    """
    runs = as_runs(source)
    rows = []
    for batch_size in batch_sizes:
        bn = run_cell(runs, experiment=experiment, norm="batch", batch_size=batch_size)
        gn = run_cell(runs, experiment=experiment, norm="group", batch_size=batch_size, groups=groups)
        paper_bn = paper.TABLE2["batch"].get(batch_size, math.nan)
        paper_gn = paper.TABLE2["group"].get(batch_size, math.nan)
        rows.append({
            "batch size": batch_size,
            "ours BN": bn["value"],
            "ours GN": gn["value"],
            "ours GN minus BN": gn["value"] - bn["value"],
            "paper BN": paper_bn,
            "paper GN": paper_gn,
            "paper GN minus BN": paper.TABLE2_GN_MINUS_BN.get(batch_size, math.nan),
            "BN status": bn["status"],
            "GN status": gn["status"],
            "BN run": bn["run"],
            "GN run": gn["run"],
        })
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Table 2 analogue: validation error (%) by batch size ({_context(runs)}). "
        f"{OURS_NOTE}. {PAPER_NOTE}."
    )
    return frame


def report_table(source="results") -> pd.DataFrame:
    """Our validation LOSS beside the 2023 report's numbers, which are losses, not errors.

    Args:
        source: a results folder or a frame from `load_runs`.

    Returns:
        One row per (experiment, norm, batch size) the report has, with columns "experiment",
        "norm", "batch size", "ours val loss", "report val loss", "status", "run".
    """
    runs = as_runs(source)
    rows = []
    for record in paper.report_records():
        cell = run_cell(runs, experiment=record["experiment"], norm=record["norm"],
                        batch_size=record["batch_size"])
        rows.append({
            "experiment": record["experiment"],
            "norm": paper.NORM_LABELS[record["norm"]],
            "batch size": record["batch_size"],
            "ours val loss": cell["loss"],
            "report val loss": record["value"],
            "status": cell["status"],
            "run": cell["run"],
        })
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Validation cross-entropy loss (nats), median of the last 5 epochs ({_context(runs)}), "
        f"beside the {paper.REPORT_CITATION} ({paper.REPORT_SETTING}), whose tables call this loss "
        "'error'. Its batch sizes never took effect, so its sweep rows are all batch-32 runs."
    )
    return frame


def batch_size_drop(source="results", *, large=32, small=2, experiment=BATCH_SIZE_SWEEP) -> pd.DataFrame:
    """How many points of val error BN and GN lose going from batch `large` to batch `small`.

    Args:
        source: a results folder or a frame from `load_runs`.
        large: the large batch size (the paper's 32).
        small: the small batch size (the paper's 2).
        experiment: the experiment whose runs are compared.

    Returns:
        Rows "BN" and "GN" (index "norm") with columns ours_large, ours_small, ours_increase,
        paper_large, paper_small, paper_increase, status_large, status_small. Increase =
        error at `small` minus error at `large`, in percentage points; NaN when a run is
        missing or diverged.
    """
    runs = as_runs(source)
    rows = {}
    for norm in ("batch", "group"):
        at_large = run_cell(runs, experiment=experiment, norm=norm, batch_size=large)
        at_small = run_cell(runs, experiment=experiment, norm=norm, batch_size=small)
        paper_large = paper.TABLE2[norm].get(large, math.nan)
        paper_small = paper.TABLE2[norm].get(small, math.nan)
        rows[paper.NORM_LABELS[norm]] = {
            "ours_large": at_large["value"],
            "ours_small": at_small["value"],
            "ours_increase": at_small["value"] - at_large["value"],
            "paper_large": paper_large,
            "paper_small": paper_small,
            "paper_increase": paper_small - paper_large,
            "status_large": at_large["status"],
            "status_small": at_small["status"],
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "norm"
    return frame


def _points(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.1f}"


def conclusions(source="results", *, large=32, small=2) -> list[str]:
    """The headline findings as sentences, computed from the numbers (for notebooks to print).

    Args:
        source: a results folder or a frame from `load_runs`.
        large: the large batch size of the sweep comparison.
        small: the small batch size of the sweep comparison.

    Returns:
        A list of sentences; a number that cannot be computed says why (missing, partial,
        diverged runs are named with their status).
    """
    runs = as_runs(source)
    lines = []
    first = table1(runs)
    ours = first.set_index("norm")["ours val error (%)"]
    gap = ours["GN"] - ours["BN"]
    lines.append(
        f"At batch 32, GN minus BN val error: ours {_points(gap)} points, paper "
        f"{paper.TABLE1['group'] - paper.TABLE1['batch']:+.1f} (ResNet-50, ImageNet)."
    )
    paper_errors = pd.Series({paper.NORM_LABELS[norm]: error for norm, error in paper.TABLE1.items()})
    lines.append(
        "Lowest to highest val error at batch 32: ours "
        + _ranking(ours)
        + "; paper " + _ranking(paper_errors) + "."
    )
    unavailable = first[~first["status"].str.startswith("complete")]
    if not unavailable.empty:
        listed = "; ".join(unavailable["norm"] + ": " + unavailable["status"])
        lines.append(f"Table 1 runs not complete: {listed}.")
    drop = batch_size_drop(runs, large=large, small=small)
    for label in drop.index:
        row = drop.loc[label]
        sentence = (
            f"{label} from batch {large} to {small}: val error changes by {_points(row['ours_increase'])} "
            f"points (paper {_points(row['paper_increase'])})."
        )
        caveats = [f"batch {size}: {status}" for size, status in
                   ((large, row["status_large"]), (small, row["status_small"]))
                   if not status.startswith("complete")]
        if caveats:
            sentence += " [" + "; ".join(caveats) + "]"
        lines.append(sentence)
    second = table2(runs, batch_sizes=(small,))
    lines.append(
        f"At batch {small}, GN minus BN: ours {_points(second['ours GN minus BN'].iloc[0])} points, "
        f"paper {_points(second['paper GN minus BN'].iloc[0])}."
    )
    return lines


def _ranking(errors: pd.Series) -> str:
    """ "BN 23.6 < GN 24.1 = LN 24.1": ties at one decimal are shown as ties."""
    ranked = errors.dropna().sort_values()
    if ranked.empty:
        return "n/a"
    text = f"{ranked.index[0]} {ranked.iloc[0]:.1f}"
    for (_, previous), (label, value) in zip(ranked.iloc[:-1].items(), ranked.iloc[1:].items()):
        relation = "=" if round(previous, 1) == round(value, 1) else "<"
        text += f" {relation} {label} {value:.1f}"
    return text


def _format_cell(value, decimals: int) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:.{decimals}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame, *, decimals: int = 1, index: bool = False, caption: bool = True) -> str:
    """A GitHub-flavoured markdown table of `frame` (no extra dependency).

    Args:
        frame: any DataFrame, e.g. from `table1` or `table2`.
        decimals: digits after the point for floats; NaN prints as "–".
        index: include the index as the first column.
        caption: append ``frame.attrs["caption"]`` (when present) below the table.

    Returns:
        The markdown text; numbers are right-aligned, text left-aligned.
    """
    if index:
        frame = frame.reset_index()
    headers = [str(column) for column in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[column]) for column in frame.columns]
    body = [[_format_cell(value, decimals) for value in row] for row in frame.itertuples(index=False)]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if is_number else ":---" for is_number in numeric) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    text = "\n".join(lines)
    if caption and frame.attrs.get("caption"):
        text += "\n\n" + frame.attrs["caption"]
    return text
