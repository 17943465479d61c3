"""The three GN+BN mixture layers of Gunawan, Yin and Zhang (2021), with `keras.ops`.

Each layer normalizes its input twice, by group normalization (GN) and by batch
normalization (BN), both without affine, and mixes the two with one learnt weight:

    out = (s * x_gn + (1 - s) * x_bn) * gamma + beta,    s = sigmoid(lambda)

`lambda` (the variable `mixing_logit`) is a learnt scalar, 1 at the start (s = 0.731);
`gamma` and `beta` are per channel. The layers differ in what each normalization sees:

    GNPlusParallel:  x_gn = GN(x),        x_bn = BN(x)
    GNPlusGNFirst:   x_gn = GN(x),        x_bn = BN(x_gn)
    GNPlusBNFirst:   x_bn = BN(x),        x_gn = GN(x_bn)

GN is `utils.layers.group_normalize` (biased group variance, epsilon inside the square
root). BN is Keras's `BatchNormalization` without gamma and beta: per channel over every
other axis (N, H, W), with the biased variance and epsilon inside the square root; in
training it uses the batch statistics and updates the moving ones,

    moving = momentum * moving + (1 - momentum) * batch,

and at inference it uses the moving statistics, so a prediction never depends on the
rest of its batch.

Differences from the authors' published PyTorch code: there, BN normalized each
(C, H, W) element over the batch axis alone (a mean and std per channel *and position*),
kept no moving statistics, so inference used the statistics of the test batch, and both
BN and GN divided by (std + epsilon) with the unbiased std; `lambda` was a one-element
vector. Here BN is the standard per-channel BN with moving statistics, GN the paper's
GN, epsilon goes inside the square root and `lambda` is a scalar.

Statistics and arithmetic are done in float32 whatever the input dtype, and every
variable is float32 under a mixed-precision policy; the output has the layer's compute
dtype.
"""

import numbers

import keras
from keras import initializers
from keras import ops

from utils.layers import check_grouping
from utils.layers import is_finite_number
from utils.layers import add_affine_weights
from utils.layers import check_input_rank
from utils.layers import GroupNormalization
from utils.layers import group_normalize
from utils.measurements import Measurement

__all__ = [
    "batch_moments",
    "batch_normalize",
    "moving_average",
    "mix",
    "GNPlusParallel",
    "GNPlusGNFirst",
    "GNPlusBNFirst",
    "MIXTURE_LAYERS",
    "mixing_measurement",
]


def _channel_axis(inputs, axis):
    rank = len(inputs.shape)
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(
            f"axis={axis} is not a channel axis of an input of shape {tuple(inputs.shape)}; "
            f"use an axis in [1, {rank - 1}] or [{-rank + 1}, -1]."
        )
    return axis % rank


def _channel_shape(rank, axis, channels):
    """The shape that broadcasts a per-channel vector against an input of rank `rank`."""
    shape = [1] * rank
    shape[axis] = channels
    return shape


def batch_moments(inputs, axis=-1):
    """The per-channel mean and biased variance over every axis but the channel axis.

    These are BN's batch statistics: for an (N, H, W, C) input, one mean and one variance
    per channel over the N * H * W values of that channel.

    Args:
        inputs: tensor of rank >= 2 whose axis 0 is the batch axis.
        axis: the channel axis (-1 for channels-last, 1 for channels-first).

    Returns:
        A pair of float32 tensors of shape `(C,)`: the mean and the biased variance.

    Reference:
        Sergey Ioffe and Christian Szegedy, "Batch Normalization: Accelerating Deep
        Network Training by Reducing Internal Covariate Shift", ICML 2015
        (https://arxiv.org/abs/1502.03167), Algorithm 1.
    """
    inputs = ops.cast(inputs, "float32")
    axis = _channel_axis(inputs, axis)
    reduced_axes = [a for a in range(len(inputs.shape)) if a != axis]
    return ops.moments(inputs, axes=reduced_axes)


def batch_normalize(inputs, mean, variance, axis=-1, epsilon=1e-5):
    """Normalizes each channel by a given mean and variance, without gamma and beta.

    Computes (x - mean) / sqrt(variance + epsilon) channel by channel: BN's
    normalization step, with the batch statistics in training and the moving ones at
    inference.

    Args:
        inputs: tensor of rank >= 2 whose axis 0 is the batch axis.
        mean: per-channel mean, shape `(C,)`.
        variance: per-channel variance, shape `(C,)`.
        axis: the channel axis (-1 for channels-last, 1 for channels-first).
        epsilon: small positive float added to the variance.

    Returns:
        A float32 tensor with the shape of `inputs`.
    """
    inputs = ops.cast(inputs, "float32")
    axis = _channel_axis(inputs, axis)
    shape = _channel_shape(len(inputs.shape), axis, inputs.shape[axis])
    mean = ops.reshape(ops.cast(mean, "float32"), shape)
    inverse_std = ops.reshape(ops.rsqrt(ops.cast(variance, "float32") + epsilon), shape)
    return (inputs - mean) * inverse_std


def moving_average(moving, batch, momentum):
    """BN's update of a moving statistic: momentum * moving + (1 - momentum) * batch."""
    return momentum * ops.cast(moving, "float32") + (1.0 - momentum) * ops.cast(batch, "float32")


def mix(group_normalized, batch_normalized, mixing_logit, gamma=None, beta=None, axis=-1):
    """Mixes a GN- and a BN-normalized tensor and applies the per-channel affine.

    Computes (s * group_normalized + (1 - s) * batch_normalized) * gamma + beta with
    s = sigmoid(mixing_logit), so that s stays in (0, 1) whatever the logit learns.

    Args:
        group_normalized: the group-normalized tensor, x_gn.
        batch_normalized: the batch-normalized tensor, x_bn, of the same shape.
        mixing_logit: scalar, the paper's lambda.
        gamma: optional per-channel scale, shape `(C,)`.
        beta: optional per-channel offset, shape `(C,)`.
        axis: the channel axis of the two tensors.

    Returns:
        A float32 tensor with the shape of the inputs.

    Reference:
        Agus Gunawan, Xu Yin and Kang Zhang, "Understanding and Improving Group
        Normalization", 2021.
    """
    group_normalized = ops.cast(group_normalized, "float32")
    batch_normalized = ops.cast(batch_normalized, "float32")
    weight = ops.sigmoid(ops.cast(mixing_logit, "float32"))
    outputs = weight * group_normalized + (1.0 - weight) * batch_normalized
    axis = _channel_axis(outputs, axis)
    shape = _channel_shape(len(outputs.shape), axis, outputs.shape[axis])
    if gamma is not None:
        outputs = outputs * ops.reshape(ops.cast(gamma, "float32"), shape)
    if beta is not None:
        outputs = outputs + ops.reshape(ops.cast(beta, "float32"), shape)
    return outputs


def _mixing_initializer(value):
    """An initializer from a number (the initial logit) or anything `initializers.get` takes."""
    if is_finite_number(value):
        return initializers.Constant(float(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        raise ValueError(
            f"mixing_initializer must be a finite number (the initial lambda; s = sigmoid(lambda)) "
            f"or an initializer; received mixing_initializer={value!r}."
        )
    return initializers.get(value)


_ARGUMENTS_AND_REFERENCE = """
    Args:
        groups: number of GN groups, 32 by default. Must divide the number of channels;
            -1 means one group per channel.
        axis: the channel axis, -1 (channels-last, default) or 1 (channels-first).
        epsilon: small positive float added to both variances, 1e-5 by default.
        momentum: momentum of BN's moving statistics, in [0, 1), 0.9 by default:
            moving = momentum * moving + (1 - momentum) * batch.
        center: if True, add the per-channel offset `beta`.
        scale: if True, multiply by the per-channel scale `gamma`.
        beta_initializer: initializer for `beta`, zeros by default.
        gamma_initializer: initializer for `gamma`, ones by default.
        mixing_initializer: the initial lambda, a number (1.0 by default, so s = 0.731)
            or an initializer for the scalar `mixing_logit`.
        learn_mixing_weight: True (default) to learn lambda; False keeps s at its
            initial value (e.g. `mixing_initializer=0.0` for s = 0.5, a control that
            mixes without learning how).
        beta_regularizer: optional regularizer for `beta`.
        gamma_regularizer: optional regularizer for `gamma`.
        beta_constraint: optional constraint for `beta`.
        gamma_constraint: optional constraint for `gamma`.
        **kwargs: base layer keyword arguments (e.g. `name`, `dtype`, `trainable`).

    `mixing_logit` takes no regularizer: the models apply weight decay through the gamma
    and beta regularizers only. As with `keras.layers.BatchNormalization`, a layer with
    `trainable=False` runs BN in inference mode (moving statistics, no update).
    `mixing_weight` reads s = sigmoid(mixing_logit) as a Python float.

    Input shape:
        Any tensor of rank 2 to 5 with a defined channel dimension.

    Output shape:
        Same as the input.

    Reference:
        Agus Gunawan, Xu Yin and Kang Zhang, "Understanding and Improving Group
        Normalization", 2021; Yuxin Wu and Kaiming He, "Group Normalization", ECCV 2018
        (https://arxiv.org/abs/1803.08494).
    """


def _mixture_docstring(summary):
    """A public layer's docstring: its own summary, then the arguments they all share."""
    formula = "out = (s * x_gn + (1 - s) * x_bn) * gamma + beta, with s = sigmoid(lambda) learnt."
    return f"{summary}\n\n    {formula}\n{_ARGUMENTS_AND_REFERENCE}"


class _GNPlusBN(GroupNormalization):
    __doc__ = _mixture_docstring(
        "The GN+BN mixture; a subclass chooses what GN and BN see in `normalize_both`."
    )

    def __init__(
        self,
        groups=32,
        *,
        momentum=0.9,
        mixing_initializer=1.0,
        learn_mixing_weight=True,
        channels_per_group=None,
        **kwargs,
    ):
        # GroupNormalization stores and checks groups, axis, epsilon and the affine
        # arguments (center, scale, beta_* and gamma_*), and serializes them.
        if channels_per_group is not None:
            raise ValueError(
                f"channels_per_group={channels_per_group!r} does not apply to {type(self).__name__}: its GN "
                f"takes the number of groups, e.g. groups=32."
            )
        super().__init__(groups=groups, **kwargs)
        # BN's statistics are over the batch: a masked position would still count.
        self.supports_masking = False
        # momentum = 1 would freeze the moving statistics at their initial values.
        if not (is_finite_number(momentum) and 0 <= momentum < 1):
            raise ValueError(
                f"momentum must be a number in [0, 1) (the weight of the old moving statistics, "
                f"e.g. 0.9 or 0.99); received momentum={momentum!r}."
            )
        self.momentum = momentum
        self.mixing_initializer = _mixing_initializer(mixing_initializer)
        if not isinstance(learn_mixing_weight, bool):
            raise ValueError(
                f"learn_mixing_weight must be True (s is learnt) or False (s stays at its initial value); "
                f"received learn_mixing_weight={learn_mixing_weight!r}."
            )
        self.learn_mixing_weight = learn_mixing_weight

    def build(self, input_shape):
        rank = check_input_rank(self, input_shape)
        _, channels, _ = check_grouping(input_shape, self.groups, self.axis)
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self.axis: channels})
        add_affine_weights(self, channels)
        self.mixing_logit = self.add_weight(
            shape=(),
            name="mixing_logit",
            initializer=self.mixing_initializer,
            trainable=self.learn_mixing_weight,
            autocast=False,
        )
        # BN's moving statistics, for inference.
        for name, initializer in (("moving_mean", "zeros"), ("moving_variance", "ones")):
            weight = self.add_weight(
                shape=(channels,),
                name=name,
                initializer=initializer,
                trainable=False,
                autocast=False,
            )
            setattr(self, name, weight)

    @property
    def mixing_weight(self):
        """s = sigmoid(mixing_logit), the weight of GN in the mixture, as a Python float."""
        if not self.built:
            raise ValueError(
                f"{self.__class__.__name__} {self.name!r} has no mixing weight before it is "
                f"built; call the layer on an input first."
            )
        return float(ops.convert_to_numpy(ops.sigmoid(ops.cast(self.mixing_logit, "float32"))))

    def normalize_groups(self, inputs):
        """GN without affine, the x_gn branch."""
        return group_normalize(inputs, groups=self.groups, axis=self.axis, epsilon=self.epsilon)

    def normalize_batch(self, inputs, training):
        """BN without affine, the x_bn branch; updates the moving statistics in training."""
        if training:
            mean, variance = batch_moments(inputs, self.axis)
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(ops.cast(moving_average(moving, batch, self.momentum), moving.dtype))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return batch_normalize(inputs, mean, variance, self.axis, self.epsilon)

    def normalize_both(self, inputs, training):
        """Returns (x_gn, x_bn); each subclass fixes the order of the two normalizations."""
        raise NotImplementedError

    def call(self, inputs, training=None):
        inputs = ops.cast(inputs, "float32")
        # A frozen layer runs BN in inference mode, as keras.layers.BatchNormalization.
        group_normalized, batch_normalized = self.normalize_both(
            inputs, bool(training and self.trainable)
        )
        outputs = mix(
            group_normalized,
            batch_normalized,
            self.mixing_logit.value,
            gamma=None if self.gamma is None else self.gamma.value,
            beta=None if self.beta is None else self.beta.value,
            axis=self.axis,
        )
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            "momentum": self.momentum,
            "mixing_initializer": initializers.serialize(self.mixing_initializer),
            "learn_mixing_weight": self.learn_mixing_weight,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="utils")
class GNPlusParallel(_GNPlusBN):
    __doc__ = _mixture_docstring("GN and BN of the same input, mixed: x_gn = GN(x), x_bn = BN(x).")

    def normalize_both(self, inputs, training):
        return self.normalize_groups(inputs), self.normalize_batch(inputs, training)


@keras.saving.register_keras_serializable(package="utils")
class GNPlusGNFirst(_GNPlusBN):
    __doc__ = _mixture_docstring(
        "GN, then BN of GN's output, mixed: x_gn = GN(x), x_bn = BN(x_gn). The moving "
        "statistics are those of GN's output."
    )

    def normalize_both(self, inputs, training):
        group_normalized = self.normalize_groups(inputs)
        return group_normalized, self.normalize_batch(group_normalized, training)


@keras.saving.register_keras_serializable(package="utils")
class GNPlusBNFirst(_GNPlusBN):
    __doc__ = _mixture_docstring(
        "BN, then GN of BN's output, mixed: x_bn = BN(x), x_gn = GN(x_bn)."
    )

    def normalize_both(self, inputs, training):
        batch_normalized = self.normalize_batch(inputs, training)
        return self.normalize_groups(batch_normalized), batch_normalized


# The three layers, for isinstance checks (e.g. to log every mixture layer's weight).
MIXTURE_LAYERS = (GNPlusParallel, GNPlusGNFirst, GNPlusBNFirst)


class _MixingWeights(Measurement):
    """The learnt weight s of GN in every mixture layer of a model, once an epoch
    (mixing.csv)."""

    file_name = "mixing.csv"

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def rows_of_epoch(self, epoch):
        return [
            {"epoch": epoch, "layer": layer.name, "mixing_weight": layer.mixing_weight}
            for layer in self.layers
        ]


def mixing_measurement(config, model):
    """The mixing weights of a model with mixture layers, else None (a measurement
    factory: utils.measurements)."""
    del config
    layers = [layer for layer in model.layers if isinstance(layer, MIXTURE_LAYERS)]
    return _MixingWeights(layers) if layers else None
