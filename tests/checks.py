"""Checks and references the test files share: an independent NumPy GN, a drawn-PNG check,
and the random data and NumPy references of the layer tests."""

import re

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def reference_group_norm(x, groups, axis=-1, epsilon=1e-5, gamma=None, beta=None):
    """The paper's formula, sample by sample and group by group, in float64."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 1)  # -> (N, C, ...)
    channels = x.shape[1]
    per_group = channels // groups
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for g in range(groups):
            block = x[n, g * per_group : (g + 1) * per_group]
            out[n, g * per_group : (g + 1) * per_group] = (block - block.mean()) / np.sqrt(
                block.var() + epsilon
            )
    affine_shape = (1, channels) + (1,) * (x.ndim - 2)
    if gamma is not None:
        out = out * np.reshape(gamma, affine_shape)
    if beta is not None:
        out = out + np.reshape(beta, affine_shape)
    return np.moveaxis(out, 1, axis)


def assert_png(path, *, minimum_bytes=2_000):
    """`path` is a PNG file with something drawn in it."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > minimum_bytes, (
        f"{path} is not a drawn PNG"
    )


# Random data and NumPy references of the layer tests (tests/test_layers.py,
# tests/test_mixtures.py and the backend-agnostic tests/test_layers_any_backend.py).


def channels_first(shape):
    """A channels-last shape with its channel count moved to axis 1."""
    shape = list(shape)
    shape.insert(1, shape.pop())
    return tuple(shape)


def random_inputs(shape, axis, seed=0):
    """Float32 activations of `shape` (channels last) and per-channel gamma and beta; for
    axis=1 the channel count is moved to axis 1 (channels-first)."""
    rng = np.random.default_rng(seed)
    if axis == 1:
        shape = channels_first(shape)
    x = rng.normal(5, 10, size=shape).astype(np.float32)
    channels = shape[axis]
    gamma = rng.normal(1, 0.5, size=channels).astype(np.float32)
    beta = rng.normal(0, 0.5, size=channels).astype(np.float32)
    return x, gamma, beta


def random_kernel(shape, seed=0, mean=0.3, std=0.05):
    """A kernel whose output channels have different means and scales."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 2, size=shape[-1])
    return (mean + std * scales * rng.normal(size=shape)).astype(np.float32)


def reference_standardized_kernel(kernel, epsilon=1e-5, epsilon_inside_sqrt=True):
    """Each output channel (last axis) of `kernel` standardized over its fan-in, in float64
    NumPy, one output channel at a time."""
    kernel = np.asarray(kernel, np.float64)
    out = np.empty_like(kernel)
    for o in range(kernel.shape[-1]):
        w = kernel[..., o]
        std = np.sqrt(w.var() + epsilon) if epsilon_inside_sqrt else np.sqrt(w.var()) + epsilon
        out[..., o] = (w - w.mean()) / std
    return out


def ws_conv(kernel, bias=None, **options):
    """A built WeightStandardizedConv2D holding `kernel` (and `bias`)."""
    # Imported here so that the tests that only draw PNGs do not import Keras.
    from utils.layers import WeightStandardizedConv2D

    layer = WeightStandardizedConv2D(
        kernel.shape[-1], kernel.shape[:2], use_bias=bias is not None, **options
    )
    layer.build((None, None, None, kernel.shape[2] * options.get("groups", 1)))
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    return layer


def random_scaled_input(shape, seed=0):
    """Float32 activations far from zero mean whose channels (last axis) have different
    scales, so that GN and BN of them differ."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 4, size=shape[-1])
    return (rng.normal(3, 1, size=shape) * scales).astype(np.float32)


def reference_batch_statistics(x):
    """Per-channel mean and biased variance over every axis but the last (channels-last)."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    return x.mean(axis=axes), x.var(axis=axes)


def reference_batch_norm(x, mean, variance, epsilon=1e-5):
    return (np.asarray(x, np.float64) - mean) / np.sqrt(variance + epsilon)


def reference_mixture(layer_class, x, gamma, beta, logit, *, groups, moving=None, epsilon=1e-5):
    """A GN+BN mixture layer's output for channels-last `x`, and the statistics its BN
    branch used, in float64.

    `layer_class` is one of utils.mixtures's layers, told apart by name so that this module
    imports no Keras. `moving=None` is training (batch statistics); a (mean, variance)
    pair is inference.
    """
    x = np.asarray(x, np.float64)

    def batch_norm(values):
        mean, variance = reference_batch_statistics(values) if moving is None else moving
        return reference_batch_norm(values, mean, variance, epsilon), (mean, variance)

    def group_norm(values):
        return reference_group_norm(values, groups, epsilon=epsilon)

    order = layer_class.__name__
    if order == "GNPlusParallel":
        group_normalized = group_norm(x)
        batch_normalized, statistics = batch_norm(x)
    elif order == "GNPlusGNFirst":
        group_normalized = group_norm(x)
        batch_normalized, statistics = batch_norm(group_normalized)
    elif order == "GNPlusBNFirst":
        batch_normalized, statistics = batch_norm(x)
        group_normalized = group_norm(batch_normalized)
    else:
        raise ValueError(f"{order} is not a GN+BN mixture layer")
    weight = 1 / (1 + np.exp(-logit))
    mixed = weight * group_normalized + (1 - weight) * batch_normalized
    return mixed * gamma + beta, statistics


def random_mixture_layer(layer_class, shape, groups, seed=1, **options):
    """A mixture layer built for `shape` with random gamma, beta and lambda; returns it and
    the three values."""
    rng = np.random.default_rng(seed)
    layer = layer_class(groups=groups, **options)
    layer.build(shape)
    channels = layer.gamma.shape[0]
    gamma = rng.normal(1, 0.5, size=channels).astype(np.float32)
    beta = rng.normal(0, 0.5, size=channels).astype(np.float32)
    logit = np.float32(rng.normal(0, 1))
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    layer.mixing_logit.assign(logit)
    return layer, gamma, beta, float(logit)


# A decimal number as a reading quotes one: "+2.4", "-0.0277", "94.6".
_DECIMAL = re.compile(r"(?<![\w.])[+-]?\d+\.\d+(?![\w.]*\d)")


def unbacked_numbers(reading, generated):
    """The decimals of a reading that no number of the generated text gives, signs aside,
    once rounded to the reading's digits (a reading may round a table's 123.683 to 123.7)."""
    shown = [number.lstrip("+-") for number in _DECIMAL.findall(generated)]

    def backed(number):
        digits = len(number.split(".")[1])
        return any(
            f"{float(value):.{digits}f}" == number
            for value in shown
            if len(value.split(".")[1]) >= digits
        )

    return [number for number in _DECIMAL.findall(reading) if not backed(number.lstrip("+-"))]
