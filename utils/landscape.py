"""Loss-landscape probes along the gradient, cheap enough to run during training.

Santurkar et al. (2018) measure how smooth the training loss is around the weights w of a
training step: with the gradient g = grad L(w) on a batch, they move the weights along the
gradient, w_k = w - eta_k g, for a few step sizes eta_k and record on the same batch

- the loss L(w_k): its range over k is the "loss landscape" at that step;
- the gradient predictiveness ||grad L(w) - grad L(w_k)||_2 (all weights concatenated);
- the "effective beta-smoothness", the largest gradient change per unit of step length,
  max_k ||grad L(w) - grad L(w_k)||_2 / (eta_k ||g||_2).

The module has three layers:

    probe_along_gradient      the measurement, for any function returning a loss and gradients.
    model_loss_and_gradients  that function for a Keras model, with no side effect on the model.
    LandscapeProbe            a callback probing every few optimizer steps during `fit`.

`utils.experiments.understanding_gn.analysis.probe_summary` turns the callback's rows (a run's landscape.csv)
into one line per probed step.

Reference:
    Shibani Santurkar, Dimitris Tsipras, Andrew Ilyas and Aleksander Madry, "How Does Batch
    Normalization Help Optimization?", NeurIPS 2018, section 3.1 and figure 4.
"""

import dataclasses
import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from utils.measurements import Measurement

__all__ = [
    "DEFAULT_MULTIPLIERS",
    "StepProbe",
    "GradientProbe",
    "probe_along_gradient",
    "model_loss_and_gradients",
    "LandscapeProbe",
    "probe_measurement",
]

# The step sizes of a probe, as multiples of the learning rate in effect.
DEFAULT_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)


@dataclasses.dataclass(frozen=True)
class StepProbe:
    """What one step along the gradient finds.

    Attributes:
        step_size: eta, the step taken: w_k = w - eta * g.
        loss: L(w_k) on the probe's batch.
        gradient_distance: ||grad L(w) - grad L(w_k)||_2.
        step_length: ||w_k - w||_2 = eta * ||g||_2.
    """

    step_size: float
    loss: float
    gradient_distance: float
    step_length: float

    @property
    def smoothness(self):
        """The gradient change per unit of step length (NaN for a zero step)."""
        return self.gradient_distance / self.step_length if self.step_length > 0 else math.nan


@dataclasses.dataclass(frozen=True)
class GradientProbe:
    """A probe along the gradient at one point w.

    Attributes:
        base_loss: L(w).
        gradient_norm: ||grad L(w)||_2.
        steps: one `StepProbe` per step size, in the order given.
    """

    base_loss: float
    gradient_norm: float
    steps: tuple

    @property
    def beta_smoothness(self):
        """The effective beta-smoothness: max over the steps of distance / step length."""
        return max(step.smoothness for step in self.steps)

    @property
    def loss_range(self):
        """max_k L(w_k) - min_k L(w_k)."""
        losses = [step.loss for step in self.steps]
        return max(losses) - min(losses)


def _as_float64(value):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def _norm(arrays):
    """The l2 norm of a list of arrays, as if they were one flat vector."""
    return math.sqrt(sum(float(np.sum(_as_float64(array) ** 2)) for array in arrays))


def _distance(first, second):
    """The l2 distance between two lists of arrays, as if each list were one flat vector."""
    return _norm([_as_float64(a) - _as_float64(b) for a, b in zip(first, second)])


def _step(weight, gradient, step_size):
    """weight - step_size * gradient, of the same kind as the weight (NumPy array or tensor)."""
    if isinstance(weight, (np.ndarray, np.generic)):
        return weight - step_size * np.asarray(
            keras.ops.convert_to_numpy(gradient), dtype=weight.dtype
        )
    return keras.ops.subtract(weight, keras.ops.multiply(step_size, gradient))


def probe_along_gradient(loss_and_gradients, weights, step_sizes):
    """Probes the loss and its gradient at w - eta * grad L(w), for each step size eta.

    Args:
        loss_and_gradients: a function of a list of weight arrays returning
            `(loss, gradients)`, the gradients a list shaped like the weights. NumPy
            arrays and TensorFlow tensors are both accepted, as weights and results.
        weights: the point w, a list of arrays or tensors.
        step_sizes: the positive step sizes eta_k.

    Returns:
        A `GradientProbe`: base_loss, gradient_norm and one `StepProbe` per step size
        (step_size, loss, gradient_distance, step_length), with the properties
        beta_smoothness and loss_range. Norms are accumulated in float64.

    Reference:
        Santurkar, Tsipras, Ilyas and Madry, "How Does Batch Normalization Help
        Optimization?", NeurIPS 2018.
    """
    step_sizes = [float(step_size) for step_size in step_sizes]
    if not step_sizes or not all(math.isfinite(eta) and eta > 0 for eta in step_sizes):
        raise ValueError(f"step_sizes must be finite positive numbers; received {step_sizes}.")
    weights = list(weights)
    base_loss, gradients = loss_and_gradients(weights)
    gradients = list(gradients)
    gradient_norm = _norm(gradients)
    steps = []
    for step_size in step_sizes:
        moved = [_step(weight, gradient, step_size) for weight, gradient in zip(weights, gradients)]
        loss, moved_gradients = loss_and_gradients(moved)
        steps.append(
            StepProbe(
                step_size=step_size,
                loss=float(_as_float64(loss)),
                gradient_distance=_distance(gradients, moved_gradients),
                # The step's length by definition, not measured on the moved weights, whose
                # float32 rounding would only add noise.
                step_length=step_size * gradient_norm,
            )
        )
    return GradientProbe(
        base_loss=float(_as_float64(base_loss)), gradient_norm=gradient_norm, steps=tuple(steps)
    )


# One compiled function per model, forgotten with the model. The function holds the model
# only weakly, so that the cache does not keep it alive.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled_loss_and_gradients(model):
    if model not in _COMPILED:
        model_reference = weakref.ref(model)

        @tf.function(reduce_retracing=True)
        def loss_and_gradients(trainable_values, non_trainable_values, images, labels):
            with tf.GradientTape() as tape:
                tape.watch(trainable_values)
                # The updated non-trainable values (batch-norm moving statistics, seed
                # states) that stateless_call returns are dropped: the model keeps its own.
                outputs, _ = model_reference().stateless_call(
                    trainable_values, non_trainable_values, images, training=True
                )
                probabilities = keras.ops.cast(outputs, "float32")
                loss = keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(labels, probabilities)
                )
            # A weight the loss does not use has a zero gradient, not None.
            return loss, tape.gradient(
                loss, trainable_values, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )

        _COMPILED[model] = loss_and_gradients
    return _COMPILED[model]


def _values(variables):
    # Reading a variable copies its value, so later assignments do not reach the copy.
    return [tf.convert_to_tensor(variable.value) for variable in variables]


def model_loss_and_gradients(model, images, labels):
    """The training loss of a Keras model on one batch, as a function of its trainable weights.

    The loss is the mean sparse categorical cross-entropy of the model's softmax output:
    the data loss only, without the regularization penalties (weight decay) the training
    loss adds. The model runs in training mode, as in a training step (batch statistics
    in batch normalization, dropout and noise on), through `model.stateless_call`: probing
    never changes the model's variables, neither weights nor batch-norm moving statistics
    nor random seed states. Every evaluation therefore sees the non-trainable state of the
    moment this function was made, including the same random draws.

    Args:
        model: a built Keras 3 model with a softmax output (TensorFlow backend).
        images: a batch of inputs (NumPy array or tensor).
        labels: their integer class labels.

    Returns:
        A function of a list of values of `model.trainable_variables` returning
        `(loss, gradients)` as tensors, for `probe_along_gradient`.
    """
    compiled = _compiled_loss_and_gradients(model)
    non_trainable_values = _values(model.non_trainable_variables)
    dtypes = [variable.dtype for variable in model.trainable_variables]
    images, labels = tf.convert_to_tensor(images), tf.convert_to_tensor(labels)

    def loss_and_gradients(weights):
        values = [
            tf.convert_to_tensor(weight, dtype=dtype) for weight, dtype in zip(weights, dtypes)
        ]
        return compiled(values, non_trainable_values, images, labels)

    return loss_and_gradients


class LandscapeProbe(Measurement):
    """Probes the loss landscape along the gradient every few optimizer steps of `fit`.

    At step 0 and whenever the optimizer's iterations pass a multiple of `every_steps`,
    takes the next batch of its own stream and probes at the current weights with step
    sizes multiplier * the current learning rate (`probe_along_gradient` with
    `model_loss_and_gradients`). Training is not disturbed: the probe has its own
    batches and changes no variable. Each probe costs 1 + len(multipliers) forward and
    backward passes on one batch.

    With `steps_per_execution` > 1 Keras calls the batch hooks once per execution only,
    so a probe fires at the first hook after its multiple, at the optimizer's actual
    iterations then; several multiples passed in one execution give one probe. The probe
    at step 0 happens at the beginning of the first epoch, after callbacks placed before
    this one (a learning-rate scheduler) have set that epoch's learning rate, and only
    while the optimizer has made no step, so `fit` calls that resume training (or train
    one epoch each) do not probe step 0 again.

    Args:
        batches: an iterable of (images, labels) pairs, NumPy arrays or tensors, separate
            from the training data so that its order is untouched. It must last as long as
            training (a repeated `tf.data.Dataset`, for instance).
        every_steps: the number of optimizer steps between probes.
        multipliers: the step sizes, in units of the learning rate.

    Attributes:
        rows: one dict per probe and multiplier, with the keys epoch (1-based), step
            (optimizer iterations so far), multiplier, step_size, base_loss, loss,
            gradient_norm, gradient_distance and step_length.

    Reference:
        Santurkar, Tsipras, Ilyas and Madry, "How Does Batch Normalization Help
        Optimization?", NeurIPS 2018.
    """

    def __init__(self, batches, every_steps, multipliers=DEFAULT_MULTIPLIERS):
        super().__init__()
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(
                f"every_steps must be a positive integer; received every_steps={every_steps!r}."
            )
        self.multipliers = tuple(float(multiplier) for multiplier in multipliers)
        if not self.multipliers or not all(math.isfinite(m) and m > 0 for m in self.multipliers):
            raise ValueError(
                f"multipliers must be finite positive numbers; received {multipliers!r}."
            )
        self.every_steps = every_steps
        self.rows = []
        self._batches = iter(batches)
        self._epoch = 1
        self._probed_multiple = None  # iterations // every_steps at the last probe

    def _iterations(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        lower = sorted(
            {
                layer.dtype_policy.name
                for layer in self.model.layers
                if layer.weights and layer.dtype_policy.compute_dtype != "float32"
            }
        )
        if lower:
            # Steps of a fraction of the learning rate would round away in 16-bit weights.
            raise ValueError(
                f"LandscapeProbe needs a float32 model; layers of this one compute in {lower}. "
                "Train the probed run with precision 'float32'."
            )
        # A new fit call, perhaps resuming: the multiples passed already count as probed.
        self._probed_multiple = self._iterations() // self.every_steps

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        if self._iterations() == 0 and not any(row["step"] == 0 for row in self.rows):
            self._probe(0)

    def on_train_batch_end(self, batch, logs=None):
        iterations = self._iterations()
        if iterations // self.every_steps > self._probed_multiple:
            self._probe(iterations)

    def _probe(self, iterations):
        try:
            images, labels = next(self._batches)
        except StopIteration:
            raise RuntimeError(f"LandscapeProbe ran out of batches at step {iterations}.") from None
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        probe = probe_along_gradient(
            model_loss_and_gradients(self.model, images, labels),
            _values(self.model.trainable_variables),
            [multiplier * learning_rate for multiplier in self.multipliers],
        )
        for multiplier, step in zip(self.multipliers, probe.steps):
            self.rows.append(
                {
                    "epoch": self._epoch,
                    "step": iterations,
                    "multiplier": multiplier,
                    "step_size": step.step_size,
                    "base_loss": probe.base_loss,
                    "loss": step.loss,
                    "gradient_norm": probe.gradient_norm,
                    "gradient_distance": step.gradient_distance,
                    "step_length": step.step_length,
                }
            )
        self._probed_multiple = iterations // self.every_steps

    def use_batches(self, batches):
        """Takes the batches of the next probes from `batches` (for instance a fresh
        stream each epoch, so that a resumed run probes on the batches an uninterrupted
        one would)."""
        self._batches = iter(batches)

    def rows_of_epoch(self, epoch):
        """The rows of the probes made during an epoch (1-based)."""
        return [row for row in self.rows if row["epoch"] == epoch]


class _RunProbes(LandscapeProbe):
    """The probes of a training run: `per_epoch` of them spread evenly over each epoch,
    on batches drawn as for another epoch (landscape.csv)."""

    file_name = "landscape.csv"

    def __init__(self, per_epoch):
        super().__init__([], every_steps=1)
        self.per_epoch = per_epoch

    def prepare_epoch(self, epoch, steps_per_epoch, other_batches):
        del epoch
        self.every_steps = max(1, steps_per_epoch // self.per_epoch)
        self.use_batches(other_batches())


def probe_measurement(config, model):
    """The landscape probes a run's config asks for (`landscape_probes` per epoch), or
    None (a measurement factory: utils.measurements)."""
    del model
    return _RunProbes(config.landscape_probes) if config.landscape_probes else None
