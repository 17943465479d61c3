"""Whether this machine reproduces a committed run: its first epochs retrained and compared.

    python -m utils.verify results/<experiment>/<run> --epochs 2
    python -m utils.verify results/<experiment>/<run> --data ~/tiny-imagenet-200.zip

The run's config.json is retrained unchanged (the same total epochs, so the same
learning-rate schedule) into a temporary results folder and stopped once it has the
epochs to compare. Those rows of its history are compared with the committed ones,
column by column (train_loss, train_error, val_loss, val_error, lr; not the wall time),
as history.csv stores them. The exit status is 0 when every value is identical, 1 when
one differs, 2 for a folder or option that cannot be verified. What is expected to
reproduce where is in utils/README.md ("Reproducibility").
"""

import argparse
import dataclasses
import math
import numbers
import sys
import tempfile
from pathlib import Path

from utils import planning
from utils import runs
from utils.quiet import import_tensorflow

import_tensorflow()

import keras  # noqa: E402 - after TensorFlow's quiet start

from utils import training  # noqa: E402

__all__ = ["COMPARED_COLUMNS", "Verification", "verify_run", "report_lines", "main"]

# Every history column that depends on the computation alone: the wall time does not.
COMPARED_COLUMNS = ("train_loss", "train_error", "val_loss", "val_error", "lr")


@dataclasses.dataclass(frozen=True)
class Verification:
    """A committed run's first epochs beside the same epochs retrained on this machine.

    Args:
        committed_device: the committed run's summary.json "device", or None for a run
            trained before the engine recorded it.
        retrained_device: this machine's, as the engine wrote it for the retraining.
        epochs: how many epochs were compared (the first ones).
        identical: whether every compared value is identical.
        largest_differences: per column of `COMPARED_COLUMNS`, the largest
            |committed - retrained| over the compared epochs (inf for an epoch the
            retraining did not complete, because it diverged).
        committed_rows: the committed values, one dict per epoch, keyed by column.
        retrained_rows: the retrained values, likewise (NaN for an epoch not completed).
    """

    committed_device: str | None
    retrained_device: str | None
    epochs: int
    identical: bool
    largest_differences: dict
    committed_rows: tuple
    retrained_rows: tuple


class _EnoughEpochs(Exception):
    """Ends a retraining once it has the epochs to compare."""


class _StopAfterEpochs(keras.callbacks.Callback):
    """Raises `_EnoughEpochs` at the end of epoch `epochs`.

    The engine calls `fit` once per epoch and every call resets `model.stop_training`,
    so that flag would only cut the next epoch short and training would go on. The run's
    own callbacks come first (utils.training.run), so the epoch's history row is written
    before this one ends the run.
    """

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epochs:
            raise _EnoughEpochs()


def _committed_run(run_dir, epochs):
    """The committed run's `RunRecord`, checked to hold `epochs` completed epochs."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(
            f"{run_dir} is not a run folder: it has no config.json. Pass the folder of one run, "
            "results/<experiment>/<run>."
        )
    record = runs.read_run(run_dir)
    completed = len(record.history)
    if completed < epochs:
        fix = (
            f"pass epochs={completed} (--epochs {completed}) or fewer"
            if completed
            else "verify a run that has completed an epoch"
        )
        raise ValueError(
            f"{run_dir} has {completed} completed epoch(s), fewer than the epochs={epochs} to compare; "
            f"{fix}."
        )
    return record


def _check_work_dir(config, work_dir):
    """Refuses a work_dir in which the engine would read back, resume or copy the run
    instead of training it from its first epoch."""
    folder = runs.run_directory(config, work_dir)
    action, source = planning.planned_action(config, work_dir)
    if folder.exists() or action != "train":
        held = folder if folder.exists() else source
        raise ValueError(
            f"work_dir={str(work_dir)!r} already holds {held}, which would be read back, resumed or "
            "copied instead of retrained; pass an empty work_dir, or None for a temporary one."
        )


def _retrain(config, epochs, results_dir, data_dir, verbose):
    """(history rows, device) of `config` retrained into results_dir for `epochs` epochs."""
    try:
        training.run(
            config,
            results_dir,
            data_dir=data_dir,
            verbose=verbose,
            callbacks=[_StopAfterEpochs(epochs)],
        )
    except _EnoughEpochs:
        pass
    folder = runs.run_directory(config, results_dir)
    # A retraining that diverged stopped early, with fewer rows.
    return runs.read_history_rows(folder)[:epochs], runs.read_summary(folder).get("device")


def _difference(committed, retrained):
    return math.inf if math.isnan(retrained) else abs(committed - retrained)


def verify_run(run_dir, epochs=2, *, data_dir=None, work_dir=None, verbose=0):
    """Retrains a committed run's first epochs on this machine and compares their history.

    The config is the run's own, epochs included, so every epoch sees the committed
    learning rate. The run's measurements (landscape probes, mixing weights) are not
    taken: they change no weight (utils/README.md), and only the history is compared.

    Args:
        run_dir: the committed run's folder, `<results>/<experiment>/<run>`.
        epochs: how many of its first epochs to retrain and compare.
        data_dir: where the data is, as for `utils.training.run` (None: `TINY_IMAGENET_DIR`
            or the Keras cache for Tiny ImageNet, `data/` for the synthetic set).
        work_dir: the results folder to retrain into, kept afterwards as a partial run;
            None retrains in a temporary folder, deleted afterwards.
        verbose: Keras fit verbosity while retraining.

    Returns:
        A `Verification`.

    Raises:
        ValueError: naming the value and the fix, for `epochs` below 1, a folder that
            is not a run (or a damaged one), a run with fewer completed epochs than
            `epochs`, or a work_dir that already holds the run.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(
            f"epochs={epochs!r} must be a whole number, 1 or more: how many of the run's first epochs "
            "to retrain and compare, e.g. epochs=2."
        )
    epochs = int(epochs)
    committed = _committed_run(run_dir, epochs)
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="verify-") as folder:
            rows, device = _retrain(committed.config, epochs, folder, data_dir, verbose)
    else:
        _check_work_dir(committed.config, work_dir)
        rows, device = _retrain(committed.config, epochs, work_dir, data_dir, verbose)

    committed_rows = tuple(
        {column: float(row[column]) for column in COMPARED_COLUMNS}
        for row in committed.history.iloc[:epochs].to_dict("records")
    )
    not_completed = {column: math.nan for column in COMPARED_COLUMNS}
    retrained_rows = tuple(
        {column: float(row[column]) for column in COMPARED_COLUMNS} for row in rows
    )
    retrained_rows += (not_completed,) * (epochs - len(retrained_rows))
    largest = {
        column: max(
            _difference(old[column], new[column])
            for old, new in zip(committed_rows, retrained_rows)
        )
        for column in COMPARED_COLUMNS
    }
    return Verification(
        committed_device=committed.summary.get("device"),
        retrained_device=device,
        epochs=epochs,
        identical=all(difference == 0 for difference in largest.values()),
        largest_differences=largest,
        committed_rows=committed_rows,
        retrained_rows=retrained_rows,
    )


def report_lines(verification):
    """The command's report of a `Verification`, one string per line."""
    lines = [
        f"committed on: {verification.committed_device or 'not recorded'}",
        f"retrained on: {verification.retrained_device or 'not recorded'}",
    ]
    for epoch, (old, new) in enumerate(
        zip(verification.committed_rows, verification.retrained_rows), start=1
    ):
        differing = [
            f"{column} {old[column]:.8g} committed, {new[column]:.8g} retrained"
            for column in COMPARED_COLUMNS
            if _difference(old[column], new[column]) != 0
        ]
        lines.append(f"epoch {epoch}: " + ("; ".join(differing) if differing else "identical"))
    if verification.identical:
        lines.append(f"identical to the last bit over {verification.epochs} epochs")
    else:
        largest = ", ".join(
            f"{column} {difference:.3g}"
            for column, difference in verification.largest_differences.items()
            if difference != 0
        )
        lines.append(f"differs: largest |difference| {largest} over {verification.epochs} epochs")
    return lines


def main(argv=None):
    """Command-line entry point.

    Args:
        argv: the arguments (None: the command line's).

    Returns:
        The exit status: 0 when every compared value is identical, 1 when one differs.

    Raises:
        SystemExit: status 2, with the reason, for a folder or option that cannot be
            verified (argparse's usage error).
    """
    parser = argparse.ArgumentParser(
        prog="python -m utils.verify",
        description="Retrain a committed run's first epochs on this machine and compare their history.",
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="the run's folder, results/<experiment>/<run>"
    )
    parser.add_argument(
        "--epochs", type=int, default=2, help="first epochs to retrain and compare (default: 2)"
    )
    parser.add_argument(
        "--data", default=None, help="Tiny ImageNet folder or archive (synthetic: cache folder)"
    )
    arguments = parser.parse_args(argv)
    # Before this process's first TensorFlow operation, as every training.
    training.use_training_threads()
    try:
        verification = verify_run(arguments.run_dir, arguments.epochs, data_dir=arguments.data)
    except ValueError as error:
        parser.error(str(error))
    for line in report_lines(verification):
        print(line)
    return 0 if verification.identical else 1


if __name__ == "__main__":
    sys.exit(main())
