"""Group Normalization and its two special cases, and Weight Standardization, with `keras.ops`.

The layers mirror the argument names of `tensorflow_addons.layers.GroupNormalization`
and `InstanceNormalization`, so code written for those ports by changing the import:

    from utils.layers import GroupNormalization, InstanceNormalization

Differences from tensorflow-addons: `epsilon` defaults to 1e-5 (the paper's value, where
tensorflow-addons used 1e-3), statistics are always computed in float32, and
`InstanceNormalization(groups=...)` raises an error where tensorflow-addons ignored
`groups` with a warning.

`WeightStandardizedConv2D` is a `keras.layers.Conv2D` whose kernel is standardized per
output channel before convolving (Qiao et al., 2019), the companion of GN in the paper's
follow-ups; `utils.models.small_cnn(weight_standardization=True)` uses it.

This file needs Keras 3 alone (any backend) and nothing else of this project: it may be
copied into another project as it is.
"""

import math
import numbers

try:  # Within this project: without TensorFlow's C++ start-up lines (see utils.quiet).
    from utils.quiet import import_keras
except ImportError:  # This file copied alone into another project.
    import keras
else:
    keras = import_keras()
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

__all__ = [
    "group_normalize",
    "group_normalize_reference",
    "GroupNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "standardize_kernel",
    "WeightStandardizedConv2D",
]

# The paper's choice of G when neither `groups` nor `channels_per_group` is given.
DEFAULT_GROUPS = 32


def group_normalize_reference(inputs, groups, axis=-1, epsilon=1e-5, gamma=None, beta=None):
    """Group-normalizes `inputs` the way the paper's Figure 3 writes it, to read and test.

    Figure 3 of the paper is GN in a few lines of TensorFlow for NCHW inputs:

        x = tf.reshape(x, [N, G, C // G, H, W])
        mean, var = tf.nn.moments(x, [2, 3, 4], keep_dims=True)
        x = (x - mean) / tf.sqrt(var + eps)
        x = tf.reshape(x, [N, C, H, W])
        return x * gamma + beta

    This function is those lines, step by step, for inputs of any rank >= 2 with the
    channels first or last. It is written to teach GN and to test against, not for speed:
    `group_normalize` is the fast kernel that the layers run, and it computes the same
    function (to float32 rounding) from per-channel statistics.

    Args, result and reference: as `group_normalize`, the paper's Figure 3.
    """
    # float32 whatever the input dtype, as in `group_normalize`, so that both compute
    # the same function.
    x, channel_axis, channels, groups, rank = _as_float32_checked(inputs, groups, axis, epsilon)
    # With the channels last, splitting them into groups is a reshape of the last axis
    # whatever the rank, and gamma and beta broadcast against it as they are.
    channels_last = channel_axis == rank - 1
    if not channels_last:
        x = ops.moveaxis(x, channel_axis, -1)
    shape = ops.shape(x)
    # (N, ..., C) -> (N, ..., G, C // G): a group is C // G neighbouring channels.
    x = ops.reshape(x, [*shape[:-1], groups, channels // groups])
    # One mean and one (biased) variance per sample and group: reduce every axis but N
    # and G, e.g. H, W and C // G of (N, H, W, G, C // G).
    group_axis = rank - 1
    reduced_axes = [a for a in range(1, rank + 1) if a != group_axis]
    mean, variance = ops.moments(x, axes=reduced_axes, keepdims=True)
    x = (x - mean) / ops.sqrt(variance + epsilon)
    x = ops.reshape(x, shape)
    if gamma is not None:
        x = x * ops.cast(gamma, "float32")
    if beta is not None:
        x = x + ops.cast(beta, "float32")
    if not channels_last:
        x = ops.moveaxis(x, -1, channel_axis)
    return x


def group_normalize(inputs, groups, axis=-1, epsilon=1e-5, gamma=None, beta=None):
    """Group-normalizes `inputs`: the fast kernel of the layers.

    The channel axis is split into `groups` contiguous blocks of `C // groups` channels.
    Each block of each sample is normalized by its own mean and biased variance over the
    block's channels and every spatial position; `epsilon` is added to the variance.
    The result is then scaled and shifted per channel by `gamma` and `beta`. This is the
    function of the paper's Figure 3 (`group_normalize_reference` follows that code line
    by line), computed from per-channel statistics, which is faster.

    The statistics and the arithmetic are done in float32 whatever the input dtype
    (squares of float16 activations overflow at about 256); the result is float32.
    Float32 squares overflow in turn beyond about 1.8e19: a group whose values reach
    about 4e18 in magnitude gets an infinite variance and comes out as 0 (then beta),
    values near 3e38 give NaN. `keras.layers.GroupNormalization` behaves the same;
    scale such inputs down before normalizing (the result does not depend on a common
    scale factor).

    Args:
        inputs: tensor of rank >= 2 whose axis 0 is the batch axis.
        groups: number of groups, an integer >= 1 that divides the size of `axis`,
            or -1 for one group per channel.
        axis: the channel axis (e.g. -1 for channels-last, 1 for channels-first).
        epsilon: finite number >= 0 added to the variance.
        gamma: optional per-channel scale, shape `(C,)`.
        beta: optional per-channel offset, shape `(C,)`.

    Returns:
        A float32 tensor with the shape of `inputs`.

    Reference:
        Yuxin Wu and Kaiming He, "Group Normalization", ECCV 2018
        (https://arxiv.org/abs/1803.08494), Figure 3.
    """
    inputs, axis, channels, groups, rank = _as_float32_checked(inputs, groups, axis, epsilon)
    shape = ops.shape(inputs)
    batch_size = shape[0]
    # The group statistics are assembled from per-channel ones rather than by reshaping
    # the activations to (..., G, C // G, ...) as Figure 3 does: every channel of a group
    # has as many elements, so the law of total variance gives, exactly,
    #   mean_g = mean over the group's channels of mean_c,
    #   var_g = mean over the group's channels of (var_c + (mean_c - mean_g) ** 2).
    # The big tensor is only viewed as (N, positions before C, C, positions after C) and
    # reduced over its positions, the same kind of reduction as batch norm's. On CPU the
    # layer is then 1.4-2.8x faster than through the (..., G, C // G, ...) view with XLA,
    # more without (benchmarks/README.md); there is no E[x^2] - E[x]^2 cancellation.
    positions_after = _product(shape[axis + 1 :])
    flat = ops.reshape(inputs, [batch_size, -1, channels, positions_after])
    channel_mean, channel_variance = ops.moments(flat, axes=[1, 3])
    grouped_shape = [batch_size, groups, channels // groups]
    channel_mean = ops.reshape(channel_mean, grouped_shape)
    channel_variance = ops.reshape(channel_variance, grouped_shape)
    mean = ops.mean(channel_mean, axis=2, keepdims=True)
    variance = ops.mean(channel_variance + ops.square(channel_mean - mean), axis=2, keepdims=True)
    statistics_shape = [batch_size] + [1] * (rank - 1)
    statistics_shape[axis] = channels
    mean = ops.reshape(ops.broadcast_to(mean, grouped_shape), statistics_shape)
    # Fold normalization and affine into one multiply-add over the big tensor:
    # y = x * (gamma / std) + (beta - mean * gamma / std).
    multiplier = ops.reshape(
        ops.broadcast_to(ops.rsqrt(variance + epsilon), grouped_shape), statistics_shape
    )
    affine_shape = [1] * rank
    affine_shape[axis] = channels
    if gamma is not None:
        multiplier = multiplier * ops.reshape(ops.cast(gamma, "float32"), affine_shape)
    offset = -mean * multiplier
    if beta is not None:
        offset = offset + ops.reshape(ops.cast(beta, "float32"), affine_shape)
    return inputs * multiplier + offset


def _product(sizes):
    """The product of a sequence of static (int) or dynamic (scalar tensor) sizes."""
    product = 1
    for size in sizes:
        product = product * size
    return product


def _as_float32_checked(inputs, groups, axis, epsilon):
    """(inputs in float32, channel axis, channels, groups, rank) after `_check_arguments`."""
    inputs = ops.cast(inputs, "float32")
    axis, channels, groups = _check_arguments(inputs.shape, groups, axis, epsilon)
    return inputs, axis, channels, groups, len(inputs.shape)


def _check_arguments(input_shape, groups, axis, epsilon):
    """Validates the arguments of the pure functions.

    Returns the channel axis as an index in [1, rank), the number of channels and the
    number of groups with -1 resolved.
    """
    check_groups_argument(groups)
    _check_axis_argument(axis)
    if not (is_finite_number(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0; received epsilon={epsilon!r}.")
    return check_grouping(input_shape, groups, axis)


def check_groups_argument(groups):
    # numbers.Integral admits NumPy integers; bool is an int subclass but never a count.
    if (
        isinstance(groups, bool)
        or not isinstance(groups, numbers.Integral)
        or groups == 0
        or groups < -1
    ):
        raise ValueError(
            f"groups must be a positive integer, or -1 for one group per channel; "
            f"received groups={groups!r}."
        )


def _check_axis_argument(axis):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(
            f"axis must be a single integer channel axis (e.g. -1 for channels-last, "
            f"1 for channels-first); received axis={axis!r}."
        )


def _check_channels_per_group_argument(channels_per_group):
    if (
        isinstance(channels_per_group, bool)
        or not isinstance(channels_per_group, numbers.Integral)
        or channels_per_group < 1
    ):
        raise ValueError(
            f"channels_per_group must be a positive integer (the number of channels in each "
            f"group); received channels_per_group={channels_per_group!r}."
        )


def _groups_from_channels_per_group(input_shape, channels_per_group, axis):
    """The number of groups of `channels_per_group` channels each for an input of shape
    `input_shape`, after checking that `axis` fits it and that the size divides C."""
    # One group per channel always fits: this checks the rank, the axis and the channel
    # count with the messages of `check_grouping`.
    _, channels, _ = check_grouping(input_shape, -1, axis)
    if channels % channels_per_group != 0:
        divisors = [d for d in range(1, channels + 1) if channels % d == 0]
        raise ValueError(
            f"channels_per_group={channels_per_group} does not divide the {channels} channels "
            f"of the input; choose one of {divisors}."
        )
    return channels // channels_per_group


def is_finite_number(value):
    """True for a finite Python or NumPy real number (a bool or string is not one)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_grouping(input_shape, groups, axis):
    """Checks that `axis` and `groups` fit an input of shape `input_shape`.

    Returns the channel axis as an index in [1, rank), the number of channels and the
    number of groups with -1 resolved.
    """
    input_shape = tuple(input_shape)
    rank = len(input_shape)
    if rank < 2:
        raise ValueError(
            f"Group normalization needs inputs of rank >= 2 (batch, ..., channels); "
            f"received an input of shape {input_shape}."
        )
    if not -rank <= axis < rank:
        raise ValueError(
            f"axis={axis} is out of range for an input of rank {rank} "
            f"(shape {input_shape}); use an axis in [{-rank}, {rank - 1}]."
        )
    if axis % rank == 0:
        raise ValueError(
            f"axis={axis} is the batch axis of an input of shape "
            f"{input_shape}; pass the channel axis instead (-1 or 1)."
        )
    channels = input_shape[axis]
    if channels is None:
        raise ValueError(
            f"The channel axis {axis} of the input must have a defined size; "
            f"received an input of shape {input_shape}."
        )
    resolved_groups = channels if groups == -1 else int(groups)
    if resolved_groups > channels:
        raise ValueError(
            f"groups={resolved_groups} is more than the {channels} channels of the input; "
            f"use at most {channels} groups (or -1 for one group per channel)."
        )
    if channels % resolved_groups != 0:
        divisors = [d for d in range(1, channels + 1) if channels % d == 0]
        raise ValueError(
            f"groups={resolved_groups} does not divide the {channels} channels of the input; "
            f"choose one of {divisors}."
        )
    return axis % rank, channels, resolved_groups


def check_layer_axis_and_epsilon(axis, epsilon):
    """Validates a normalization layer's `axis` (not the batch axis) and `epsilon` (> 0)."""
    _check_axis_argument(axis)
    # Axis 0 is the batch axis at every rank, so it can be refused before the input
    # is seen, as tensorflow-addons did (its tests expect construction to fail).
    if axis == 0:
        raise ValueError(
            "axis=0 is the batch axis, which cannot be the channel axis; pass the "
            "channel axis instead: -1 for channels-last inputs, 1 for channels-first."
        )
    # Zero is allowed by `group_normalize` but would divide by zero on a constant group.
    if not (is_finite_number(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive float; received epsilon={epsilon!r}.")


def check_input_rank(layer, input_shape):
    """The rank of a normalization layer's input; a ValueError naming the layer and the
    shape unless it is 2 to 5 (batch, ..., channels)."""
    rank = len(input_shape)
    if not 2 <= rank <= 5:
        raise ValueError(
            f"{layer.__class__.__name__} expects inputs of rank 2 to 5 (batch, ..., "
            f"channels); received an input of shape {tuple(input_shape)}."
        )
    return rank


def add_affine_weights(layer, channels):
    """Creates a normalization layer's per-channel `gamma` (if `layer.scale`) and `beta`
    (if `layer.center`) from its initializers, regularizers and constraints; float32
    variables read without autocasting, so the affine step runs in float32."""
    for name, wanted in (("gamma", layer.scale), ("beta", layer.center)):
        weight = None
        if wanted:
            weight = layer.add_weight(
                shape=(channels,),
                name=name,
                initializer=getattr(layer, f"{name}_initializer"),
                regularizer=getattr(layer, f"{name}_regularizer"),
                constraint=getattr(layer, f"{name}_constraint"),
                autocast=False,
            )
        setattr(layer, name, weight)


@keras.saving.register_keras_serializable(package="utils")
class GroupNormalization(keras.layers.Layer):
    """Group Normalization layer (Wu & He, 2018).

    Divides the channels into `groups` contiguous groups and normalizes each group of
    each sample by its own mean and variance, computed over the group's channels and all
    spatial positions. The output of a sample never depends on the other samples in the
    batch, so the layer behaves the same at every batch size and in training and
    inference. `groups=1` is the paper's Layer Normalization, `groups=-1` (one group per
    channel) is Instance Normalization.

    The grouping is given either by the number of groups (`groups`, the paper's G) or by
    their size (`channels_per_group`, as in the bottom half of the paper's Table 3), never
    both. With `channels_per_group` the number of groups is C // channels_per_group,
    resolved in `build` (and then read from the `groups` attribute):
    `channels_per_group=1` is Instance Normalization, `channels_per_group=C` Layer
    Normalization.

    Under a mixed-precision policy the statistics are computed in float32, the weights
    are float32 and the output has the layer's compute dtype. Inputs beyond about 4e18 in
    magnitude overflow the float32 variance (see `group_normalize`).

    Args:
        groups: number of groups. Must divide the number of channels; -1 means one group
            per channel. None (the default) means 32, the paper's choice, unless
            `channels_per_group` is given.
        axis: the channel axis, -1 (channels-last, default) or 1 (channels-first).
        epsilon: small float added to the variance, 1e-5 by default.
        center: if True, add the per-channel offset `beta`.
        scale: if True, multiply by the per-channel scale `gamma`.
        beta_initializer: initializer for `beta`, zeros by default.
        gamma_initializer: initializer for `gamma`, ones by default.
        beta_regularizer: optional regularizer for `beta`.
        gamma_regularizer: optional regularizer for `gamma`.
        beta_constraint: optional constraint for `beta`.
        gamma_constraint: optional constraint for `gamma`.
        channels_per_group: number of channels in each group, instead of `groups`: a
            positive integer that divides the number of channels. None (the default)
            uses `groups`; giving both is an error.
        **kwargs: base layer keyword arguments (e.g. `name`, `dtype`).

    Input shape:
        Any tensor of rank 2 to 5 with a defined channel dimension; batch and spatial
        sizes may be unknown.

    Output shape:
        Same as the input.

    Reference:
        Yuxin Wu and Kaiming He, "Group Normalization", ECCV 2018
        (https://arxiv.org/abs/1803.08494).
    """

    def __init__(
        self,
        groups=None,
        axis=-1,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        channels_per_group=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if groups is not None and channels_per_group is not None:
            raise ValueError(
                f"Pass either groups or channels_per_group, not both; received groups={groups!r} "
                f"and channels_per_group={channels_per_group!r}. groups fixes the number of "
                f"groups, channels_per_group their size (groups = channels // channels_per_group)."
            )
        if channels_per_group is not None:
            _check_channels_per_group_argument(channels_per_group)
        else:
            groups = DEFAULT_GROUPS if groups is None else groups
            check_groups_argument(groups)
        check_layer_axis_and_epsilon(axis, epsilon)
        # With channels_per_group, `groups` is resolved in `build` from the channel count.
        self.channels_per_group = None if channels_per_group is None else int(channels_per_group)
        self.groups = None if groups is None else int(groups)
        self.axis = int(axis)
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        # Inputs keep their dtype; the statistics are computed in float32 in `call`.
        self.autocast = False

    def build(self, input_shape):
        rank = check_input_rank(self, input_shape)
        if self.channels_per_group is not None:
            self.groups = _groups_from_channels_per_group(
                input_shape, self.channels_per_group, self.axis
            )
        _, channels, _ = check_grouping(input_shape, self.groups, self.axis)
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self.axis: channels})
        add_affine_weights(self, channels)

    def call(self, inputs):
        outputs = group_normalize(
            inputs,
            groups=self.groups,
            axis=self.axis,
            epsilon=self.epsilon,
            gamma=None if self.gamma is None else self.gamma.value,
            beta=None if self.beta is None else self.beta.value,
        )
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {
            # The argument as given: None when the groups follow from channels_per_group.
            "groups": None if self.channels_per_group is not None else self.groups,
            "channels_per_group": self.channels_per_group,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
        return {**super().get_config(), **config}


class _FixedGroupsNormalization(GroupNormalization):
    """A GroupNormalization whose number of groups is fixed by the subclass."""

    fixed_groups = None
    # The fixed grouping in words, and what to tell someone porting code, for the error
    # raised when `groups` is passed.
    grouping = None
    porting_note = ""

    def __init__(self, axis=-1, epsilon=1e-5, **kwargs):
        for argument in ("groups", "channels_per_group"):
            if argument in kwargs:
                porting_note = self.porting_note if argument == "groups" else ""
                raise ValueError(
                    f"{self.__class__.__name__} does not take `{argument}`: it always uses "
                    f"{self.grouping} (groups={self.fixed_groups}); received "
                    f"{argument}={kwargs[argument]!r}.{porting_note} Use GroupNormalization "
                    f"to choose the grouping."
                )
        super().__init__(groups=self.fixed_groups, axis=axis, epsilon=epsilon, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        del config["channels_per_group"]
        return config


@keras.saving.register_keras_serializable(package="utils")
class InstanceNormalization(_FixedGroupsNormalization):
    """Instance Normalization (Ulyanov et al., 2016): one group per channel.

    Each channel of each sample is normalized by its own mean and variance over the
    spatial positions, then scaled and shifted by per-channel `gamma` and `beta`.
    Equal to `GroupNormalization(groups=-1)` and to `channels_per_group=1`; takes the same
    arguments except `groups` and `channels_per_group`.

    Args: `axis` (-1, channels-last, the default, or 1) and `epsilon` (1e-5) as
    `GroupNormalization`; **kwargs: its `center`, `scale`, initializers, regularizers and
    constraints, and base layer keyword arguments.

    Reference:
        Dmitry Ulyanov, Andrea Vedaldi and Victor Lempitsky, "Instance Normalization:
        The Missing Ingredient for Fast Stylization", 2016
        (https://arxiv.org/abs/1607.08022); as defined in Wu & He, 2018, Figure 2.
    """

    fixed_groups = -1
    grouping = "one group per channel"
    porting_note = (
        " tensorflow-addons' InstanceNormalization ignored `groups` with a warning; "
        "remove the argument when porting."
    )


@keras.saving.register_keras_serializable(package="utils")
class LayerNormalization(_FixedGroupsNormalization):
    """Layer Normalization as the GN paper defines it: a single group.

    Each sample is normalized by one mean and variance over all its channels and spatial
    positions, then scaled and shifted per channel. This differs from
    `keras.layers.LayerNormalization`, which either normalizes over the channel axis
    alone (its default) or, given several axes, learns a gamma and beta per element.
    Equal to `GroupNormalization(groups=1)` and to `channels_per_group=C`; takes the same
    arguments except `groups` and `channels_per_group`.

    Args: those of `InstanceNormalization`.

    Reference:
        Jimmy Lei Ba, Jamie Ryan Kiros and Geoffrey E. Hinton, "Layer Normalization",
        2016 (https://arxiv.org/abs/1607.06450); as used in Wu & He, 2018, Table 1.
    """

    fixed_groups = 1
    grouping = "a single group"


def standardize_kernel(kernel, epsilon=1e-5, epsilon_inside_sqrt=True):
    """Standardizes a convolution kernel per output channel (Weight Standardization).

    Each output channel's weights, over its fan-in (kh, kw, c_in) for a Conv2D kernel of
    shape (kh, kw, c_in, c_out), are shifted to mean 0 and divided by their standard
    deviation (the biased one, over the fan-in):

        w_hat = (w - mean) / sqrt(var + epsilon)      (epsilon_inside_sqrt=True)
        w_hat = (w - mean) / (sqrt(var) + epsilon)    (epsilon_inside_sqrt=False)

    The second form is the original code's (Qiao et al.'s TensorFlow layer divides by
    `std + 1e-5`; their PyTorch layer does too, with the unbiased std). With
    epsilon inside the square root the result has variance var / (var + epsilon) rather
    than exactly 1: about 0.99 for a He-initialized 3x3x256 kernel at epsilon=1e-5.

    The arithmetic is done in float32 whatever the kernel dtype; the result is float32.

    Args:
        kernel: a kernel of rank >= 2 whose last axis is the output channels.
        epsilon: finite number >= 0; see the formulas above.
        epsilon_inside_sqrt: where epsilon goes, as above.

    Returns:
        A float32 tensor of the kernel's shape.

    Reference:
        Siyuan Qiao, Huiyu Wang, Chenxi Liu, Wei Shen and Alan Yuille, "Micro-Batch
        Training with Batch-Channel Normalization and Weight Standardization", 2019
        (https://arxiv.org/abs/1903.10520; first titled "Weight Standardization").
    """
    if not (is_finite_number(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0; received epsilon={epsilon!r}.")
    _check_epsilon_inside_sqrt(epsilon_inside_sqrt)
    kernel = ops.cast(kernel, "float32")
    if len(kernel.shape) < 2:
        raise ValueError(
            f"standardize_kernel needs a kernel of rank >= 2 (fan-in axes, then the output "
            f"channels); received a kernel of shape {tuple(kernel.shape)}."
        )
    fan_in_axes = list(range(len(kernel.shape) - 1))
    mean, variance = ops.moments(kernel, axes=fan_in_axes, keepdims=True)
    if epsilon_inside_sqrt:
        return (kernel - mean) * ops.rsqrt(variance + epsilon)
    return (kernel - mean) / (ops.sqrt(variance) + epsilon)


def _check_epsilon_inside_sqrt(epsilon_inside_sqrt):
    if not isinstance(epsilon_inside_sqrt, bool):
        raise ValueError(
            f"epsilon_inside_sqrt must be True (divide by sqrt(var + epsilon)) or False "
            f"(divide by sqrt(var) + epsilon, as the original WS code); received "
            f"epsilon_inside_sqrt={epsilon_inside_sqrt!r}."
        )


@keras.saving.register_keras_serializable(package="utils")
class WeightStandardizedConv2D(keras.layers.Conv2D):
    """A 2D convolution whose kernel is standardized per output channel (Qiao et al., 2019).

    Before each convolution the kernel, of shape (kh, kw, c_in, c_out), is standardized
    over the fan-in (kh, kw, c_in) of every output channel, with its biased variance:

        w_hat = (w - mean) / sqrt(var + epsilon)

    epsilon goes inside the square root. The original WS code added it outside, dividing
    by (std + epsilon); `epsilon_inside_sqrt=False` does that. The trainable variable
    stays the raw kernel (weight decay applies to it); only the convolution sees w_hat.
    WS is meant for convolutions followed by a normalization layer (GN or BN): the output
    scale is fixed by w_hat, not learned by the kernel.

    Under a mixed-precision policy the kernel is float32, standardized in float32 and
    cast to the compute dtype for the convolution.

    Args:
        filters: number of output channels.
        kernel_size: int or pair of ints, the height and width of the kernel.
        *args: the remaining positional arguments of `keras.layers.Conv2D` (strides, ...).
        epsilon: small positive float, 1e-5 by default; see above for where it goes.
        epsilon_inside_sqrt: True (default) divides by sqrt(var + epsilon), False by
            sqrt(var) + epsilon as the original code.
        **kwargs: the keyword arguments of `keras.layers.Conv2D` (padding, use_bias,
            kernel_initializer, ...) and base layer keyword arguments.

    Reference:
        Siyuan Qiao, Huiyu Wang, Chenxi Liu, Wei Shen and Alan Yuille, "Micro-Batch
        Training with Batch-Channel Normalization and Weight Standardization", 2019
        (https://arxiv.org/abs/1903.10520); code at
        https://github.com/joe-siyuan-qiao/WeightStandardization.
    """

    def __init__(
        self, filters, kernel_size, *args, epsilon=1e-5, epsilon_inside_sqrt=True, **kwargs
    ):
        super().__init__(filters, kernel_size, *args, **kwargs)
        if not (is_finite_number(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive float; received epsilon={epsilon!r}.")
        _check_epsilon_inside_sqrt(epsilon_inside_sqrt)
        self.epsilon = epsilon
        self.epsilon_inside_sqrt = epsilon_inside_sqrt

    def add_weight(self, *args, **kwargs):
        # Conv2D's `build` creates the kernel and bias here. Without autocasting they are
        # read in their float32 variable dtype under a mixed policy (Keras autocasts the
        # variables of a top-level call even for a layer with `autocast=False`), so the
        # kernel is standardized in float32 and only then cast in `call`.
        return super().add_weight(*args, **{**kwargs, "autocast": False})

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        kernel = standardize_kernel(self.kernel, self.epsilon, self.epsilon_inside_sqrt)
        outputs = self.convolution_op(inputs, ops.cast(kernel, self.compute_dtype))
        if self.use_bias:
            bias_shape = [1] * (self.rank + 2)
            bias_shape[-1 if self.data_format == "channels_last" else 1] = self.filters
            outputs = outputs + ops.reshape(ops.cast(self.bias, self.compute_dtype), bias_shape)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        config = {"epsilon": self.epsilon, "epsilon_inside_sqrt": self.epsilon_inside_sqrt}
        return {**super().get_config(), **config}
