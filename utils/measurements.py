"""Measurements: values a run records once an epoch, each in a CSV file of its folder.

A measurement is a Keras callback that the training engine (utils.training) adds to a
run's callbacks. After each epoch the engine appends `rows_of_epoch(epoch)` to the file
`file_name` of the run folder (utils.runs measurement files) before it backs the epoch
up, so a resumed run keeps the rows of the epochs it does not train again.

An experiment names the measurements its runs take (`Experiment.measurements`, as
"module:function" strings): each function is called with the run's config and model and
returns a `Measurement`, or None when that run has nothing of the kind to measure. The
landscape probes (utils.landscape) and the mixture layers' weights (utils.mixtures) are
the two today.
"""

import keras

__all__ = ["Measurement"]


class Measurement(keras.callbacks.Callback):
    """Base class of a per-epoch measurement.

    Attributes:
        file_name: the CSV file of the run folder that holds its rows, e.g. "mixing.csv".
    """

    file_name: str = ""

    def prepare_epoch(self, epoch, steps_per_epoch, other_batches):
        """Called before the fit of each epoch (0-based `epoch`).

        Args:
            epoch: the epoch about to train, 0-based.
            steps_per_epoch: its optimizer steps.
            other_batches: a function that returns an endless iterator of (images,
                labels) batches of the training data, drawn as for another epoch, so
                that the epoch's own batches are untouched.
        """
        del epoch, steps_per_epoch, other_batches

    def rows_of_epoch(self, epoch):
        """The rows (dicts) this measurement records for 1-based `epoch`."""
        raise NotImplementedError
