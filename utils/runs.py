"""The run folder: where a training run is stored, what each file holds, how it is read.

This module is the one owner of the format; the engine (utils.training) writes through
it and every reader (utils.results, utils.report, utils.grid, the notebooks)
reads through it. It imports no TensorFlow, so reading results stays quick.

    <results_dir>/<experiment>/<run_name>/
        config.json    the run's `RunConfig` (`to_dict`), written before training starts
        history.csv    one row per completed epoch, columns `HISTORY_COLUMNS`
        summary.json   `SUMMARY_KEYS`: status, the paper's statistics, steps, wall time,
                       library versions, device
        backup/        the engine's weights for resuming; removed once the run finishes,
                       never committed

summary.json's `status` is "running" until training ends, then "complete" or "diverged"
(`FINAL_STATUSES`); a finished run is read back, never trained again. The status of a
run read back (`RunRecord.status`) is "complete", "partial" or "diverged" (`STATUSES`),
shown in tables as `status_text` writes it. Every file is written atomically (a
temporary file in the same folder, then a rename), so a reader or a killed writer never
sees half a file. Loss columns are the cross-entropy alone (without the weight-decay
term); error columns are top-1 error in percent.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import json
import os
import shutil
import stat
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from utils.config import RunConfig

__all__ = [
    "HISTORY_COLUMNS",
    "SUMMARY_KEYS",
    "FINAL_STATUSES",
    "STATUSES",
    "MEDIAN_EPOCHS",
    "RunRecord",
    "run_directory",
    "write_atomically",
    "write_json",
    "write_config",
    "write_history",
    "as_written",
    "write_summary",
    "make_summary",
    "read_history_rows",
    "MEASUREMENT_FILES",
    "write_measurements",
    "read_measurements",
    "read_config",
    "read_summary",
    "read_run",
    "check_run",
    "run_folders",
    "median_of_last",
    "status_text",
    "config_differences",
    "check_stored_config",
    "copy_finished_run",
    "RunLockedError",
    "run_lock",
    "LOCK_FILE",
    "MODEL_FILE",
]

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "lr",
    "seconds",
    "steps",
)
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
# Keys a summary has when the engine that wrote it knew them; older summaries lack them.
LATER_SUMMARY_KEYS = ("trained_during",)
# A run whose summary.json has one of these statuses is finished: the engine returns it
# from disk.
FINAL_STATUSES = ("complete", "diverged")
# The status of a run read back (`RunRecord.status`, the "status" column of
# utils.results.load_runs): "partial" is still running, or fewer epochs than configured.
STATUSES = ("complete", "partial", "diverged")
# The paper reports the median of the last 5 epochs' validation error.
MEDIAN_EPOCHS = 5
_INTEGER_COLUMNS = ("epoch", "steps")


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
# Held by the process that trains the run (see `run_lock`); never committed.
LOCK_FILE = ".lock"
# The trained model of a finished run (weights and optimizer state, Keras's format): beside
# its history, outside git (.gitignore). utils.evaluate loads it.
MODEL_FILE = "model.keras"
# Files being written end with this until they are complete and renamed.
TEMPORARY_SUFFIX = ".tmp"
# A run that has not finished keeps its training state in this subfolder (utils.training):
# one `epoch-<n>.state.npz` and, written after it, the marker that names n. A finished run
# has none, and none is committed.
BACKUP_FOLDER = "backup"
BACKUP_MARKER = "training_metadata.json"


def backup_state_file(epoch):
    """The name, inside BACKUP_FOLDER, of the training state after `epoch` epochs."""
    return f"epoch-{epoch}.state.npz"


def parse_backup_marker(text):
    """The epoch a backup marker's text names.

    Raises:
        ValueError: when the text is not a marker naming a completed epoch (an int >= 1).
    """
    try:
        epoch = json.loads(text)["epoch"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a backup marker ({type(error).__name__}: {error})") from error
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"it names epoch {epoch!r}, not a completed epoch")
    return epoch


def run_directory(config, results_dir="results"):
    """The folder of a run: `<results_dir>/<experiment>/<run_name>`."""
    return Path(results_dir) / config.experiment / config.run_name


# ---------------------------------------------------------------------------- writing


def write_atomically(path, text):
    """Writes `text` (a str, or bytes written as they are) to `path` through a temporary
    file in the same folder and os.replace, so a reader (or a killed writer) never sees
    a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX
    )
    mode = dict(mode="wb") if isinstance(text, bytes) else dict(mode="w", newline="")
    try:
        with os.fdopen(handle, **mode) as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private (0600); results are ordinary files.
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_json(path, data):
    """Writes `data` as indented JSON, atomically; NaN is refused (it is not JSON)."""
    write_atomically(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_config(run_dir, config):
    """Writes config.json of a run folder."""
    write_json(Path(run_dir) / "config.json", config.to_dict())


def _format_value(column, value):
    if column in _INTEGER_COLUMNS:
        return str(int(value))
    # 8 significant digits: exact for float32 metrics, and "0.001" for the lr; a float
    # always shows a decimal point, so readers see a float column ("75.0", not "75").
    text = f"{float(value):.8g}"
    return text if any(mark in text for mark in ".eni") else text + ".0"


def _parse_value(column, text):
    return int(text) if column in _INTEGER_COLUMNS else float(text)


def as_written(row):
    """A history row with each value as history.csv stores it (8 significant digits).

    The engine keeps its rows in this form, so the summary of a resumed run (whose first
    rows are read back from the file) equals an uninterrupted run's.
    """
    return {
        column: _parse_value(column, _format_value(column, row[column]))
        for column in HISTORY_COLUMNS
    }


def write_history(run_dir, rows):
    """Writes history.csv of a run folder: a header and one line per row (dict)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in rows:
        writer.writerow([_format_value(column, row[column]) for column in HISTORY_COLUMNS])
    write_atomically(Path(run_dir) / "history.csv", buffer.getvalue())


# Per-epoch measurements beside history.csv, written by the runs that take them: the
# loss-landscape probes (utils.landscape) and the mixture layers' weights.
MEASUREMENT_FILES = ("landscape.csv", "mixing.csv", "fit.csv", "responses.csv")


def write_measurements(run_dir, name, rows):
    """Writes a measurement file (one of MEASUREMENT_FILES) of a run folder, atomically.

    Args:
        run_dir: the run folder.
        name: the file name, e.g. "landscape.csv".
        rows: dicts with the same keys, an "epoch" key among them; numbers are written
            with 8 significant digits, text as it is.
    """
    if name not in MEASUREMENT_FILES:
        raise ValueError(
            f"{name!r} is not a measurement file; valid names are {MEASUREMENT_FILES}."
        )
    columns = list(rows[0]) if rows else ["epoch"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                value if isinstance(value, str) else f"{value:.8g}"
                for value in (row[c] for c in columns)
            ]
        )
    write_atomically(Path(run_dir) / name, buffer.getvalue())


def read_measurements(run_dir, name, *, epochs=None):
    """A measurement file of a run folder as a DataFrame (empty when there is none).

    Args:
        run_dir: the run folder.
        name: the file name, e.g. "landscape.csv".
        epochs: keep only the rows of epochs 1..epochs (a resumed run drops the rows of
            the epoch it trains again); None keeps every row.
    """
    path = Path(run_dir) / name
    if not path.exists():
        return pd.DataFrame()
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise ValueError(
            f"{path} is damaged ({damage_reason(error)}); {_DELETE_TO_RETRAIN}."
        ) from error
    if epochs is not None:
        frame = frame[frame["epoch"] <= epochs].reset_index(drop=True)
    return frame


def median_of_last(values, count=MEDIAN_EPOCHS):
    """The median of the last `count` values (of all when fewer); None when there are none."""
    tail = list(values)[-count:]
    return float(statistics.median(tail)) if tail else None


def make_summary(
    config,
    rows,
    status,
    *,
    diverged_epoch=None,
    images_per_step,
    device,
    versions,
    trained_during=(),
):
    """The summary.json dict of a run whose completed epochs are `rows`.

    Args:
        config: the run's `RunConfig`.
        rows: the history rows (dicts with `HISTORY_COLUMNS`).
        status: "running", "complete" or "diverged".
        diverged_epoch: the epoch whose loss became non-finite (1-based), or None.
        images_per_step: images per training step over all devices.
        device: the device description, e.g.
            "1 x CPU (AMD EPYC 7B13, x86_64, 2 cores, 1 thread), XLA".
        versions: library versions, a dict of name to version.
        trained_during: the [start, end] times (ISO 8601, UTC) of each stretch in which a
            process trained the run (several when it was resumed), so that a grid's wall
            time is measured from them rather than estimated from the epochs' seconds.
    """
    steps = [row["steps"] for row in rows]
    return {
        "run_name": config.run_name,
        "experiment": config.experiment,
        "status": status,
        "epochs_completed": len(rows),
        "epochs": config.epochs,
        "diverged_epoch": diverged_epoch,
        "val_error_median5": median_of_last(row["val_error"] for row in rows),
        "train_error_median5": median_of_last(row["train_error"] for row in rows),
        "val_loss_median5": median_of_last(row["val_loss"] for row in rows),
        "steps_per_epoch": steps[-1] if steps else None,
        "images_per_step": images_per_step,
        "wall_seconds": float(sum(row["seconds"] for row in rows)),
        "versions": versions,
        "device": device,
        "dataset": config.dataset,
        "profile": config.profile,
        "reused_from": None,
        "trained_during": [list(interval) for interval in trained_during],
    }


def write_summary(run_dir, summary):
    """Writes summary.json of a run folder."""
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    if missing:
        raise ValueError(f"A summary needs the keys {missing}; make it with make_summary.")
    write_json(Path(run_dir) / "summary.json", summary)


# ---------------------------------------------------------------------------- reading


_DELETE_TO_RETRAIN = "delete its run folder to train the run again"
# The longest quote of a damaged file's contents an error message gives, and the longest
# message about a damaged run (its folder's path, the file and the quote).
_QUOTE_LIMIT = 120
MESSAGE_LIMIT = 600


def damage_reason(error, limit=_QUOTE_LIMIT):
    """An error's text, bounded and printable: a damaged file (e.g. a run of NUL bytes)
    must not flood a log or a table with its contents."""
    text = "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in str(error)
    )
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _read_json(path, kind=dict):
    """The JSON object of a file of a run folder.

    Raises:
        ValueError: naming the file, when it is not valid UTF-8 JSON of type `kind`, or
            cannot be read as a file (a folder in its place, nesting too deep to parse).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not valid JSON ({damage_reason(error)}); {_DELETE_TO_RETRAIN}."
        ) from error
    except RecursionError as error:
        raise ValueError(
            f"{path} is nested too deeply to be a file the engine wrote; {_DELETE_TO_RETRAIN}."
        ) from error
    except OSError as error:
        raise ValueError(
            f"{path} cannot be read ({error.strerror or damage_reason(error)}); "
            f"{_DELETE_TO_RETRAIN}."
        ) from error
    if not isinstance(data, kind):
        raise ValueError(
            f"{path} holds a JSON {type(data).__name__}, not an object; {_DELETE_TO_RETRAIN}."
        )
    return data


def read_history_rows(run_dir):
    """The rows of a run's history.csv as dicts of numbers ([] when there is no file)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    try:
        with open(path, newline="", errors="strict") as file:
            return _parse_history(path, csv.DictReader(file))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not a text file ({damage_reason(error)}); {_DELETE_TO_RETRAIN}."
        ) from error
    except csv.Error as error:
        # E.g. a field over the csv module's limit: a run of zero bytes where rows were.
        raise ValueError(
            f"{path} is not a CSV file the engine wrote ({damage_reason(error)}); "
            f"{_DELETE_TO_RETRAIN}."
        ) from error
    except OSError as error:
        raise ValueError(
            f"{path} cannot be read ({error.strerror or damage_reason(error)}); "
            f"{_DELETE_TO_RETRAIN}."
        ) from error


def _parse_history(path, reader):
    if tuple(reader.fieldnames or ()) != HISTORY_COLUMNS:
        raise ValueError(
            f"{path} has the columns {damage_reason(reader.fieldnames)}, not the engine's ({', '.join(HISTORY_COLUMNS)}); "
            f"{_DELETE_TO_RETRAIN}."
        )
    try:
        rows = [
            {column: _parse_value(column, row[column]) for column in HISTORY_COLUMNS}
            for row in reader
        ]
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{path} has a damaged row ({damage_reason(error)}); {_DELETE_TO_RETRAIN}."
        ) from error
    epochs = [row["epoch"] for row in rows]
    if epochs != list(range(1, len(rows) + 1)):
        raise ValueError(
            f"{path} has the epochs {epochs}, not 1 to {len(rows)} in order; {_DELETE_TO_RETRAIN}."
        )
    return rows


def read_config(run_dir):
    """The `RunConfig` of a run folder's config.json (None when there is none).

    Raises:
        ValueError: naming the file, when it is not valid JSON or not a valid config.
    """
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return None
    data = _read_json(path)
    if "run_name" not in data:
        # {} would read as the default config.
        raise ValueError(
            f"{path} has no run_name: it is not a config the engine wrote; {_DELETE_TO_RETRAIN}."
        )
    try:
        return RunConfig.from_dict(data)
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is not a valid run config ({error}).") from error


def read_summary(run_dir):
    """The summary.json dict of a run folder ({} when there is none yet).

    Raises:
        ValueError: naming the file, when it is not a JSON object, its status is not one
            the engine writes, or a finished run's summary lacks some of `SUMMARY_KEYS`.
    """
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return {}
    summary = _read_json(path)
    status = summary.get("status")
    if status not in ("running", *FINAL_STATUSES):
        raise ValueError(
            f"{path} has status {status!r}, not one of {('running', *FINAL_STATUSES)}; "
            f"{_DELETE_TO_RETRAIN}."
        )
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    if status in FINAL_STATUSES and missing:
        raise ValueError(f"{path} lacks {missing}; {_DELETE_TO_RETRAIN}.")
    return summary


def check_run(record):
    """Checks that a run folder's files agree with each other and with the folder.

    Raises:
        ValueError: naming the folder or file and what disagrees: a folder whose name is
            not its config's run name (e.g. a copy "<run> (copy)", which would count as
            another seed) or whose parent is not its experiment; a history with more
            epochs than the config; a finished summary whose epoch count is not the
            history's; a history without the summary the engine writes first.
    """
    config, summary, path = record.config, record.summary, Path(record.path)
    if (path.parent.name, path.name) != (config.experiment, config.run_name):
        raise ValueError(
            f"{path} holds the run {config.experiment}/{config.run_name} (its config.json): a run belongs in "
            f"<results>/{config.experiment}/{config.run_name}; remove or rename the folder {path.name!r}."
        )
    completed = len(record.history)
    if completed > config.epochs:
        raise ValueError(
            f"{path / 'history.csv'} has {completed} epochs, more than the config's {config.epochs}; "
            f"{_DELETE_TO_RETRAIN}."
        )
    if not summary and completed:
        raise ValueError(
            f"{path} has {completed} epochs of history but no summary.json, which the engine writes "
            f"before the first epoch; {_DELETE_TO_RETRAIN}."
        )
    status = summary.get("status")
    if status in FINAL_STATUSES and summary["epochs_completed"] != completed:
        raise ValueError(
            f"{path / 'summary.json'} says {summary['epochs_completed']} epochs completed, "
            f"{path / 'history.csv'} has {completed}; {_DELETE_TO_RETRAIN}."
        )
    if status == "complete" and completed != config.epochs:
        raise ValueError(
            f"{path} is complete with {completed} of the config's {config.epochs} epochs; "
            f"{_DELETE_TO_RETRAIN}."
        )


def status_text(status, epochs_completed, epochs, diverged_epoch):
    """A run's status as tables show it: "complete", "partial (3/10 epochs)", "diverged
    at epoch 4" (or "diverged" when the epoch is not known).

    Args:
        status: the run's status, one of `STATUSES` (`RunRecord.status`).
        epochs_completed: how many epochs the run completed.
        epochs: how many epochs its config asks for.
        diverged_epoch: the epoch whose loss became non-finite, or None (NaN and pd.NA,
            as a frame holds it, count as None).
    """
    if status == "diverged":
        known = diverged_epoch is not None and not pd.isna(diverged_epoch)
        return "diverged" + (f" at epoch {diverged_epoch}" if known else "")
    if status == "partial":
        return f"partial ({epochs_completed}/{epochs} epochs)"
    if status == "complete":
        return "complete"
    raise ValueError(f"status={status!r} is not one of {STATUSES}.")


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run folder, read back.

    Args:
        config: the run's `RunConfig`.
        summary: the summary.json dict ({} while the run has not written one); its
            "status" is the one written to the file ("running", "complete" or "diverged").
        history: history.csv as a pandas DataFrame, one row per completed epoch.
        path: the run's folder.
    """

    config: RunConfig
    summary: dict
    history: pd.DataFrame
    path: Path

    @property
    def status(self):
        """ "complete", "partial" (running, or fewer epochs than configured) or "diverged"."""
        written = self.summary.get("status", "running")
        if written == "diverged":
            return "diverged"
        if written != "complete" or len(self.history) < self.config.epochs:
            return "partial"
        return "complete"

    @property
    def diverged_epoch(self):
        """The epoch whose loss became non-finite, for a diverged run (else None)."""
        if self.summary.get("status") != "diverged":
            return None
        # The epoch that blew up is not in the history.
        return self.summary.get("diverged_epoch") or len(self.history) + 1

    @property
    def status_text(self):
        """The status as tables show it (`status_text`), e.g. "partial (3/10 epochs)"."""
        return status_text(self.status, len(self.history), self.config.epochs, self.diverged_epoch)


def read_run(run_dir):
    """Reads a run folder back.

    Args:
        run_dir: a run folder (`<results>/<experiment>/<run_name>`).

    Returns:
        A `RunRecord`.

    Raises:
        FileNotFoundError: when the folder has no config.json.
        ValueError: naming the file, when one of the files is damaged or the files
            disagree (`check_run`).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config is None:
        raise FileNotFoundError(f"{run_dir} holds no run: it has no config.json.")
    history = pd.DataFrame(read_history_rows(run_dir), columns=list(HISTORY_COLUMNS))
    record = RunRecord(config=config, summary=read_summary(run_dir), history=history, path=run_dir)
    check_run(record)
    return record


def run_folders(results_dir):
    """The run folders under a results folder, in (experiment, run name) order.

    Raises:
        FileNotFoundError: naming the folder, when it does not exist.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"results folder {str(results_dir)!r} does not exist; run `python -m utils.experiments` "
            "first or pass the folder it wrote"
        )
    return [
        run_dir
        for experiment_dir in sorted(path for path in results_dir.iterdir() if path.is_dir())
        for run_dir in sorted(path for path in experiment_dir.iterdir() if path.is_dir())
        if (run_dir / "config.json").exists()
    ]


# ------------------------------------------------------------------------ the lock


class RunLockedError(RuntimeError):
    """Another process is training this run (it holds the run folder's lock)."""

    def __init__(self, run_dir, pid):
        self.run_dir = Path(run_dir)
        self.pid = pid
        owner = f"process {pid}" if pid else "another process"
        super().__init__(f"{run_dir} is being trained by {owner}; skipped.")


@contextlib.contextmanager
def run_lock(run_dir):
    """Holds the run folder's lock (an OS lock on `<run_dir>/.lock`) for the block.

    The operating system releases the lock when its process ends, however it ends, so a
    killed run never blocks the next attempt. While the lock is held no other process
    writes to the folder, so leftover temporary files of a killed writer are removed.
    The lock file is deleted when the block ends.

    Raises:
        RunLockedError: when another process holds the lock (its process id is read
            from the lock file).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    while True:
        lock = _open_lock_file(path)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            text = lock.read().strip()
            lock.close()
            raise RunLockedError(run_dir, int(text) if text.isdigit() else None) from None
        # The holder before us may have deleted the file between our open and our lock:
        # then we hold a lock nobody else can see, and must take the new file's instead.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
                break
        lock.close()
    try:
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        _remove_temporaries(run_dir)
        yield
    finally:
        path.unlink(missing_ok=True)
        lock.close()  # closing releases the lock


def _open_lock_file(path):
    """The lock file, opened for reading and writing without following a link: the
    lock's process id is written into it, which through a link would overwrite the
    link's target.

    Raises:
        ValueError: naming the file, when it is a link or not a regular file.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as error:
        if os.path.islink(path):
            raise ValueError(
                f"{path} is a symbolic link, not the run's lock file; remove it."
            ) from error
        if os.path.isdir(path):
            raise ValueError(f"{path} is a folder, not the run's lock file; remove it.") from error
        raise
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ValueError(
            f"{path} is not a regular file, so it cannot be the run's lock file; remove it."
        )
    return os.fdopen(descriptor, "a+")


def _remove_temporaries(run_dir):
    for leftover in run_dir.rglob(f"*{TEMPORARY_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


# ----------------------------------------------------------- what the engine will do


def config_differences(stored, config):
    """The fields in which two configs differ, as "field: stored X, requested Y" lines."""
    stored_fields, requested = stored.to_dict(), config.to_dict()
    return [
        f"{key}: stored {stored_fields.get(key)!r}, requested {value!r}"
        for key, value in requested.items()
        if stored_fields.get(key) != value
    ]


def check_stored_config(run_dir, config):
    """Raises ValueError when run_dir holds a run of a different config, listing the
    fields that differ."""
    try:
        stored = read_config(run_dir)
    except ValueError as error:
        stored, reason = None, str(error)
    else:
        if stored is None or stored == config:
            return
        reason = "its config differs (" + "; ".join(config_differences(stored, config)) + ")"
    raise ValueError(
        f"{run_dir} already holds a run and {reason}. Use another results folder "
        f"(results_dir=...) or delete {run_dir} to train this config."
    )


def copy_finished_run(config, source, results_dir):
    """Copies a finished run's results into the folder of `config`, whose training
    settings are the same (summary "reused_from": the source, relative to results_dir)."""
    results_dir = Path(results_dir)
    run_dir = run_directory(config, results_dir)
    summary = read_summary(source)
    write_config(run_dir, config)
    for name in ("history.csv", *MEASUREMENT_FILES):
        if (Path(source) / name).exists():
            write_atomically(run_dir / name, (Path(source) / name).read_text())
    summary.update(
        run_name=config.run_name,
        experiment=config.experiment,
        reused_from=Path(source).relative_to(results_dir).as_posix(),
    )
    shutil.rmtree(run_dir / BACKUP_FOLDER, ignore_errors=True)
    write_summary(run_dir, summary)
