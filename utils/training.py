"""run(config): resumable training that writes a self-describing results folder.

`run` trains one `RunConfig` and writes, atomically, into
`<results_dir>/<experiment>/<run_name>/`:

- config.json   the config (`RunConfig.to_dict`), written before training starts;
- history.csv   one row per completed epoch, columns `HISTORY_COLUMNS`;
- summary.json  status ("running" until the end, then "complete" or "diverged"), the
                paper's statistic (median of the last 5 epochs), steps per epoch,
                images per step, wall time, library versions and device.

Killed at any point and started again, `run` resumes from the last completed epoch
(Keras `BackupAndRestore` in the run's `backup/` folder) and ends with the history an
uninterrupted run would have had: each epoch's shuffling and augmentation is seeded by
(seed, epoch), so it does not depend on where training started. A finished run is
returned from disk; a run whose training settings equal a finished run of another
experiment reuses that run's results instead of training again.

Loss columns are the cross-entropy alone (without the weight-decay term); error columns
are top-1 error in percent. Validation images are never augmented.
"""

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from utils import data as data_module
from utils import models
from utils.config import RunConfig
from utils.config import learning_rate_for_epoch

__all__ = [
    "HISTORY_COLUMNS",
    "SUMMARY_KEYS",
    "FINAL_STATUSES",
    "RunResult",
    "run",
    "load_run",
    "run_directory",
    "make_strategy",
    "build_model",
    "load_data",
    "training_dataset",
    "validation_dataset",
    "epoch_seed",
]

HISTORY_COLUMNS = ("epoch", "train_loss", "train_error", "val_loss", "val_error", "lr", "seconds", "steps")
SUMMARY_KEYS = (
    "run_name",
    "experiment",
    "status",
    "epochs_completed",
    "epochs",
    "diverged_epoch",
    "val_error_median5",
    "train_error_median5",
    "val_loss_median5",
    "steps_per_epoch",
    "images_per_step",
    "wall_seconds",
    "versions",
    "device",
    "dataset",
    "profile",
    "reused_from",
)
# A run with one of these statuses is finished: `run` returns it from disk.
FINAL_STATUSES = ("complete", "diverged")
# The paper reports the median of the last 5 epochs' validation error.
MEDIAN_EPOCHS = 5
# Validation images per device per step: any size gives the same numbers (no
# normalization uses statistics across validation images), larger is faster.
VALIDATION_BATCH_SIZE = 256


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A run's results folder, read back.

    Args:
        config: the run's `RunConfig`.
        summary: the summary.json dict.
        history: the history.csv table (pandas DataFrame, one row per completed epoch).
        path: the run's folder.
    """

    config: RunConfig
    summary: dict
    history: object
    path: Path


# ----------------------------------------------------------------------------- files


def _write_atomically(path, text):
    """Writes `text` to `path` through a temporary file in the same folder and
    os.replace, so a reader (or a killed writer) never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _write_json(path, data):
    _write_atomically(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _format_value(value):
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    # 8 significant digits: exact for float32 metrics, and "0.001" for the lr; a float
    # always shows a decimal point, so readers see a float column ("75.0", not "75").
    text = f"{float(value):.8g}"
    return text if any(mark in text for mark in ".eni") else text + ".0"


def _parse_value(column, text):
    return int(text) if column in ("epoch", "steps") else float(text)


def _write_history(path, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in rows:
        writer.writerow([_format_value(row[column]) for column in HISTORY_COLUMNS])
    _write_atomically(path, buffer.getvalue())


def _read_history(path):
    """The rows of a history.csv as dicts of numbers ([] when there is no file)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != HISTORY_COLUMNS:
            raise ValueError(
                f"{path} has columns {reader.fieldnames}, expected {list(HISTORY_COLUMNS)}; "
                "delete the run folder to train it again."
            )
        return [{column: _parse_value(column, row[column]) for column in HISTORY_COLUMNS} for row in reader]


def run_directory(config, results_dir="results"):
    """The folder of a run: `<results_dir>/<experiment>/<run_name>`."""
    return Path(results_dir) / config.experiment / config.run_name


def load_run(path):
    """Reads a run folder back.

    Args:
        path: a run folder (`<results>/<experiment>/<run_name>`).

    Returns:
        A `RunResult`.
    """
    import pandas as pd

    path = Path(path)
    config = RunConfig.from_dict(json.loads((path / "config.json").read_text()))
    summary = json.loads((path / "summary.json").read_text())
    history_path = path / "history.csv"
    history = pd.read_csv(history_path) if history_path.exists() else pd.DataFrame(columns=HISTORY_COLUMNS)
    return RunResult(config=config, summary=summary, history=history, path=path)


# ------------------------------------------------------------------- devices and data


def _logical_cpus():
    return tf.config.list_logical_devices("CPU")


_STRATEGIES = {}


def make_strategy(distribution="auto"):
    """The tf.distribute strategy for a `RunConfig.distribution` value.

    One MirroredStrategy is created per process and reused: a second one would restart
    the collective-op keys of the first, and a run with synchronized batch norm after
    another mirrored run then fails with "Shape mismatch in the collective instance".

    Args:
        distribution: "none" (the default single device), "mirrored" (every local GPU,
            or every logical CPU device when there is no GPU) or "auto" (mirrored when
            there are two or more GPUs, else none).

    Returns:
        A `tf.distribute.Strategy`.
    """
    if distribution == "auto":
        distribution = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "none"
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution != "mirrored":
        raise ValueError(f"Unknown distribution {distribution!r}; valid values are auto, none, mirrored.")
    if distribution not in _STRATEGIES:
        devices = tf.config.list_logical_devices("GPU") or _logical_cpus()
        _STRATEGIES[distribution] = tf.distribute.MirroredStrategy([device.name for device in devices])
    return _STRATEGIES[distribution]


def _describe_device(strategy):
    replicas = strategy.num_replicas_in_sync
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        kind = details.get("device_name", "GPU")
    else:
        kind = f"CPU ({platform.machine() or 'unknown'}, {os.cpu_count()} cores)"
    return f"{replicas} x {kind}"


def _versions():
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


_DATA_CACHE = {}


def load_data(config, data_dir=None):
    """The (x_train, y_train), (x_val, y_val) arrays of a config's data selection.

    The arrays of the last selection are kept in memory, so a grid of runs on the same
    data loads it once.

    Args:
        config: the `RunConfig` (dataset, classes, images_per_class, val_images_per_class).
        data_dir: for "tiny-imagenet-200", the data set's folder or archive (None:
            utils.data's default location, downloading it if needed); for
            "synthetic-tiny-imagenet", the folder the synthetic set is generated in
            (None: "data").

    Returns:
        ((x_train, y_train), (x_val, y_val)): uint8 images (n, 64, 64, 3), int labels.
    """
    key = (config.dataset, config.classes, config.images_per_class, config.val_images_per_class, str(data_dir))
    if key not in _DATA_CACHE:
        if config.dataset == "synthetic-tiny-imagenet":
            folder = synthetic_data_folder(config, data_dir)
            path = data_module.make_synthetic_tiny_imagenet(
                folder,
                classes=config.classes,
                images_per_class=config.images_per_class,
                val_per_class=config.val_images_per_class,
            )
            arrays = data_module.load_tiny_imagenet(
                path,
                download=False,
                classes=config.classes,
                images_per_class=config.images_per_class,
                cache_dir=folder / "cache",
            )
        else:
            arrays = data_module.load_tiny_imagenet(
                data_dir, classes=config.classes, images_per_class=config.images_per_class
            )
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = arrays
    return _DATA_CACHE[key]


def synthetic_data_folder(config, data_dir=None):
    """The folder a synthetic config's data set is generated in, with its decoded cache.

    One folder per selection, under `data_dir` (default "data"); the data set itself is
    its "synthetic-tiny-imagenet" subfolder.
    """
    return Path(data_dir or "data") / (
        f"synthetic-c{config.classes}-n{config.images_per_class}-v{config.val_images_per_class}"
    )


def epoch_seed(seed, epoch):
    """The shuffling/augmentation seed of one epoch: a function of (seed, epoch) only,
    so a resumed run sees the same batches as an uninterrupted one."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def training_dataset(config, x, y, epoch, replicas=1):
    """One epoch of shuffled, flipped training batches of `batch_size * replicas`
    images (tf.distribute gives each replica `batch_size` of them)."""
    return data_module.make_dataset(
        x, y, config.batch_size * replicas, training=True, seed=epoch_seed(config.seed, epoch)
    )


def validation_dataset(x, y, replicas=1):
    """Validation batches: no augmentation, no shuffling, every image."""
    return data_module.make_dataset(x, y, VALIDATION_BATCH_SIZE * replicas, training=False)


# ---------------------------------------------------------------------------- model


def build_model(config, num_classes=None, input_shape=(64, 64, 3)):
    """The compiled model of a config (call inside the strategy's scope).

    SGD with the config's momentum and initial learning rate; weight decay as coupled
    L2 regularizers on every weight (utils.models); metrics "accuracy" and
    "cross_entropy" (the loss without its weight-decay term).

    Args:
        config: the `RunConfig`.
        num_classes: output classes (default `config.classes`).
        input_shape: image shape.

    Returns:
        A compiled `keras.Model`.
    """
    num_classes = num_classes or config.classes
    if config.model == "small_cnn":
        model = models.small_cnn(
            config.norm,
            num_classes=num_classes,
            input_shape=input_shape,
            second_kernel_size=config.second_kernel_size,
            weight_decay=config.weight_decay,
            **config.norm_options(),
        )
    else:
        model = models.resnet50(
            config.norm,
            num_classes=num_classes,
            input_shape=input_shape,
            weight_decay=config.weight_decay,
            **config.norm_options(),
        )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum),
        loss="sparse_categorical_crossentropy",
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="cross_entropy"),
        ],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


@contextlib.contextmanager
def _op_determinism(enabled):
    """TensorFlow's deterministic kernels on or off for one run, restored afterwards.

    TensorFlow only exports the switch on; the off switch lives next to it in
    tensorflow.python.framework.config.
    """
    from tensorflow.python.framework import config as tf_config

    previous = tf_config.is_op_determinism_enabled()
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
    try:
        yield
    finally:
        if previous:
            tf.config.experimental.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()


@contextlib.contextmanager
def _dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ------------------------------------------------------------------------ callbacks


class _EpochProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, labelled with the run's epoch count ("Epoch 3/10"): each
    epoch is its own `fit` call, which would otherwise be labelled "Epoch 3/3"."""

    def __init__(self, epochs):
        super().__init__()
        self._run_epochs = epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self._run_epochs


class _DivergenceGuard(keras.callbacks.TerminateOnNaN):
    """Stops training at the first NaN/inf training loss (Keras's TerminateOnNaN with
    raise_error, so no later callback records or backs up the diverged state), and
    likewise when an epoch ends with a non-finite validation loss."""

    def __init__(self):
        super().__init__(raise_error=True)
        self.diverged_epoch = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError:
            self.diverged_epoch = self._epoch + 1
            raise

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = [logs.get(key) for key in ("loss", "cross_entropy", "val_cross_entropy")]
        if any(value is not None and not math.isfinite(value) for value in values):
            self.diverged_epoch = epoch + 1
            raise RuntimeError(f"Non-finite loss at the end of epoch {epoch + 1}: {logs}.")


class _HistoryRecorder(keras.callbacks.Callback):
    """Appends one row per completed epoch and rewrites history.csv and summary.json
    (status "running") atomically, before the backup of that epoch is written."""

    def __init__(self, rows, on_epoch_recorded):
        super().__init__()
        self.rows = rows
        self.on_epoch_recorded = on_epoch_recorded

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self._start = time.perf_counter()
        self._learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self._iterations = int(keras.ops.convert_to_numpy(optimizer.iterations))

    def on_epoch_end(self, epoch, logs=None):
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        row = {
            "epoch": epoch + 1,
            "train_loss": float(logs["cross_entropy"]),
            "train_error": 100.0 * (1.0 - float(logs["accuracy"])),
            "val_loss": float(logs["val_cross_entropy"]),
            "val_error": 100.0 * (1.0 - float(logs["val_accuracy"])),
            "lr": self._learning_rate,
            "seconds": time.perf_counter() - self._start,
            "steps": iterations - self._iterations,
        }
        # Keep the values as written to history.csv, so the summary of a resumed run
        # (whose first rows are read back from the file) equals an uninterrupted one's.
        self.rows.append({column: _parse_value(column, _format_value(value)) for column, value in row.items()})
        self.on_epoch_recorded()


def _backed_up_epoch(backup_dir):
    """The number of epochs in the BackupAndRestore backup (0 when there is none)."""
    weights = Path(backup_dir) / "latest.weights.h5"
    metadata = Path(backup_dir) / "training_metadata.json"
    if not (weights.exists() and metadata.exists()):
        return 0
    return int(json.loads(metadata.read_text())["epoch"])


# ------------------------------------------------------------------------------ run


def _median(rows, column):
    values = [row[column] for row in rows[-MEDIAN_EPOCHS:]]
    return float(statistics.median(values)) if values else None


def _summary(config, rows, status, *, diverged_epoch, images_per_step, device):
    steps = [row["steps"] for row in rows]
    return {
        "run_name": config.run_name,
        "experiment": config.experiment,
        "status": status,
        "epochs_completed": len(rows),
        "epochs": config.epochs,
        "diverged_epoch": diverged_epoch,
        "val_error_median5": _median(rows, "val_error"),
        "train_error_median5": _median(rows, "train_error"),
        "val_loss_median5": _median(rows, "val_loss"),
        "steps_per_epoch": steps[-1] if steps else None,
        "images_per_step": images_per_step,
        "wall_seconds": float(sum(row["seconds"] for row in rows)),
        "versions": _versions(),
        "device": device,
        "dataset": config.dataset,
        "profile": config.profile,
        "reused_from": None,
    }


def _check_stored_config(run_dir, config):
    """Raises ValueError when run_dir holds a run of a different config."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    stored_data = json.loads(path.read_text())
    try:
        stored = RunConfig.from_dict(stored_data)
    except (TypeError, ValueError) as error:
        stored, reason = None, f"its config.json is not a valid config ({error})"
    if stored is not None:
        if stored == config:
            return
        requested = config.to_dict()
        differences = [
            f"{key}: stored {stored_data.get(key)!r}, requested {value!r}"
            for key, value in requested.items()
            if stored.to_dict().get(key) != value
        ]
        reason = "its config differs (" + "; ".join(differences) + ")"
    raise ValueError(
        f"{run_dir} already holds a run and {reason}. Use another results folder "
        f"(results_dir=...) or delete {run_dir} to train this config."
    )


def _find_reusable(config, results_dir):
    """A finished run of another experiment with the same training settings, or None."""
    for candidate in sorted(Path(results_dir).glob(f"*/{config.run_name}")):
        if candidate.parent.name == config.experiment:
            continue
        try:
            stored = RunConfig.from_dict(json.loads((candidate / "config.json").read_text()))
            summary = json.loads((candidate / "summary.json").read_text())
        except (OSError, ValueError, TypeError):
            continue
        if (
            stored.training_settings() == config.training_settings()
            and summary.get("status") in FINAL_STATUSES
            and summary.get("reused_from") is None
        ):
            return candidate
    return None


def _reuse(config, source, run_dir, results_dir):
    """Copies a finished run's results into run_dir (summary "reused_from": source)."""
    summary = json.loads((source / "summary.json").read_text())
    history_text = (source / "history.csv").read_text() if (source / "history.csv").exists() else None
    _write_json(run_dir / "config.json", config.to_dict())
    if history_text is not None:
        _write_atomically(run_dir / "history.csv", history_text)
    summary.update(
        run_name=config.run_name,
        experiment=config.experiment,
        reused_from=source.relative_to(results_dir).as_posix(),
    )
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    _write_json(run_dir / "summary.json", summary)


def planned_action(config, results_dir="results"):
    """What `run` will do with `config`, without doing it.

    Returns:
        ("finished", None) when its folder holds a finished (complete or diverged) run;
        ("reuse", source_folder) when a finished run of another experiment has the same
        training settings; ("train", None) otherwise.
    """
    summary_path = run_directory(config, results_dir) / "summary.json"
    if summary_path.exists() and json.loads(summary_path.read_text()).get("status") in FINAL_STATUSES:
        return "finished", None
    source = _find_reusable(config, Path(results_dir))
    if source is not None:
        return "reuse", source
    return "train", None


def run(config, results_dir="results", *, data_dir=None, verbose=1, callbacks=()):
    """Trains one config, or returns its results when they are already on disk.

    Args:
        config: the `RunConfig`.
        results_dir: results root; the run writes `<results_dir>/<experiment>/<run_name>/`.
        data_dir: where the data is (see `load_data`).
        verbose: Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
        callbacks: extra Keras callbacks, called after the run's own ones.

    Returns:
        A `RunResult` of the run's folder.

    Raises:
        ValueError: when the run's folder holds a run of a different config.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}.")
    results_dir = Path(results_dir)
    run_dir = run_directory(config, results_dir)
    _check_stored_config(run_dir, config)

    action, source = planned_action(config, results_dir)
    if action == "finished":
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
        return load_run(run_dir)
    if action == "reuse":
        _reuse(config, source, run_dir, results_dir)
        return load_run(run_dir)

    # Keras compiles without XLA whenever TensorFlow's deterministic kernels are on, so
    # with jit_compile=True determinism rests on XLA, whose CPU kernels are deterministic.
    with _dtype_policy(config.precision), _op_determinism(config.deterministic and not config.jit_compile):
        _train(config, run_dir, data_dir=data_dir, verbose=verbose, callbacks=callbacks)
    return load_run(run_dir)


class _RunFiles:
    """The files of a run being trained: history rows and summary, rewritten atomically."""

    def __init__(self, config, run_dir, rows, *, images_per_step, device):
        self.config = config
        self.run_dir = run_dir
        self.rows = rows
        self.images_per_step = images_per_step
        self.device = device

    def write(self, status, diverged_epoch=None):
        _write_history(self.run_dir / "history.csv", self.rows)
        summary = _summary(
            self.config,
            self.rows,
            status,
            diverged_epoch=diverged_epoch,
            images_per_step=self.images_per_step,
            device=self.device,
        )
        _write_json(self.run_dir / "summary.json", summary)


def _resume_point(run_dir):
    """(first epoch to train, history rows of the epochs before it) of a run folder.

    History rows are written before the backup of their epoch, so there may be one more
    row than backed-up epochs: it is dropped and that epoch trained again.
    """
    backup_dir = run_dir / "backup"
    start_epoch = _backed_up_epoch(backup_dir)
    rows = _read_history(run_dir / "history.csv")[:start_epoch]
    if len(rows) < start_epoch:
        # A backup without its history rows cannot be reported: start again.
        shutil.rmtree(backup_dir, ignore_errors=True)
        return 0, []
    return start_epoch, rows


def _train(config, run_dir, *, data_dir, verbose, callbacks):
    """Trains (or resumes) a run into run_dir."""
    # Free the previous run's models: a grid trains many in one process.
    keras.backend.clear_session()
    strategy = make_strategy(config.distribution)
    replicas = strategy.num_replicas_in_sync
    backup_dir = run_dir / "backup"

    # The same seed gives the same initial weights, deterministic kernels the same updates.
    keras.utils.set_random_seed(config.seed)
    (x_train, y_train), (x_val, y_val) = load_data(config, data_dir)
    images_per_step = config.batch_size * replicas
    if len(x_train) < images_per_step:
        raise ValueError(
            f"{len(x_train)} training images are fewer than one step of {images_per_step} "
            f"(batch_size={config.batch_size} x {replicas} replicas); use more images_per_class."
        )

    start_epoch, rows = _resume_point(run_dir)
    files = _RunFiles(config, run_dir, rows, images_per_step=images_per_step, device=_describe_device(strategy))
    _write_json(run_dir / "config.json", config.to_dict())
    files.write("running")

    with strategy.scope():
        model = build_model(config)
    validation = validation_dataset(x_val, y_val, replicas)
    guard = _DivergenceGuard()
    run_callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch, _: learning_rate_for_epoch(config, epoch)),
        *([_EpochProgressBar(config.epochs)] if verbose else []),
        guard,
        _HistoryRecorder(rows, on_epoch_recorded=lambda: files.write("running")),
        # Saves weights, optimizer state and epoch after each epoch; restores them when
        # fit starts. delete_checkpoint=False: each epoch is its own fit call.
        keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False),
        *callbacks,
    ]

    # One fit call per epoch, each with that epoch's dataset: its shuffling and
    # augmentation then depend on (seed, epoch) alone, not on where training resumed.
    for epoch in range(start_epoch, config.epochs):
        try:
            model.fit(
                training_dataset(config, x_train, y_train, epoch, replicas),
                validation_data=validation,
                initial_epoch=epoch,
                epochs=epoch + 1,
                verbose=verbose,
                callbacks=run_callbacks,
                shuffle=False,  # the dataset is already shuffled, by (seed, epoch)
            )
        except RuntimeError:
            if guard.diverged_epoch is None:
                raise
            files.write("diverged", guard.diverged_epoch)
            shutil.rmtree(backup_dir, ignore_errors=True)
            if verbose:
                print(f"{config.experiment}/{config.run_name}: diverged in epoch {guard.diverged_epoch}.")
            return
    files.write("complete")
    shutil.rmtree(backup_dir, ignore_errors=True)
