"""A finished run's trained model, loaded and evaluated on the validation images.

    python -m utils.evaluate results/<experiment>/<run>
    python -m utils.evaluate results/<experiment>/<run> --data ~/tiny-imagenet-200.zip

Every run trained since the engine keeps its model has `model.keras` beside its history
(outside git). The model is evaluated on the run's validation images as training
evaluated it after its last epoch, and the result is set beside the last row of
history.csv: the two must agree. The exit status is 0 when they do, 1 when they differ,
2 for a folder without a model or data.
"""

import argparse
import sys
from pathlib import Path

from utils import runs
from utils.quiet import import_tensorflow

import_tensorflow()

import keras  # noqa: E402 - after TensorFlow's quiet start

from utils import models  # noqa: E402,F401 - registers the layers the saved models use
from utils import training  # noqa: E402

__all__ = ["model_path", "load_model", "evaluate_run", "main"]

# How far the evaluation may be from history.csv, which stores float32 values.
TOLERANCE = 1e-4


def model_path(run_dir):
    """The model file of a run folder (its source's, for a run reused from another
    experiment).

    Raises:
        FileNotFoundError: naming the folder, when the run has no saved model.
    """
    run_dir = Path(run_dir)
    record = runs.read_run(run_dir)
    source = record.summary.get("reused_from")
    folder = run_dir.parent.parent / source if source else run_dir
    path = folder / runs.MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {runs.MODEL_FILE}: only runs that finished since the engine keeps models have one "
            f"(status {record.status!r} here). Retrain it into another folder with python -m utils.verify {run_dir} "
            "to compare, or train a new run."
        )
    return path


def load_model(run_dir):
    """The trained `keras.Model` of a finished run."""
    return keras.saving.load_model(model_path(run_dir))


def evaluate_run(run_dir, data_dir=None):
    """Evaluates a finished run's model on its validation images.

    Returns:
        {"val_error", "val_loss"} of the model beside {"history_val_error",
        "history_val_loss"}, the last epoch's in history.csv.
    """
    training.use_training_threads()
    record = runs.read_run(run_dir)
    model = load_model(run_dir)
    _, (x_val, y_val) = training.load_data(record.config, data_dir)
    scores = model.evaluate(training.validation_dataset(x_val, y_val), verbose=0, return_dict=True)
    last = record.history.iloc[-1]
    return {
        "val_error": 100.0 * (1.0 - float(scores["accuracy"])),
        "val_loss": float(scores["cross_entropy"]),
        "history_val_error": float(last["val_error"]),
        "history_val_loss": float(last["val_loss"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m utils.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="a finished run's folder, results/<experiment>/<run>")
    parser.add_argument(
        "--data",
        default=None,
        help="Tiny ImageNet folder or archive (default: as training finds it)",
    )
    arguments = parser.parse_args(argv)
    try:
        scores = evaluate_run(arguments.run, arguments.data)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    agree = abs(scores["val_error"] - scores["history_val_error"]) <= TOLERANCE and abs(
        scores["val_loss"] - scores["history_val_loss"]
    ) <= TOLERANCE * max(1.0, scores["val_loss"])
    print(
        f"{arguments.run}: validation error {scores['val_error']:.2f}%, loss {scores['val_loss']:.4f}; "
        f"history.csv's last epoch: {scores['history_val_error']:.2f}%, {scores['history_val_loss']:.4f}: "
        f"{'the same' if agree else 'they differ'}."
    )
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
