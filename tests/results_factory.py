"""Small handmade results folders in the engine's layout, for the analysis tests.

Layout: ``<results_dir>/<experiment>/<run_name>/{config.json, history.csv, summary.json}``,
history.csv with the columns epoch,train_loss,train_error,val_loss,val_error,lr,seconds,steps.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

HISTORY_HEADER = ["epoch", "train_loss", "train_error", "val_loss", "val_error", "lr", "seconds", "steps"]
SHORT_NORMS = {"batch": "bn", "layer": "ln", "instance": "in", "group": "gn", "none": "none"}
DATASET = "synthetic-tiny-imagenet"
PROFILE = "test"
EPOCHS = 10


def run_name(norm: str, batch_size: int, groups: int | None = None, seed: int = 0) -> str:
    """The engine's run name, e.g. gn_g32_bs4_seed0 or bn_bs32_seed0."""
    group_part = f"_g{groups}" if norm == "group" and groups else ""
    return f"{SHORT_NORMS[norm]}{group_part}_bs{batch_size}_seed{seed}"


def curve(final: float, epochs: int, start: float = 99.0) -> list[float]:
    """A decreasing error curve from near `start` towards `final` (percent), one value per epoch."""
    return [round(final + (start - final) * math.exp(-epoch / 2.0), 3) for epoch in range(1, epochs + 1)]


def write_run(results_dir, experiment: str, norm: str, batch_size: int, val_errors, *,
              train_errors=None, epochs: int = EPOCHS, groups: int | None = None, seed: int = 0,
              status: str = "complete", diverged_epoch: int | None = None, nan_from_epoch: int | None = None,
              dataset: str = DATASET, profile: str = PROFILE, summary_overrides: dict | None = None,
              write_summary: bool = True, reused_from: str | None = None) -> Path:
    """Write one run folder.

    Args:
        results_dir: the results root.
        experiment: "norm_comparison" or "batch_size_sweep".
        norm: canonical normalization name.
        batch_size: images per step.
        val_errors: the val error (%) of each completed epoch; its length is the number of
            completed epochs written to history.csv.
        train_errors: train error per epoch; defaults to val error minus 5.
        epochs: the configured number of epochs.
        groups: GN groups (only used for "group").
        seed: the run's seed.
        status: summary.json status: "complete", "running" or "diverged".
        diverged_epoch: summary.json diverged_epoch.
        nan_from_epoch: write NaN losses from this epoch on (what a diverged run logs).
        dataset: dataset name written to config and summary.
        profile: profile name written to config and summary.
        summary_overrides: extra summary.json fields, e.g. a deliberately wrong median.
        write_summary: False leaves summary.json out (a run that has just started).
        reused_from: summary.json reused_from.

    Returns:
        The run folder.
    """
    name = run_name(norm, batch_size, groups, seed)
    run_dir = Path(results_dir) / experiment / name
    run_dir.mkdir(parents=True, exist_ok=True)
    train_errors = train_errors or [value - 5.0 for value in val_errors]
    config = {
        "experiment": experiment, "profile": profile, "model": "small_cnn", "norm": norm,
        "groups": groups if norm == "group" else None, "batch_size": batch_size, "epochs": epochs,
        "base_learning_rate": 0.1 * batch_size / 32, "momentum": 0.9, "weight_decay": 1e-4,
        "lr_decay_fractions": [0.3, 0.6, 0.9], "seed": seed, "dataset": dataset, "classes": 10,
        "images_per_class": 20, "precision": "float32", "jit_compile": False,
        "steps_per_execution": 1, "run_name": name,
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    with open(run_dir / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY_HEADER)
        for index, (val_error, train_error) in enumerate(zip(val_errors, train_errors)):
            epoch = index + 1
            diverged = nan_from_epoch is not None and epoch >= nan_from_epoch
            train_loss = math.nan if diverged else train_error / 20.0
            val_loss = math.nan if diverged else val_error / 20.0
            writer.writerow([epoch, train_loss, train_error, val_loss, val_error,
                             config["base_learning_rate"], 1.5, 200 // batch_size])
    if write_summary:
        summary = {
            "run_name": name, "experiment": experiment, "status": status,
            "epochs_completed": len(val_errors), "epochs": epochs, "diverged_epoch": diverged_epoch,
            "val_error_median5": None, "train_error_median5": None, "val_loss_median5": None,
            "steps_per_epoch": 200 // batch_size, "images_per_step": batch_size,
            "wall_seconds": 1.5 * len(val_errors),
            "versions": {"tensorflow": "2.21.0", "keras": "3", "python": "3.11", "numpy": "2"},
            "device": "CPU", "dataset": dataset, "profile": profile, "reused_from": reused_from,
        }
        summary.update(summary_overrides or {})
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir


# Final val errors of the standard folder's runs (what the curves converge towards).
NORM_COMPARISON_FINAL = {"batch": 60.0, "instance": 66.0, "group": 61.0}  # "layer" is missing
SWEEP_FINAL = {
    "batch": {32: 60.0, 16: 61.0, 8: 63.0, 4: 67.0},  # bs2 diverges at epoch 4
    "group": {32: 61.0, 16: 61.2, 2: 61.5},  # bs8 is partial, bs4 is missing
}
WRONG_SUMMARY_MEDIAN = 1.234


def make_results(results_dir, *, dataset: str = DATASET, profile: str = PROFILE) -> Path:
    """Write the standard test folder: complete, missing, partial and diverged runs.

    norm_comparison (batch 32): BN, IN, GN(G=32) complete; LN missing. GN's summary.json
    carries a wrong val_error_median5 (WRONG_SUMMARY_MEDIAN) that must never be shown.
    batch_size_sweep: BN complete at 32..4 and diverged at epoch 4 at batch 2 (NaN losses
    from epoch 4); GN complete at 32, 16, 2, partial at 8 (3 of 10 epochs, still running)
    and missing at 4.

    Returns:
        The results folder.
    """
    results_dir = Path(results_dir)
    common = {"dataset": dataset, "profile": profile}
    for norm, final in NORM_COMPARISON_FINAL.items():
        overrides = {"val_error_median5": WRONG_SUMMARY_MEDIAN} if norm == "group" else None
        write_run(results_dir, "norm_comparison", norm, 32, curve(final, EPOCHS),
                  groups=32 if norm == "group" else None, summary_overrides=overrides, **common)
    for norm, finals in SWEEP_FINAL.items():
        for batch_size, final in finals.items():
            write_run(results_dir, "batch_size_sweep", norm, batch_size, curve(final, EPOCHS),
                      groups=32 if norm == "group" else None, **common)
    write_run(results_dir, "batch_size_sweep", "batch", 2, [90.0, 85.0, 84.0, 99.5],
              status="diverged", diverged_epoch=4, nan_from_epoch=4, **common)
    write_run(results_dir, "batch_size_sweep", "group", 8, curve(62.0, EPOCHS)[:3],
              groups=32, status="running", **common)
    return results_dir
