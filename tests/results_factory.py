"""Small results folders for the analysis tests, written the way the engine writes them.

Every folder is made from a real `RunConfig` and the writers of `utils.runs` (the ones the
engine uses), so the analysis is tested on folders the engine can produce: complete,
partial (still running) and diverged runs, and runs reused from another experiment.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
from unittest import mock

from utils import runs
from utils.config import RunConfig
from utils.config import learning_rate_for_epoch

DATASET = "synthetic-tiny-imagenet"
PROFILE = "smoke"
EPOCHS = 10
CLASSES = 10
IMAGES_PER_CLASS = 20
EPOCH_SECONDS = 1.5  # the wall time every epoch of a factory run records


def make_config(
    experiment,
    norm,
    batch_size,
    *,
    seed=0,
    epochs=EPOCHS,
    dataset=DATASET,
    profile=PROFILE,
    **fields,
):
    """A run config of the test grid: 10 classes x 20 images (50 validation images per
    class for the real data set, 5 for the synthetic one)."""
    return RunConfig(
        experiment=experiment,
        profile=profile,
        norm=norm,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        dataset=dataset,
        classes=CLASSES,
        images_per_class=IMAGES_PER_CLASS,
        val_images_per_class=50 if dataset == "tiny-imagenet-200" else 5,
        jit_compile=False,
        **fields,
    )


def curve(final: float, epochs: int, start: float = 99.0) -> list[float]:
    """A decreasing error curve from near `start` towards `final` (percent), one value per epoch."""
    return [
        round(final + (start - final) * math.exp(-epoch / 2.0), 3) for epoch in range(1, epochs + 1)
    ]


def curve_median(final: float, epochs: int = EPOCHS, last: int = 5) -> float:
    """The median of the last `last` epochs of `curve(final, epochs)`: a run's reported error."""
    return float(statistics.median(curve(final, epochs)[-last:]))


@contextlib.contextmanager
def without_fsync():
    """The writers of `utils.runs` as they are, less their os.fsync: a handmade folder lives
    in a test's temporary folder and need not survive a power cut, and the fsync calls were
    most of the time it took to write one (seconds of every test session)."""
    with mock.patch.object(os, "fsync", lambda descriptor: None):
        yield


@without_fsync()
def write_run(results_dir, config, val_errors, *, train_errors=None, status="complete"):
    """Writes one run folder as the engine would after `len(val_errors)` epochs.

    Args:
        results_dir: the results root.
        config: the run's `RunConfig`.
        val_errors: the val error (%) of each completed epoch.
        train_errors: train error per epoch; defaults to val error minus 5.
        status: "complete" (needs every epoch), "running" (a partial run) or
            "diverged" (the epoch after the last one blew up).

    Returns:
        The run folder.
    """
    if status == "complete" and len(val_errors) != config.epochs:
        raise ValueError(f"a complete run has {config.epochs} epochs, not {len(val_errors)}")
    train_errors = train_errors or [value - 5.0 for value in val_errors]
    steps = config.classes * config.images_per_class // config.batch_size
    rows = [
        runs.as_written(
            {
                "epoch": epoch,
                "train_loss": train_error / 20.0,
                "train_error": train_error,
                "val_loss": val_error / 20.0,
                "val_error": val_error,
                "lr": learning_rate_for_epoch(config, epoch - 1),
                "seconds": EPOCH_SECONDS,
                "steps": steps,
            }
        )
        for epoch, (val_error, train_error) in enumerate(zip(val_errors, train_errors), start=1)
    ]
    run_dir = runs.run_directory(config, results_dir)
    runs.write_config(run_dir, config)
    runs.write_history(run_dir, rows)
    summary = runs.make_summary(
        config,
        rows,
        status,
        diverged_epoch=len(rows) + 1 if status == "diverged" else None,
        images_per_step=config.batch_size,
        device="1 x CPU (test)",
        versions={"keras": "test"},
    )
    runs.write_summary(run_dir, summary)
    return run_dir


# Final val errors of the standard folder's runs (what the curves converge towards).
NORM_COMPARISON_FINAL = {"batch": 60.0, "instance": 66.0, "group": 61.0}  # "layer" is missing
SWEEP_FINAL = {
    "batch": {16: 61.0, 8: 63.0, 4: 67.0},  # bs32 reuses the comparison's; bs2 diverges at epoch 4
    "group": {16: 61.2, 2: 61.5},  # bs32 reused; bs8 is partial, bs4 is missing
}


@without_fsync()
def make_results(results_dir, *, dataset: str = DATASET, profile: str = PROFILE):
    """Writes the standard test folder: complete, reused, missing, partial and diverged runs.

    norm_comparison (batch 32): BN, IN, GN(G=32) complete; LN missing.
    batch_size_sweep: BN and GN at batch 32 reused from the comparison; BN complete at
    16..4 and diverged at epoch 4 at batch 2; GN complete at 16 and 2, partial at 8 (3 of
    10 epochs, still running) and missing at 4.

    Returns:
        The results folder.
    """
    common = {"dataset": dataset, "profile": profile}
    for norm, final in NORM_COMPARISON_FINAL.items():
        write_run(
            results_dir, make_config("norm_comparison", norm, 32, **common), curve(final, EPOCHS)
        )
    for norm in ("batch", "group"):
        source = runs.run_directory(make_config("norm_comparison", norm, 32, **common), results_dir)
        runs.copy_finished_run(
            make_config("batch_size_sweep", norm, 32, **common), source, results_dir
        )
    for norm, finals in SWEEP_FINAL.items():
        for batch_size, final in finals.items():
            write_run(
                results_dir,
                make_config("batch_size_sweep", norm, batch_size, **common),
                curve(final, EPOCHS),
            )
    write_run(
        results_dir,
        make_config("batch_size_sweep", "batch", 2, **common),
        [90.0, 85.0, 84.0],
        status="diverged",
    )
    write_run(
        results_dir,
        make_config("batch_size_sweep", "group", 8, **common),
        curve(62.0, EPOCHS)[:3],
        status="running",
    )
    return results_dir


# The further experiments (utils.experiments.beyond_the_paper.analysis), seeds 0 and 1.
ABLATION_SEEDS = (0, 1)
# Final val error by seed of every group-ablation cell: (setting, size) -> (seed 0, seed 1).
# ("groups", 1) is the LN runs and ("channels_per_group", 1) the IN runs;
# ("channels_per_group", 2) is missing on purpose.
ABLATION_FINAL = {
    ("groups", 64): (63.0, 64.0),
    ("groups", 32): (60.0, 61.0),
    ("groups", 16): (61.0, 61.5),
    ("groups", 8): (61.5, 62.5),
    ("groups", 4): (62.0, 63.0),
    ("groups", 2): (62.5, 63.0),
    ("groups", 1): (64.0, 66.0),
    ("channels_per_group", 64): (62.0, 62.0),
    ("channels_per_group", 32): (61.0, 62.0),
    ("channels_per_group", 16): (60.5, 61.5),
    ("channels_per_group", 8): (61.0, 61.0),
    ("channels_per_group", 4): (62.0, 63.0),
    ("channels_per_group", 1): (70.0, 73.0),
}
# Batch renorm experiment: norm -> batch -> (seed 0, seed 1).
RENORM_FINAL = {
    "batch": {32: (60.0, 60.5), 8: (62.0, 63.0), 4: (66.0, 67.0), 2: (75.0, 74.0)},
    "batch_renorm": {32: (60.5, 60.5), 8: (61.0, 62.0), 4: (63.0, 65.0), 2: (70.0, 76.0)},
    "group": {32: (61.0, 61.0), 8: (61.0, 61.5), 4: (61.5, 61.0), 2: (61.0, 62.0)},
}
# Weight standardization experiment: (norm, standardized) -> batch -> (seed 0, seed 1).
WS_FINAL = {
    ("batch", False): {32: (60.0, 60.5), 8: (62.0, 63.0), 2: (75.0, 74.0)},
    ("batch", True): {32: (59.0, 60.0), 8: (61.0, 62.0), 2: (73.0, 74.5)},
    ("group", False): {32: (61.0, 61.0), 8: (61.0, 61.5), 2: (61.0, 62.0)},
    ("group", True): {32: (59.5, 60.0), 8: (60.0, 60.5), 2: (60.0, 61.0)},
}


def ablation_config(setting, size, seed):
    if size == 1:
        norm = "layer" if setting == "groups" else "instance"
        return make_config("group_ablation", norm, 32, seed=seed)
    return make_config("group_ablation", "group", 32, seed=seed, **{setting: size})


@without_fsync()
def make_ablation_results(root):
    """Writes a folder of the three further experiments, seeds 0 and 1 (see the
    *_FINAL tables): every cell complete but C/G = 2, which is missing; the runs without
    WS are copies of the batch-renorm experiment's, as the engine makes them.

    Returns:
        The results folder.
    """
    for (setting, size), finals in ABLATION_FINAL.items():
        for seed, final in zip(ABLATION_SEEDS, finals):
            write_run(root, ablation_config(setting, size, seed), curve(final, EPOCHS))
    for norm, by_batch in RENORM_FINAL.items():
        for batch_size, finals in by_batch.items():
            for seed, final in zip(ABLATION_SEEDS, finals):
                config = make_config("batch_renorm", norm, batch_size, seed=seed)
                write_run(root, config, curve(final, EPOCHS))
    for (norm, standardized), by_batch in WS_FINAL.items():
        for batch_size, finals in by_batch.items():
            for seed, final in zip(ABLATION_SEEDS, finals):
                config = make_config(
                    "weight_standardization",
                    norm,
                    batch_size,
                    seed=seed,
                    weight_standardization=standardized,
                )
                if not standardized and batch_size in RENORM_FINAL[norm]:
                    # Shared runs are copies of another experiment's, as the engine makes them.
                    source = runs.run_directory(
                        make_config("batch_renorm", norm, batch_size, seed=seed), root
                    )
                    runs.copy_finished_run(config, source, root)
                    continue
                write_run(root, config, curve(final, EPOCHS))
    return root


# The tests of the 2021 study's claims (utils.experiments.understanding_gn.analysis), seeds 0 and 1.
# Landscape: a probe's quantities scale with a factor per normalization (and seed).
LANDSCAPE_FACTOR = {"batch": 1.0, "group": 2.0, "none": 3.0}
PROBE_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)
PROBES_PER_EPOCH = 3
# Distortion: (norm, condition) -> final val error by seed.
DISTORTION_FINAL = {
    ("batch", "recipe"): (60.0, 61.0),
    ("batch", "noise"): (62.0, 62.5),
    ("batch", "no weight decay"): (60.5, 61.0),
    ("group", "recipe"): (61.0, 61.5),
    ("group", "noise"): (89.0, 89.5),
    ("group", "no weight decay"): (60.0, 60.0),
}
DISTORTION_FIELDS = {
    "recipe": {},
    "noise": dict(norm_noise_mean=1e-3, norm_noise_stddev=1.001),
    "no weight decay": dict(weight_decay=0.0),
}
# Mixtures: norm -> batch -> final val error by seed; the learnt s ends at these values.
MIXTURE_FINAL = {
    "batch": {32: (60.0, 60.5), 8: (62.0, 63.0), 2: (75.0, 74.0)},
    "group": {32: (61.0, 61.0), 8: (61.0, 61.5), 2: (61.0, 62.0)},
    "gn_plus_parallel": {32: (60.0, 60.2), 8: (60.5, 61.0), 2: (63.0, 64.0)},
    "gn_plus_gn_first": {32: (60.5, 60.5), 8: (60.8, 61.0), 2: (61.0, 61.5)},
    "gn_plus_bn_first": {32: (62.0, 61.0), 8: (63.0, 64.0), 2: (70.0, 72.0)},
}
FINAL_MIXING_WEIGHT = {"norm1": 0.9, "norm2": 0.6}


def landscape_rows(norm, seed, epochs, steps_per_epoch):
    """landscape.csv rows: loss range 0.035 f, largest gradient change 0.4 f and
    beta-smoothness 0.5 f at every probe, f = LANDSCAPE_FACTOR[norm] + seed / 10."""
    factor = LANDSCAPE_FACTOR[norm] + seed / 10
    every = steps_per_epoch // PROBES_PER_EPOCH
    rows = []
    for epoch in range(1, epochs + 1):
        for step in range((epoch - 1) * steps_per_epoch, epoch * steps_per_epoch, every):
            for multiplier in PROBE_MULTIPLIERS:
                rows.append(
                    {
                        "epoch": epoch,
                        "step": step,
                        "multiplier": multiplier,
                        "step_size": multiplier * 0.003,
                        "base_loss": 3.0,
                        "loss": 3.0 + factor * multiplier * 0.01,
                        "gradient_norm": 1.0,
                        "gradient_distance": factor * multiplier * 0.1,
                        "step_length": multiplier * 0.2,
                    }
                )
    return rows


@without_fsync()
def make_understanding_results(root):
    """Writes a folder of the landscape, distortion and mixtures experiments, seeds 0 and 1:
    every cell complete, with landscape.csv and mixing.csv where the engine writes them.

    Returns:
        The results folder.
    """
    for norm in LANDSCAPE_FACTOR:
        for batch_size in (32, 2):
            for seed in ABLATION_SEEDS:
                config = make_config(
                    "landscape", norm, batch_size, seed=seed, landscape_probes=PROBES_PER_EPOCH
                )
                run_dir = write_run(root, config, curve(60.0 + LANDSCAPE_FACTOR[norm], EPOCHS))
                steps = config.classes * config.images_per_class // batch_size
                runs.write_measurements(
                    run_dir, "landscape.csv", landscape_rows(norm, seed, EPOCHS, steps)
                )
    for (norm, condition), finals in DISTORTION_FINAL.items():
        for seed, final in zip(ABLATION_SEEDS, finals):
            config = make_config("distortion", norm, 32, seed=seed, **DISTORTION_FIELDS[condition])
            train = [99.0] * EPOCHS if final > 85 else None  # the noisy GN stops learning
            write_run(root, config, curve(final, EPOCHS), train_errors=train)
    for norm, by_batch in MIXTURE_FINAL.items():
        for batch_size, finals in by_batch.items():
            for seed, final in zip(ABLATION_SEEDS, finals):
                run_dir = write_run(
                    root, make_config("mixtures", norm, batch_size, seed=seed), curve(final, EPOCHS)
                )
                if norm.startswith("gn_plus_"):
                    runs.write_measurements(
                        run_dir,
                        "mixing.csv",
                        [
                            {
                                "epoch": epoch,
                                "layer": layer,
                                "mixing_weight": 0.731 + (end - 0.731) * epoch / EPOCHS,
                            }
                            for epoch in range(1, EPOCHS + 1)
                            for layer, end in FINAL_MIXING_WEIGHT.items()
                        ],
                    )
    return root
