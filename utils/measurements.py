"""Measurements: values a run records once an epoch, each in a CSV file of its folder.

A measurement is a Keras callback that the training engine (utils.training) adds to a
run's callbacks. After each epoch the engine appends `rows_of_epoch(epoch)` to the file
`file_name` of the run folder (utils.runs measurement files) before it backs the epoch
up, so a resumed run keeps the rows of the epochs it does not train again.

An experiment names the measurements its runs take (`Experiment.measurements`, as
"module:function" strings): each function is called with the run's config and model and
returns a `Measurement`, or None when that run has nothing of the kind to measure: the
landscape probes (utils.landscape), the mixture layers' weights (utils.mixtures), and here
the fit in inference mode (`inference_fit`) and the percentiles of a late layer's
responses (`late_layer_responses`).
"""

import keras
import numpy as np

__all__ = [
    "Measurement",
    "InferenceFit",
    "LateLayerResponses",
    "inference_fit",
    "inference_fit_row",
    "late_layer_responses",
    "FIT_STRIDE",
    "RESPONSE_PERCENTILES",
]


class Measurement(keras.callbacks.Callback):
    """Base class of a per-epoch measurement.

    Attributes:
        file_name: the CSV file of the run folder that holds its rows, e.g. "mixing.csv".
    """

    file_name: str = ""

    def prepare_data(self, x_train, y_train):
        """Called once before training with the run's training images and labels."""
        del x_train, y_train

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


# The fixed subset of training images the fit is measured on: every `FIT_STRIDE`-th image
# (2,000 of the cpu profile's 20,000, 50 of each class), as the model sees them in inference
# mode: no augmentation, BN with its moving statistics.
FIT_STRIDE = 10
FIT_BATCH_SIZE = 256


class InferenceFit(Measurement):
    """The loss and error on a fixed subset of training images, in inference mode, once an
    epoch (fit.csv: epoch, inference_train_loss, inference_train_error).

    A history's train_loss and train_error are the running averages over an epoch of
    flipped images in training mode: while the weights change within the epoch, and for BN
    with the statistics of each batch, so at small batches they include the noise of those
    statistics. These are the end-of-epoch model on fixed images, computed as validation is,
    so that fit and generalization can be told apart.
    """

    file_name = "fit.csv"

    def __init__(self):
        super().__init__()
        self.images = self.labels = None

    def prepare_data(self, x_train, y_train):
        self.images, self.labels = x_train[::FIT_STRIDE], y_train[::FIT_STRIDE]

    def rows_of_epoch(self, epoch):
        probabilities = np.asarray(
            self.model.predict(self.images, batch_size=FIT_BATCH_SIZE, verbose=0), dtype=np.float64
        )
        return [inference_fit_row(epoch, probabilities, self.labels)]


def inference_fit_row(epoch, probabilities, labels):
    """The row of fit.csv for one epoch: mean cross-entropy and top-1 error (%) of the
    predicted class probabilities (n, classes) against int labels (n,)."""
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(-np.log(np.clip(picked, np.finfo(np.float32).tiny, None)).mean())
    error = 100.0 * float((probabilities.argmax(axis=1) != labels).mean())
    return {"epoch": epoch, "inference_train_loss": loss, "inference_train_error": error}


def inference_fit(config, model):
    """A measurement factory: every run that declares it records its `InferenceFit`."""
    del config, model
    return InferenceFit()


# The Figure 6 analogue (Wu & He, 2018): percentiles of one late layer's responses on a
# fixed batch of `RESPONSE_IMAGES` training images, spread over the training set.
RESPONSE_IMAGES = 128
RESPONSE_PERCENTILES = (1, 20, 80, 99)


class LateLayerResponses(Measurement):
    """The 1st, 20th, 80th and 99th percentiles of the responses of the network's last
    convolution (not a projection shortcut) on a fixed batch, in inference mode, before
    and after the normalization that follows it, once an epoch (responses.csv: epoch,
    layer, where, p1, p20, p80, p99)."""

    file_name = "responses.csv"

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.probe = None
        self.images = None

    def prepare_data(self, x_train, y_train):
        del y_train
        stride = max(1, len(x_train) // RESPONSE_IMAGES)
        self.images = x_train[::stride][:RESPONSE_IMAGES]

    def rows_of_epoch(self, epoch):
        if self.probe is None:
            self.probe = keras.Model(
                self.model.inputs[0], [layer.output for _, layer in self.layers]
            )
        outputs = self.probe(self.images, training=False)
        # A model of one output returns its tensor, not a list of one.
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        rows = []
        for (where, layer), output in zip(self.layers, outputs):
            values = np.percentile(
                keras.ops.convert_to_numpy(output).astype(np.float64), RESPONSE_PERCENTILES
            )
            rows.append(
                {
                    "epoch": epoch,
                    "layer": layer.name,
                    "where": where,
                    **{
                        f"p{percentile}": float(value)
                        for percentile, value in zip(RESPONSE_PERCENTILES, values)
                    },
                }
            )
        return rows


def late_layer_responses(config, model):
    """A measurement factory: the `LateLayerResponses` of the model's last convolution
    and, when there is one, of the normalization named after it ("<block>_conv2" is
    followed by "<block>_norm2"); None for a model without convolutions."""
    del config
    convolutions = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and not layer.name.endswith("_proj")
    ]
    if not convolutions:
        return None
    last = convolutions[-1]
    layers = [("before normalization", last)]
    names = {layer.name: layer for layer in model.layers}
    norm_name = last.name.replace("_conv", "_norm")
    # A network without normalization has an identity layer there: nothing to add.
    if (
        norm_name != last.name
        and norm_name in names
        and not isinstance(names[norm_name], keras.layers.Identity)
    ):
        layers.append(("after normalization", names[norm_name]))
    return LateLayerResponses(layers)
