"""Run folders as one table: a row per run, with its config and the statistics every
reader takes from its history (utils.results builds the paper's tables on it; the rate
rule of utils.rates reads it to plan runs). It imports nothing that plans or reports.

The ``*_median5`` statistics are the median of the last 5 completed epochs of
history.csv, as in the paper, or of all completed epochs when a run has fewer than 5.
"""

from __future__ import annotations

import dataclasses
import math
import os

import pandas as pd

from utils import runs as runs_module
from utils.config import RunConfig

__all__ = [
    "CONFIG_COLUMNS",
    "RUN_COLUMNS",
    "run_row",
    "load_runs",
    "as_runs",
    "differing_settings",
    "not_averaged_text",
    "data_context",
]

# Every field of RunConfig (what a run is), then what its folder says about it.
CONFIG_COLUMNS = tuple(field.name for field in dataclasses.fields(RunConfig))
RUN_COLUMNS = (
    "experiment",
    "run_name",
    *(name for name in CONFIG_COLUMNS if name != "experiment"),
    "status",
    "epochs_completed",
    "diverged_epoch",
    "val_error_median5",
    "train_error_median5",
    "val_loss_median5",
    "median_epochs",
    "final_val_error",
    "best_val_error",
    "final_train_error",
    "wall_seconds",
    "steps_per_epoch",
    "reused_from",
    "path",
)


def _tail_median(values: pd.Series) -> float:
    """Median of the last 5 values (all when fewer); NaN when there are none."""
    median = runs_module.median_of_last(values)
    return math.nan if median is None else median


def run_row(record: runs_module.RunRecord) -> dict:
    """One row of `load_runs` for a run read back with `utils.runs.read_run`."""
    config, history = record.config, record.history
    completed = len(history)
    return {
        **{name: getattr(config, name) for name in CONFIG_COLUMNS},
        "run_name": config.run_name,
        "status": record.status,
        "epochs_completed": completed,
        "diverged_epoch": record.diverged_epoch,
        "val_error_median5": _tail_median(history["val_error"]),
        "train_error_median5": _tail_median(history["train_error"]),
        "val_loss_median5": _tail_median(history["val_loss"]),
        "median_epochs": min(completed, runs_module.MEDIAN_EPOCHS),
        "final_val_error": float(history["val_error"].iloc[-1]) if completed else math.nan,
        "best_val_error": float(history["val_error"].min()) if completed else math.nan,
        "final_train_error": float(history["train_error"].iloc[-1]) if completed else math.nan,
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
        ``median_epochs`` says how many). ``status`` is "complete", "partial" (running,
        or fewer epochs than configured) or "diverged" (`utils.runs.RunRecord.status`;
        summary.json's own "status" is not a column); `status_texts` gives the text
        tables show, e.g. "partial (3/10 epochs)". A run folder whose files are damaged
        is left out, and named in ``attrs["damaged"]`` ({"experiment/run": "damaged: <why>"}).
    """
    rows, damaged = [], {}
    for run_dir in runs_module.run_folders(results_dir):
        try:
            rows.append(run_row(runs_module.read_run(run_dir)))
        except (OSError, ValueError) as error:
            # One damaged run never stops the others being read: it is left out and named.
            reason = runs_module.damage_reason(error, runs_module.MESSAGE_LIMIT)
            damaged[f"{run_dir.parent.name}/{run_dir.name}"] = f"damaged: {reason}"
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    for column in (
        "groups",
        "channels_per_group",
        "batch_size",
        "seed",
        "epochs",
        "diverged_epoch",
    ):
        frame[column] = frame[column].astype("Int64")
    frame.attrs["results_dir"] = str(results_dir)
    frame.attrs["damaged"] = damaged
    return frame


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


def differing_settings(matches: pd.DataFrame) -> dict:
    """{config column: sorted values} of every setting but the seed in which the runs of
    `matches` differ. Runs that differ in anything but the seed are not seeds of one
    number: every reader (tables, findings, the rate rule, figures, the landscape and
    mixture tables) averages a group of runs only when this is empty."""
    return {
        column: sorted(set(matches[column].astype(str)))
        for column in CONFIG_COLUMNS
        if column in matches and column != "seed" and matches[column].astype(str).nunique() > 1
    }


def not_averaged_text(differing: dict) -> str:
    """What a group of runs of several settings shows instead of a number, e.g.
    "not averaged: its runs differ in weight_decay 0.0, 0.0001"."""
    listed = "; ".join(f"{column} {', '.join(values)}" for column, values in differing.items())
    return f"not averaged: its runs differ in {listed}"


def data_context(runs: pd.DataFrame) -> str:
    """ "dataset X, profile Y" of the runs in a frame, for captions."""

    def values(column):
        found = sorted({str(value) for value in runs[column].dropna()}) if column in runs else []
        return ", ".join(found) if found else "unknown"

    return f"dataset {values('dataset')}, profile {values('profile')}"
