"""run(config): resumable training that writes a self-describing results folder.

`run` trains one `RunConfig` into `<results_dir>/<experiment>/<run_name>/` (the format
is utils.runs's: config.json, history.csv, summary.json, all written atomically).

Killed at any point and started again, `run` resumes from the last completed epoch
(the weights and optimizer state in the run's `backup/` folder) and ends with the
history an uninterrupted run would have had: each epoch's shuffling and augmentation is
seeded by (seed, epoch), so it does not depend on where training started. A finished run
is returned from disk; a run whose training settings equal a finished run of another
experiment reuses that run's results instead of training again. One process at a time
trains a run: it holds the run folder's lock, and a second process skips the run.

On a CPU every training uses one TensorFlow thread (`TRAINING_THREADS`, set by
`use_training_threads` before TensorFlow starts): the oneDNN and XLA kernels round sums
differently with another thread count, so a history would otherwise depend on the
machine's cores and on how many runs train side by side. What reproduces where is
stated in the README ("Reproducibility").

Loss columns are the cross-entropy alone (without the weight-decay term); error columns
are top-1 error in percent. Validation images are never augmented.
"""

import contextlib
import datetime
import math
import os
import platform
import shutil
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from utils import data as data_module
from utils import models
from utils import planning
from utils import runs
from utils.config import RunConfig
from utils.config import learning_rate_for_epoch

__all__ = [
    "run",
    "use_training_threads",
    "TRAINING_THREADS",
    "make_strategy",
    "build_model",
    "load_data",
    "training_dataset",
    "validation_dataset",
    "epoch_seed",
]

# The environment variable that names a folder for TensorBoard's event files of every run
# trained in this process and its workers (`--tensorboard DIR` sets it): one subfolder per
# run, <DIR>/<experiment>/<run_name>. View them with `tensorboard --logdir DIR`.
TENSORBOARD_VARIABLE = "GN_TENSORBOARD"

# Validation images per device per step: any size gives the same numbers (no
# normalization uses statistics across validation images), larger is faster.
VALIDATION_BATCH_SIZE = 256


# Intra- and inter-op threads of every training on a CPU (see the module docstring).
# Measured alone on two cores, one thread trains 0.66-0.90x as many images/s as two
# (benchmarks/README.md); two one-thread runs side by side, the default, train more.
TRAINING_THREADS = 1


# ------------------------------------------------------------------- devices and data


def use_training_threads():
    """Limits TensorFlow in this process to `TRAINING_THREADS` threads on a CPU.

    Call it before TensorFlow runs its first operation: TensorFlow fixes its thread pools
    when it starts them. `run` calls it; `utils.notebook` calls it when imported. Does
    nothing with a GPU, where the history does not depend on the host's threads.

    Raises:
        RuntimeError: TensorFlow has already started with another number of threads.
    """
    if tf.config.list_physical_devices("GPU"):
        return
    threading = tf.config.threading
    current = (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )
    if current == (TRAINING_THREADS, TRAINING_THREADS):
        return
    try:
        threading.set_intra_op_parallelism_threads(TRAINING_THREADS)
        threading.set_inter_op_parallelism_threads(TRAINING_THREADS)
    except RuntimeError as error:
        raise RuntimeError(
            f"TensorFlow in this process already runs with intra/inter-op threads {current} (0: one per core), "
            f"but every training uses {TRAINING_THREADS} so that its history does not depend on the machine's "
            "cores. Call utils.training.use_training_threads() (or import utils.notebook) before any TensorFlow "
            "operation, or train from the command line (python -m utils.experiments)."
        ) from error


def cpu_model():
    """The CPU's model name (e.g. "AMD EPYC 7B13"), or the machine type where it cannot be read."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


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
        raise ValueError(
            f"Unknown distribution {distribution!r}; valid values are auto, none, mirrored."
        )
    if distribution not in _STRATEGIES:
        devices = tf.config.list_logical_devices("GPU") or _logical_cpus()
        _STRATEGIES[distribution] = tf.distribute.MirroredStrategy(
            [device.name for device in devices]
        )
    return _STRATEGIES[distribution]


def _describe_device(strategy, jit_compile):
    """E.g. "1 x CPU (AMD EPYC 7B13, x86_64, 2 cores, 1 thread), XLA": what a history depends on."""
    replicas = strategy.num_replicas_in_sync
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        kind = details.get("device_name", "GPU")
    else:
        threads = tf.config.threading.get_intra_op_parallelism_threads() or "all"
        kind = (
            f"CPU ({cpu_model()}, {platform.machine() or 'unknown'}, {os.cpu_count()} cores, "
            f"{threads} thread{'' if threads == 1 else 's'})"
        )
    return f"{replicas} x {kind}, {'XLA' if jit_compile else 'no XLA'}"


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
    key = (
        config.dataset,
        config.classes,
        config.images_per_class,
        config.val_images_per_class,
        str(data_dir),
    )
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
    """One epoch of shuffled, augmented (`config.augmentation`) training batches of
    `batch_size * replicas` images (tf.distribute gives each replica `batch_size` of them)."""
    return data_module.make_dataset(
        x,
        y,
        config.batch_size * replicas,
        training=True,
        seed=epoch_seed(config.seed, epoch),
        augmentation=config.augmentation,
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
    options = dict(
        num_classes=num_classes,
        input_shape=input_shape,
        weight_decay=config.weight_decay,
        weight_standardization=config.weight_standardization,
        **config.norm_options(),
    )
    if config.model == "small_cnn":
        noise = config.norm_noise_options() if config.has_norm_noise else None
        model = models.small_cnn(
            config.norm, second_kernel_size=config.second_kernel_size, norm_noise=noise, **options
        )
    else:
        model = {"resnet10": models.resnet10, "resnet50": models.resnet50}[config.model](
            config.norm, **options
        )
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=config.momentum
        ),
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
        self.rows.append(runs.as_written(row))
        self.on_epoch_recorded()


class _EpochMeasurements(keras.callbacks.Callback):
    """Appends an epoch's rows of a measurement (utils.measurements) to its file after
    the epoch, before its backup: a kill in between trains the epoch again and drops its
    rows."""

    def __init__(self, run_dir, measurement, rows):
        super().__init__()
        self.run_dir, self.measurement, self.rows = run_dir, measurement, rows

    def on_epoch_end(self, epoch, logs=None):
        self.rows.extend(self.measurement.rows_of_epoch(epoch + 1))
        runs.write_measurements(self.run_dir, self.measurement.file_name, self.rows)


# The batches a measurement may draw (e.g. the landscape probes') come from the training
# pipeline seeded as if by these later epochs, so the training batches are untouched.
_OTHER_STREAM_OFFSET = 1_000_000


def _measurement_callbacks(config, model, run_dir, start_epoch, factories, x_train, y_train):
    """(callbacks, prepare_epoch) of the measurements that `factories` (functions of
    config and model, utils.measurements) give for this run.
    `prepare_epoch(epoch, x, y, replicas)` is called before each epoch's fit."""
    measurements = [
        measurement for factory in factories if (measurement := factory(config, model)) is not None
    ]
    callbacks = []
    for measurement in measurements:
        measurement.prepare_data(x_train, y_train)
        rows = runs.read_measurements(run_dir, measurement.file_name, epochs=start_epoch).to_dict(
            "records"
        )
        callbacks += [measurement, _EpochMeasurements(run_dir, measurement, rows)]

    def prepare(epoch, x, y, replicas):
        steps = len(x) // (config.batch_size * replicas)

        def other_batches():
            stream = training_dataset(config, x, y, _OTHER_STREAM_OFFSET + epoch, replicas)
            return stream.repeat().as_numpy_iterator()

        for measurement in measurements:
            measurement.prepare_epoch(epoch, steps, other_batches)

    return callbacks, prepare


# Where a history that the backup does not account for is kept before it is replaced, until
# the run completes.
_REPLACED_HISTORY = "history.replaced.csv"


def _save_model(model, run_dir):
    """Saves the trained model as `runs.MODEL_FILE`, through a temporary name, so that the
    file, once there, is whole (a kill while writing leaves only the temporary)."""
    partial = run_dir / f"partial.{runs.MODEL_FILE}"
    model.save(partial)
    os.replace(partial, run_dir / runs.MODEL_FILE)


def _remove_leftovers(run_dir):
    """A finished run's folder holds its results (and model) alone: no backup, no replaced
    history, no half-written model."""
    shutil.rmtree(run_dir / runs.BACKUP_FOLDER, ignore_errors=True)
    (run_dir / f"partial.{runs.MODEL_FILE}").unlink(missing_ok=True)
    (run_dir / _REPLACED_HISTORY).unlink(missing_ok=True)


def _backup_file(backup_dir, epoch):
    return Path(backup_dir) / runs.backup_state_file(epoch)


def _training_state(model):
    """Every variable a resumed run needs, in a fixed order: the model's (weights, moving
    statistics and the states of its random generators, e.g. of the output-noise layers)
    and the optimizer's (its step count and momenta)."""
    return [*model.variables, *model.optimizer.variables]


class EpochBackup(keras.callbacks.Callback):
    """Backs up the training state after every epoch, atomically.

    Keras's BackupAndRestore rewrites one weights file in place and the epoch number
    beside it, so a process killed while the weights are written (about 35 ms an epoch
    for the small CNN) leaves a file that cannot be read, or weights of one epoch under
    the number of another. Here each epoch's state is written under a temporary name
    and renamed once complete, then the epoch number, which names the file to restore,
    is replaced atomically; only then is the previous epoch's file deleted. At every
    instant the backup on disk is a consistent (epoch, state) pair.

    The state is every variable of `_training_state`, in a NumPy archive written with
    Python's file I/O: unlike `save_weights` it holds the random generators' states (a
    resumed run draws the noise an uninterrupted one would), and a full disk raises an
    ordinary OSError (HDF5 left a half-written file that crashed the process at exit).
    """

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = Path(backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        partial = self.backup_dir / "partial.state.npz"
        arrays = {
            f"variable_{index}": keras.ops.convert_to_numpy(variable)
            for index, variable in enumerate(_training_state(self.model))
        }
        try:
            with open(partial, "wb") as file:
                np.savez(file, **arrays)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise OSError(
                error.errno,
                f"the backup of epoch {completed} could not be written to {partial} "
                f"({error.strerror}); the run resumes from the last backed-up epoch once "
                "there is room",
            ) from error
        os.replace(partial, _backup_file(self.backup_dir, completed))
        runs.write_json(self.backup_dir / runs.BACKUP_MARKER, {"epoch": completed})
        for older in self.backup_dir.glob(runs.backup_state_file("*")):
            if older != _backup_file(self.backup_dir, completed):
                older.unlink()


def backed_up_epoch(backup_dir):
    """The number of epochs in the backup (0 when there is none, or when its marker
    cannot be read: a damaged marker names no state to trust)."""
    path = Path(backup_dir) / runs.BACKUP_MARKER
    if not path.exists():
        return 0
    try:
        epoch = runs.parse_backup_marker(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        print(f"{path} cannot be read ({error}); the run starts again from epoch 1.")
        return 0
    return epoch if _backup_file(backup_dir, epoch).exists() else 0


def _restore(model, backup_dir, epoch):
    """Loads the training state backed up after `epoch` epochs.

    Raises:
        ValueError: when the backup does not fit the model.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    variables = _training_state(model)
    with np.load(_backup_file(backup_dir, epoch)) as stored:
        values = [stored[f"variable_{index}"] for index in range(len(stored.files))]
    shapes = [tuple(variable.shape) for variable in variables]
    if [value.shape for value in values] != shapes:
        raise ValueError(
            f"the backup holds {len(values)} arrays that do not fit the model's {len(variables)} "
            "variables"
        )
    for variable, value in zip(variables, values):
        variable.assign(value)


# ------------------------------------------------------------------------------ run


def run(
    config,
    results_dir="results",
    *,
    data_dir=None,
    verbose=1,
    callbacks=(),
    measurements=(),
    on_training_start=None,
):
    """Trains one config, or returns its results when they are already on disk.

    Args:
        config: the `RunConfig`.
        results_dir: results root; the run writes `<results_dir>/<experiment>/<run_name>/`.
        data_dir: where the data is (see `load_data`).
        verbose: Keras fit verbosity: 0 silent, 1 progress bar (one line per epoch when
            the output is not a terminal), 2 one line per epoch.
        callbacks: extra Keras callbacks, called after the run's own ones.
        measurements: functions of (config, model) that return a
            `utils.measurements.Measurement` to record in the run folder, or None; the
            grid runner passes those the run's experiment declares
            (`Experiment.measurements`), e.g. `utils.landscape.probe_measurement`.
        on_training_start: called with no arguments when this call trains, once it
            holds the run's lock; not called when the run is read back or reused.

    Returns:
        A `utils.runs.RunRecord` of the run's folder.

    Raises:
        ValueError: when the run's folder holds a run of a different config.
    """
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}.")
    results_dir = Path(results_dir)
    run_dir = runs.run_directory(config, results_dir)
    runs.check_stored_config(run_dir, config)

    action, source = planning.planned_action(config, results_dir)
    if action == "damaged":
        raise ValueError(source)
    if action == "finished":
        # Clears what a process killed after the run finished may have left behind (its
        # backup, a replaced history, the lock file, which the lock's release deletes),
        # unless another process holds the folder right now. Reading alone takes no lock
        # otherwise: finished runs may be another user's, or on a read-only mount.
        leftovers = [
            run_dir / name for name in (runs.BACKUP_FOLDER, _REPLACED_HISTORY, runs.LOCK_FILE)
        ]
        if any(path.exists() or path.is_symlink() for path in leftovers):
            with (
                contextlib.suppress(runs.RunLockedError, OSError, ValueError),
                runs.run_lock(run_dir),
            ):
                _remove_leftovers(run_dir)
        return runs.read_run(run_dir)
    if action == "reuse":
        with runs.run_lock(run_dir):
            runs.copy_finished_run(config, source, results_dir)
        return runs.read_run(run_dir)

    with runs.run_lock(run_dir):
        # Planned again under the lock: another process may have finished it meanwhile.
        action, source = planning.planned_action(config, results_dir)
        if action == "damaged":
            raise ValueError(source)
        if action != "finished":
            use_training_threads()
            if verbose == 1 and not sys.stdout.isatty():
                # Keras's live progress bar writes terminal codes: one line per epoch in
                # a log file, a pipe or a saved notebook.
                verbose = 2
            if on_training_start is not None:
                on_training_start()
            # Keras compiles without XLA whenever TensorFlow's deterministic kernels are
            # on, so with jit_compile=True determinism rests on XLA, whose CPU kernels are
            # deterministic.
            with _op_determinism(config.deterministic and not config.jit_compile):
                _train(
                    config,
                    run_dir,
                    data_dir=data_dir,
                    verbose=verbose,
                    callbacks=callbacks,
                    measurements=measurements,
                )
    return runs.read_run(run_dir)


class _RunFiles:
    """The files of a run being trained: history rows and summary, rewritten atomically."""

    def __init__(self, config, run_dir, rows, *, images_per_step, device, earlier_intervals=()):
        self.config = config
        self.run_dir = run_dir
        self.rows = rows
        self.images_per_step = images_per_step
        self.device = device
        started = _now()
        self.intervals = [*earlier_intervals, [started, started]]

    def write(self, status, diverged_epoch=None):
        self.intervals[-1][1] = _now()
        runs.write_history(self.run_dir, self.rows)
        summary = runs.make_summary(
            self.config,
            self.rows,
            status,
            diverged_epoch=diverged_epoch,
            images_per_step=self.images_per_step,
            device=self.device,
            versions=_versions(),
            trained_during=self.intervals,
        )
        runs.write_summary(self.run_dir, summary)


def _now():
    """The time now, UTC, ISO 8601 to the second (summary.json's "trained_during")."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _earlier_intervals(run_dir, start_epoch):
    """The training stretches of a resumed run's earlier processes (none when it starts
    again from epoch 1, or when its summary cannot be read or predates the record)."""
    if not start_epoch:
        return []
    try:
        intervals = runs.read_summary(run_dir).get("trained_during") or []
    except (OSError, ValueError):
        return []
    return [
        list(interval)
        for interval in intervals
        if isinstance(interval, list)
        and len(interval) == 2
        and all(isinstance(t, str) for t in interval)
    ]


def _resume_point(run_dir):
    """(first epoch to train, history rows of the epochs before it) of a run folder.

    History rows are written before the backup of their epoch, so there may be one more
    row than backed-up epochs: it is dropped and that epoch trained again.
    """
    backup_dir = run_dir / runs.BACKUP_FOLDER
    start_epoch = backed_up_epoch(backup_dir)
    written = runs.read_history_rows(run_dir)
    if len(written) > start_epoch + 1:
        # Rows the backup cannot account for (not just the one written before its epoch's
        # backup): they are replaced, so keep them and say where.
        kept = run_dir / _REPLACED_HISTORY
        runs.write_atomically(kept, (run_dir / "history.csv").read_text())
        print(
            f"{run_dir}: history.csv has {len(written)} epochs but the backup only {start_epoch}; training "
            f"resumes after epoch {start_epoch} and the old history is kept in {kept.name} until the run is "
            "finished."
        )
    rows = written[:start_epoch]
    if len(rows) < start_epoch:
        # A backup without its history rows cannot be reported: start again.
        shutil.rmtree(backup_dir, ignore_errors=True)
        return 0, []
    return start_epoch, rows


def _train(config, run_dir, *, data_dir, verbose, callbacks, measurements):
    """Trains (or resumes) a run into run_dir."""
    # Free the previous run's models: a grid trains many in one process. This also resets
    # Keras's global dtype policy, so the run's policy is set after it.
    keras.backend.clear_session()
    with _dtype_policy(config.precision):
        _train_with_policy(
            config,
            run_dir,
            data_dir=data_dir,
            verbose=verbose,
            callbacks=callbacks,
            measurements=measurements,
        )


def resumed_model(config, strategy, run_dir, start_epoch):
    """The model of a run, with the backed-up state of its first `start_epoch` epochs.

    Returns:
        (model, start_epoch): start_epoch is 0 when the backup could not be read, in
        which case the run starts again from its initial weights.
    """
    backup_dir = run_dir / runs.BACKUP_FOLDER
    with strategy.scope():
        model = build_model(config)
        if not start_epoch:
            return model, 0
        try:
            _restore(model, backup_dir, start_epoch)
            return model, start_epoch
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            print(
                f"{config.experiment}/{config.run_name}: the backup of epoch {start_epoch} cannot be read "
                f"({type(error).__name__}: {error}); training the run again from epoch 1."
            )
            shutil.rmtree(backup_dir, ignore_errors=True)
            # The initial weights depend on the seed alone, as in an uninterrupted run.
            keras.utils.set_random_seed(config.seed)
            return build_model(config), 0


def tensorboard_callbacks(config, environ=None):
    """Keras's TensorBoard callback writing this run's curves under the folder that
    `TENSORBOARD_VARIABLE` names (none when it is unset): one point per epoch, no graph,
    no profile, so that it costs nothing measurable."""
    folder = (os.environ if environ is None else environ).get(TENSORBOARD_VARIABLE, "").strip()
    if not folder:
        return []
    log_dir = Path(folder).expanduser() / config.experiment / config.run_name
    return [
        keras.callbacks.TensorBoard(
            log_dir=str(log_dir),
            histogram_freq=0,
            write_graph=False,
            update_freq="epoch",
            profile_batch=0,
        )
    ]


def _train_with_policy(config, run_dir, *, data_dir, verbose, callbacks, measurements):
    strategy = make_strategy(config.distribution)
    replicas = strategy.num_replicas_in_sync
    backup_dir = run_dir / runs.BACKUP_FOLDER

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
    model, start_epoch = resumed_model(config, strategy, run_dir, start_epoch)
    rows = rows[:start_epoch]
    device = _describe_device(strategy, config.jit_compile)
    files = _RunFiles(
        config,
        run_dir,
        rows,
        images_per_step=images_per_step,
        device=device,
        earlier_intervals=_earlier_intervals(run_dir, start_epoch),
    )
    runs.write_config(run_dir, config)
    files.write("running")

    validation = validation_dataset(x_val, y_val, replicas)
    guard = _DivergenceGuard()
    measured, prepare_epoch = _measurement_callbacks(
        config, model, run_dir, start_epoch, measurements, x_train, y_train
    )
    run_callbacks = [
        # First: the landscape probes read the learning rate it sets.
        keras.callbacks.LearningRateScheduler(
            lambda epoch, _: learning_rate_for_epoch(config, epoch)
        ),
        *([_EpochProgressBar(config.epochs)] if verbose else []),
        guard,
        _HistoryRecorder(rows, on_epoch_recorded=lambda: files.write("running")),
        *measured,
        # After the history row and measurements of its epoch: a kill in between trains
        # the epoch again.
        EpochBackup(backup_dir),
        *tensorboard_callbacks(config),
        *callbacks,
    ]

    # One fit call per epoch, each with that epoch's dataset: its shuffling and
    # augmentation then depend on (seed, epoch) alone, not on where training resumed.
    for epoch in range(start_epoch, config.epochs):
        prepare_epoch(epoch, x_train, y_train, replicas)
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
            _remove_leftovers(run_dir)
            if verbose:
                print(
                    f"{config.experiment}/{config.run_name}: diverged in epoch {guard.diverged_epoch}."
                )
            return
    _save_model(model, run_dir)
    files.write("complete")
    _remove_leftovers(run_dir)
