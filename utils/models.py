"""The networks, built with the normalizations of the registry (utils.norms): the small CNN, ResNet-10 and ResNet-50.

`small_cnn` is the Tiny ImageNet CNN of the 2023 course report; `resnet50` is the
paper's ResNet-50 for users with a GPU. Both take pixel values in [0, 255] and rescale
them by 1/255 themselves: pixel scaling lives in the model, nowhere else. Either can
standardize its convolution kernels (`weight_standardization=True`), with any norm.
"""

import importlib

import keras
from keras import layers

from utils import norms
from utils.distortion import OutputNoise
from utils.layers import WeightStandardizedConv2D
from utils.norms import GROUPED
from utils.norms import MIXTURES
from utils.norms import NORMALIZATIONS
from utils.norms import SHORT_NAMES
from utils.norms import canonical_norm

__all__ = [
    "NORMALIZATIONS",
    "SHORT_NAMES",
    "canonical_norm",
    "make_norm",
    "small_cnn",
    "resnet10",
    "resnet50",
    "small_resnet",
]

# The paper adds epsilon = 1e-5 to the variance; BN's moving averages use momentum 0.9,
# as in the paper's reference implementation (Keras's 0.99 lags too much on short runs).
EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9
# Batch Renormalization as the GN paper compares it (Section 5.1): r clipped to
# [1 / 1.5, 1.5] and d to [-0.5, 0.5] from the first step (no warm-up: Keras's bounds are
# fixed). "rmin" is given because Keras reads a missing one as 0, not 1 / rmax. The r/d
# statistics use BN's momentum too, so Keras's two pairs of moving statistics coincide
# and the layer is exactly Ioffe's Algorithm 1 (tests/test_renorm.py).
BATCH_RENORM_CLIPPING = {"rmin": 1 / 1.5, "rmax": 1.5, "dmax": 0.5}


def make_norm(name, /, **kwargs):
    """Creates the normalization layer registered under `name`.

    Args:
        name: "batch", "layer", "instance", "group", "batch_renorm", "gn_plus_parallel",
            "gn_plus_gn_first", "gn_plus_bn_first" or "none" (or their short names bn,
            ln, in, gn, brn, ...). "layer" is the paper's Layer Norm: statistics over
            (H, W, C) with per-channel gamma and beta. "batch_renorm" is Keras's
            `BatchNormalization(renorm=True)` with `BATCH_RENORM_CLIPPING`. The
            "gn_plus_*" layers are utils.mixtures's GN+BN mixtures (32 groups, BN
            momentum 0.9 by default).
        **kwargs: passed to the layer (`name` included: the first argument is
            positional-only), e.g. `groups` or `channels_per_group` (not both) for
            "group" (`groups` for the mixtures), `synchronized=True`
            for "batch" (BN statistics across devices), `gamma_initializer`, regularizers,
            `name`. epsilon defaults to 1e-5 for all four.

    Returns:
        A Keras layer ("none" gives an identity layer).
    """
    row = norms.spec(name)
    key = row.name
    options = (
        ("groups", GROUPED, "group normalization and the GN+BN mixtures"),
        ("channels_per_group", ("group",), "group normalization"),
    )
    for option, allowed, which in options:
        if option in kwargs and key not in allowed:
            raise ValueError(
                f"{option}={kwargs[option]!r} applies only to {which}; remove it for normalization {name!r}."
            )
    if row.layer is None:
        return layers.Identity(name=kwargs.get("name"))
    kwargs.setdefault("epsilon", EPSILON)
    if key in ("batch", "batch_renorm", *MIXTURES):
        kwargs.setdefault("momentum", BATCH_NORM_MOMENTUM)
    kwargs.update(dict(row.defaults))
    if key == "batch_renorm":
        kwargs.setdefault("renorm_clipping", dict(BATCH_RENORM_CLIPPING))
        kwargs.setdefault("renorm_momentum", kwargs["momentum"])
    module, _, class_name = row.layer.partition(":")
    return getattr(importlib.import_module(module), class_name)(**kwargs)


def _l2(weight_decay):
    # Keras's L2(l) adds l * sum(w**2) to the loss, whose gradient is 2 * l * w; the
    # paper's weight decay adds weight_decay * w to the gradient, hence the half.
    return keras.regularizers.L2(weight_decay / 2) if weight_decay else None


def _norm_block(x, norm, weight_decay, norm_kwargs, name, noise=None, **extra):
    """Normalization of `x` with weight decay on gamma and beta (as in the paper).

    `norm` is a registry name or a callable taking layer keyword arguments and returning
    a layer (e.g. to compare another implementation inside the same network). `noise`,
    a dict of `OutputNoise` options (mean, stddev, groups), adds Gaussian noise to the
    output while training.
    """
    if callable(norm) or canonical_norm(norm) != "none":
        extra = {
            **extra,
            "gamma_regularizer": _l2(weight_decay),
            "beta_regularizer": _l2(weight_decay),
        }
    if callable(norm):
        x = norm(name=name, **norm_kwargs, **extra)(x)
    else:
        x = make_norm(norm, name=name, **norm_kwargs, **extra)(x)
    if noise is not None:
        x = OutputNoise(**noise, name=f"{name}_noise")(x)
    return x


def _model_suffix(norm, weight_standardization=False):
    suffix = "custom" if callable(norm) else SHORT_NAMES[canonical_norm(norm)]
    return f"{suffix}_ws" if weight_standardization else suffix


def _conv_class(weight_standardization):
    """Conv2D, or WeightStandardizedConv2D for `weight_standardization=True`."""
    if not isinstance(weight_standardization, bool):
        raise ValueError(
            f"weight_standardization must be True or False; received "
            f"weight_standardization={weight_standardization!r}."
        )
    return WeightStandardizedConv2D if weight_standardization else layers.Conv2D


def small_cnn(
    norm="group",
    num_classes=200,
    input_shape=(64, 64, 3),
    *,
    second_kernel_size=1,
    weight_decay=0.0,
    weight_standardization=False,
    norm_noise=None,
    **norm_kwargs,
):
    """The small Tiny ImageNet CNN of the 2023 course report.

    Conv 7x7/2 'valid' (64) -> norm -> ReLU -> max-pool /2 'same' -> conv (256) -> norm
    -> ReLU -> global average pool -> dense 128 + ReLU -> dense `num_classes` + softmax.
    For 64x64 inputs the outputs are 29x29x64, 15x15x64, 15x15x256, 256, 128, classes.

    Args:
        norm: normalization name (see `make_norm`), or a callable that takes layer
            keyword arguments (`name`, regularizers, `**norm_kwargs`) and returns a layer.
        num_classes: number of classes.
        input_shape: (height, width, channels) of the input images.
        second_kernel_size: kernel size of the second conv; the report's code used 1.
        weight_decay: coupled L2 weight decay on every weight, gamma and beta included:
            each gradient gets `weight_decay * w` added (the paper's rule).
        weight_standardization: if True, both convolutions are
            `WeightStandardizedConv2D` (Weight Standardization, Qiao et al. 2019); the
            dense layers are unchanged. The model's name then ends in "_ws".
        norm_noise: None, or the options of `utils.distortion.OutputNoise` (e.g.
            `dict(mean=1e-3, stddev=1.001, groups=32)`, the 2021 study's): Gaussian
            noise added to both normalizations' outputs while training.
        **norm_kwargs: options for the normalization layers, e.g. `groups=32` or
            `channels_per_group=16`.

    Returns:
        A `keras.Model` taking pixel values in [0, 255] and returning float32 class
        probabilities.
    """
    key = norm if callable(norm) else canonical_norm(norm)
    conv = _conv_class(weight_standardization)
    # A conv bias is redundant before a normalization that re-centres its input.
    use_bias = key == "none"
    conv_options = dict(
        kernel_initializer=keras.initializers.GlorotNormal(),
        kernel_regularizer=_l2(weight_decay),
        bias_regularizer=_l2(weight_decay),
        use_bias=use_bias,
    )
    dense_options = dict(
        kernel_initializer="he_normal",
        kernel_regularizer=_l2(weight_decay),
        bias_regularizer=_l2(weight_decay),
    )
    inputs = keras.Input(input_shape, name="pixels")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv(64, 7, strides=2, padding="valid", name="conv1", **conv_options)(x)
    x = _norm_block(x, key, weight_decay, norm_kwargs, name="norm1", noise=norm_noise)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(strides=2, padding="same", name="pool1")(x)
    x = conv(256, second_kernel_size, padding="same", name="conv2", **conv_options)(x)
    x = _norm_block(x, key, weight_decay, norm_kwargs, name="norm2", noise=norm_noise)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D(name="pool2")(x)
    x = layers.Dense(128, activation="relu", name="dense1", **dense_options)(x)
    x = layers.Dense(num_classes, name="logits", **dense_options)(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(
        inputs, outputs, name=f"small_cnn_{_model_suffix(norm, weight_standardization)}"
    )


def _residual_block(
    x, convolutions, stride, norm, weight_decay, norm_kwargs, name, conv=layers.Conv2D
):
    """A ResNet v1 residual block: each convolution followed by a normalization, ReLU
    between them and after the sum, a projection (1x1 conv and normalization) on the
    shortcut when the shape changes.

    Args:
        convolutions: (filters, kernel size) of each convolution, in order; the stride
            goes on the first convolution with a kernel larger than 1, as in the paper's
            code (its 3x3 conv).
        stride: the block's stride.
        conv: the convolution class (Conv2D or WeightStandardizedConv2D).
    """
    conv_options = dict(
        use_bias=False,
        kernel_initializer=keras.initializers.HeNormal(),
        kernel_regularizer=_l2(weight_decay),
    )
    filters_out = convolutions[-1][0]
    shortcut = x
    if stride != 1 or x.shape[-1] != filters_out:
        shortcut = conv(filters_out, 1, strides=stride, name=f"{name}_proj", **conv_options)(x)
        shortcut = _norm_block(shortcut, norm, weight_decay, norm_kwargs, name=f"{name}_proj_norm")
    strided = next(index for index, (_, kernel) in enumerate(convolutions) if kernel > 1)
    y = x
    for index, (filters, kernel) in enumerate(convolutions, start=1):
        y = conv(
            filters,
            kernel,
            strides=stride if index - 1 == strided else 1,
            padding="same",
            name=f"{name}_conv{index}",
            **conv_options,
        )(y)
        if index < len(convolutions):
            y = _norm_block(y, norm, weight_decay, norm_kwargs, name=f"{name}_norm{index}")
            y = layers.ReLU(name=f"{name}_relu{index}")(y)
    # The paper starts the last gamma of each block at 0, so each block begins as an
    # identity map and deep networks train from the first step.
    zero_gamma = {} if norm == "none" else {"gamma_initializer": "zeros"}
    y = _norm_block(
        y, norm, weight_decay, norm_kwargs, name=f"{name}_norm{len(convolutions)}", **zero_gamma
    )
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _resnet(x, stages, norm, weight_decay, norm_kwargs, conv):
    """The residual stages and the classifier's pooling: `stages` holds, per stage, the
    block's convolutions (see `_residual_block`) and how many blocks; every stage after
    the first halves the resolution in its first block."""
    for stage, (convolutions, blocks) in enumerate(stages, start=1):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 1 else 1
            x = _residual_block(
                x,
                convolutions,
                stride,
                norm,
                weight_decay,
                norm_kwargs,
                name=f"stage{stage}_block{block + 1}",
                conv=conv,
            )
    return layers.GlobalAveragePooling2D(name="pool")(x)


def _stem(inputs, kernel_size, norm, weight_decay, norm_kwargs, conv):
    """Rescaling, a strided convolution of 64 filters, its normalization, ReLU and a
    strided 3x3 max-pool: a quarter of the input's resolution."""
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv(
        64,
        kernel_size,
        strides=2,
        padding="same",
        use_bias=False,
        name="stem_conv",
        kernel_initializer=keras.initializers.HeNormal(),
        kernel_regularizer=_l2(weight_decay),
    )(x)
    x = _norm_block(x, norm, weight_decay, norm_kwargs, name="stem_norm")
    x = layers.ReLU(name="stem_relu")(x)
    return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def _classifier(x, num_classes, weight_decay):
    x = layers.Dense(
        num_classes,
        name="logits",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        kernel_regularizer=_l2(weight_decay),
        bias_regularizer=_l2(weight_decay),
    )(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def resnet50(
    norm="group",
    num_classes=1000,
    input_shape=(224, 224, 3),
    *,
    weight_decay=0.0,
    weight_standardization=False,
    **norm_kwargs,
):
    """The paper's ResNet-50 (He et al., 2016) with a choice of normalization.

    Bottleneck blocks [3, 4, 6, 3] with 64, 128, 256, 512 filters, He-initialized convs
    without biases, and the last normalization of every residual block starting with
    gamma = 0, as in the paper's setup.

    Args:
        norm: normalization name (see `make_norm`).
        num_classes: number of classes.
        input_shape: (height, width, channels) of the input images.
        weight_decay: coupled L2 weight decay on every weight, gamma and beta included.
        weight_standardization: if True, every convolution (stem, blocks, projections)
            is a `WeightStandardizedConv2D`, as in the GN+WS ResNets of Qiao et al.
            (2019); the classifier is unchanged. The model's name then ends in "_ws".
        **norm_kwargs: options for the normalization layers, e.g. `groups=32`.

    Returns:
        A `keras.Model` taking pixel values in [0, 255] and returning float32 class
        probabilities.

    Reference:
        Kaiming He et al., "Deep Residual Learning for Image Recognition", CVPR 2016;
        Wu & He, "Group Normalization", ECCV 2018, Section 5.
    """
    key = norm if callable(norm) else canonical_norm(norm)
    conv = _conv_class(weight_standardization)
    inputs = keras.Input(input_shape, name="pixels")
    x = _stem(inputs, 7, key, weight_decay, norm_kwargs, conv)
    stages = [
        ([(filters, 1), (filters, 3), (4 * filters, 1)], blocks)
        for filters, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3))
    ]
    x = _resnet(x, stages, key, weight_decay, norm_kwargs, conv)
    outputs = _classifier(x, num_classes, weight_decay)
    return keras.Model(
        inputs, outputs, name=f"resnet50_{_model_suffix(norm, weight_standardization)}"
    )


def small_resnet(
    norm="group",
    num_classes=200,
    input_shape=(64, 64, 3),
    *,
    widths=(64, 128, 256, 512),
    blocks=(1, 1, 1, 1),
    weight_decay=0.0,
    weight_standardization=False,
    **norm_kwargs,
):
    """A residual network for 64x64 images that a CPU trains: basic blocks in four stages.

    A 3x3 stride-2 stem convolution of 64 filters and a stride-2 max-pool (64x64 images
    become 16x16), then four stages of basic blocks (two 3x3 convolutions) of `widths`
    filters, each stage after the first halving the resolution (16, 8, 4, 2), global
    average pooling and a linear classifier. As in the paper's ResNet-50: post-activation
    (v1) blocks, He-initialized convolutions without biases, projection shortcuts, and
    the last normalization of every block starting with gamma = 0. Every normalized layer
    has a multiple of 64 channels, so G = 32 fits everywhere.

    Args:
        norm: normalization name (see `make_norm`).
        num_classes: number of classes.
        input_shape: (height, width, channels) of the input images.
        widths: the filters of each stage.
        blocks: the basic blocks of each stage; (1, 1, 1, 1) is a ResNet-10, (2, 2, 2, 2)
            a ResNet-18.
        weight_decay: coupled L2 weight decay on every weight, gamma and beta included.
        weight_standardization: if True, every convolution is a `WeightStandardizedConv2D`.
        **norm_kwargs: options for the normalization layers, e.g. `groups=32`.

    Returns:
        A `keras.Model` taking pixel values in [0, 255] and returning float32 class
        probabilities.

    Reference:
        Kaiming He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
        (basic blocks, Table 1); Wu & He, "Group Normalization", ECCV 2018, Section 5.
    """
    if len(widths) != len(blocks) or not widths:
        raise ValueError(
            f"widths={widths!r} and blocks={blocks!r} must give one width and block count per stage."
        )
    key = norm if callable(norm) else canonical_norm(norm)
    conv = _conv_class(weight_standardization)
    inputs = keras.Input(input_shape, name="pixels")
    x = _stem(inputs, 3, key, weight_decay, norm_kwargs, conv)
    stages = [([(width, 3), (width, 3)], count) for width, count in zip(widths, blocks)]
    x = _resnet(x, stages, key, weight_decay, norm_kwargs, conv)
    outputs = _classifier(x, num_classes, weight_decay)
    depth = 2 + 2 * sum(blocks)
    return keras.Model(
        inputs, outputs, name=f"resnet{depth}_{_model_suffix(norm, weight_standardization)}"
    )


# ResNet-10's stage widths: the narrowest that keep 64 channels (G = 32 with two channels
# per group) in every normalized layer, so that two CPU cores train the depth
# experiment's grid (benchmarks/model_benchmark.py measures it beside the small CNN).
RESNET10_WIDTHS = (64, 64, 128, 256)


def resnet10(norm="group", num_classes=200, input_shape=(64, 64, 3), **options):
    """`small_resnet` with one basic block per stage of `RESNET10_WIDTHS` filters: ten
    weighted layers (stem, eight 3x3 convolutions, classifier), the depth experiment's
    network. Arguments as `small_resnet` (without `widths` and `blocks`)."""
    return small_resnet(
        norm, num_classes, input_shape, widths=RESNET10_WIDTHS, blocks=(1, 1, 1, 1), **options
    )
