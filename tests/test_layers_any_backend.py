"""The layers, the GN+BN mixtures and the small CNN on whatever backend Keras runs.

Only NumPy and `keras` are used here, never TensorFlow directly, so that the module runs
unchanged under `KERAS_BACKEND=jax` and `torch` (tests/test_backends.py does that in a
subprocess); in the normal suite it runs on TensorFlow. The expected values come from the
float64 NumPy references of tests/checks.py. It compiles and fits models on every
backend, so it is part of `make test`, not `make test-fast` (which has the TensorFlow
checks of tests/test_layers.py and tests/test_mixtures.py).
"""

import os

import numpy as np
import pytest

import keras
from keras import ops
from keras.backend import standardize_dtype
from tests import checks
from utils.layers import GroupNormalization
from utils.layers import InstanceNormalization
from utils.layers import LayerNormalization
from utils.layers import WeightStandardizedConv2D
from utils.layers import group_normalize
from utils.layers import group_normalize_reference
from utils.layers import standardize_kernel
from utils.mixtures import MIXTURE_LAYERS
from utils.mixtures import GNPlusBNFirst
from utils.mixtures import GNPlusGNFirst
from utils.models import small_cnn

pytestmark = pytest.mark.slow

MOMENTUM = 0.9
# The top-level package of the tensors each backend's ops return.
TENSOR_PACKAGES = {"tensorflow": "tensorflow", "jax": "jaxlib", "torch": "torch", "numpy": "numpy"}


def to_numpy(tensor):
    """A tensor of any backend and dtype (bfloat16 included) as a float32 NumPy array."""
    return ops.convert_to_numpy(ops.cast(tensor, "float32"))


def assert_close(actual, expected, tolerance=1e-5, message=""):
    np.testing.assert_allclose(
        to_numpy(actual), expected, rtol=tolerance, atol=tolerance, err_msg=message
    )


def affine(gamma, beta):
    """The keyword arguments that give a normalization layer this gamma and beta."""
    constant = keras.initializers.Constant
    return dict(gamma_initializer=constant(gamma), beta_initializer=constant(beta))


def test_keras_runs_on_the_backend_it_was_asked_for(record_testsuite_property):
    backend = keras.backend.backend()
    # tests/test_backends.py reads this property from the JUnit report of its subprocess.
    record_testsuite_property("keras_backend", backend)
    assert backend == os.environ["KERAS_BACKEND"]
    assert type(ops.ones(2)).__module__.startswith(TENSOR_PACKAGES[backend])


# Numerics of GN, its special cases and Weight Standardization.

# (channels-last shape, groups): ranks 2 to 5; every channel count is even.
GROUPING_CASES = [((4, 8), 2), ((3, 7, 12), 3), ((2, 5, 6, 16), 4), ((2, 3, 4, 2, 8), 8)]


def normalizations(groups, channels, axis, gamma, beta, rank):
    """Every way utils.layers normalizes, as {name: (function of x, the groups it uses)}."""
    options = dict(axis=axis, **affine(gamma, beta))
    functions = dict(axis=axis, gamma=gamma, beta=beta)
    computations = {
        "GroupNormalization(groups)": (GroupNormalization(groups=groups, **options), groups),
        "GroupNormalization(channels_per_group=2)": (
            GroupNormalization(channels_per_group=2, **options),
            channels // 2,
        ),
        "LayerNormalization": (LayerNormalization(**options), 1),
        "group_normalize": (lambda x: group_normalize(x, groups, **functions), groups),
        "group_normalize_reference": (
            lambda x: group_normalize_reference(x, groups, **functions),
            groups,
        ),
    }
    # At rank 2 a channel is a single element, which instance norm maps to exactly 0: the
    # fast kernel's folded multiply-add reaches that only to about |x| / sqrt(epsilon)
    # roundings.
    if rank > 2:
        computations["InstanceNormalization"] = (InstanceNormalization(**options), channels)
    return computations


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("shape, groups", GROUPING_CASES)
def test_normalizations_match_the_numpy_reference(shape, groups, axis):
    x, gamma, beta = checks.random_inputs(shape, axis)
    computations = normalizations(groups, shape[-1], axis, gamma, beta, len(shape))
    for name, (normalize, reference_groups) in computations.items():
        expected = checks.reference_group_norm(x, reference_groups, axis, gamma=gamma, beta=beta)
        assert_close(normalize(x), expected, message=name)


def reference_conv2d(x, kernel, bias, stride):
    """A 'valid' channels-last 2D convolution in float64 NumPy."""
    windows = np.lib.stride_tricks.sliding_window_view(
        np.asarray(x, np.float64), kernel.shape[:2], axis=(1, 2)
    )
    windows = windows[:, ::stride, ::stride]  # (N, H', W', C, kh, kw)
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias


@pytest.mark.parametrize(
    "stride, standardization", [(1, dict()), (2, dict(epsilon=1e-3, epsilon_inside_sqrt=False))]
)
def test_ws_conv_is_a_convolution_with_the_numpy_standardized_kernel(stride, standardization):
    rng = np.random.default_rng(9)
    kernel = checks.random_kernel((3, 3, 4, 6))
    bias = rng.normal(size=6).astype(np.float32)
    x = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    standardized = checks.reference_standardized_kernel(kernel, **standardization)
    assert_close(standardize_kernel(kernel, **standardization), standardized)
    layer = checks.ws_conv(kernel, bias, strides=stride, **standardization)
    assert_close(layer(x), reference_conv2d(x, standardized, bias, stride), tolerance=1e-4)
    # The trainable variable stays the raw kernel.
    np.testing.assert_array_equal(to_numpy(layer.kernel), kernel)


# The GN+BN mixtures: training, the moving statistics, inference.

MIXTURE_SHAPE = (3, 4, 5, 8)  # N, H, W, C
MIXTURE_GROUPS = 4


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("layer_class", MIXTURE_LAYERS)
def test_mixture_training_and_inference_match_numpy(layer_class, axis):
    shape = MIXTURE_SHAPE if axis == -1 else checks.channels_first(MIXTURE_SHAPE)
    layer, gamma, beta, logit = checks.random_mixture_layer(
        layer_class, shape, MIXTURE_GROUPS, axis=axis
    )

    def run(x, training):
        # The reference is channels-last: the layer sees the transposed input if axis=1.
        if axis == 1:
            return np.moveaxis(to_numpy(layer(np.moveaxis(x, -1, 1), training=training)), 1, -1)
        return to_numpy(layer(x, training=training))

    def reference(x, moving=None):
        return checks.reference_mixture(
            layer_class, x, gamma, beta, logit, groups=MIXTURE_GROUPS, moving=moving
        )

    x = checks.random_scaled_input(MIXTURE_SHAPE, seed=0)
    expected, (mean, variance) = reference(x)
    assert_close(run(x, training=True), expected)
    moving = (1 - MOMENTUM) * mean, MOMENTUM + (1 - MOMENTUM) * variance
    assert_close(layer.moving_mean, moving[0])
    assert_close(layer.moving_variance, moving[1])
    # Inference uses the moving statistics and leaves them as they are.
    other = checks.random_scaled_input(MIXTURE_SHAPE, seed=1)
    assert_close(run(other, training=False), reference(other, moving)[0])
    assert_close(layer.moving_mean, moving[0])


# Gradients, through one compiled training step.

GRADIENT_LAYERS = {
    "group": lambda: GroupNormalization(groups=2),
    "instance": InstanceNormalization,
    "layer": LayerNormalization,
    **{
        layer_class.__name__: lambda layer_class=layer_class: layer_class(groups=2)
        for layer_class in MIXTURE_LAYERS
    },
}


def reference_training_output(layer, inputs, weights):
    """`layer`'s training output for channels-last `inputs`, in float64 NumPy, given its
    weights by name."""
    gamma, beta = weights["gamma"], weights["beta"]
    if isinstance(layer, MIXTURE_LAYERS):
        return checks.reference_mixture(
            type(layer), inputs, gamma, beta, weights["mixing_logit"], groups=layer.groups
        )[0]
    groups = inputs.shape[-1] if layer.groups == -1 else layer.groups
    return checks.reference_group_norm(inputs, groups, gamma=gamma, beta=beta)


def finite_difference_gradients(loss, weights, step=1e-6):
    """The central-difference gradient of `loss(weights)` for each float64 array of the
    dict `weights`."""
    gradients = {}
    for name, value in weights.items():
        gradient = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {key: array.copy() for key, array in weights.items()}
            shifted[name][index] = value[index] + step
            above = loss(shifted)
            shifted[name][index] = value[index] - step
            gradient[index] = (above - loss(shifted)) / (2 * step)
        gradients[name] = gradient
    return gradients


@pytest.mark.parametrize("make_layer", GRADIENT_LAYERS.values(), ids=GRADIENT_LAYERS.keys())
def test_one_fit_step_follows_the_numpy_gradient(make_layer):
    # A Dense layer mixes the channels before the normalization, so that its kernel's
    # gradient is the gradient of the loss with respect to the normalization's input.
    rng = np.random.default_rng(15)
    shape = (2, 3, 3, 8)
    x = rng.normal(1, 2, size=shape).astype(np.float32)
    target = rng.normal(size=shape).astype(np.float32)
    mixing = (np.eye(8) + 0.3 * rng.normal(size=(8, 8))).astype(np.float32)
    norm = make_layer()
    inputs = keras.Input(shape[1:])
    outputs = norm(
        keras.layers.Dense(
            8, use_bias=False, kernel_initializer=keras.initializers.Constant(mixing), name="mixing"
        )(inputs)
    )
    model = keras.Model(inputs, outputs)
    learning_rate = 0.5
    model.compile(keras.optimizers.SGD(learning_rate), loss="mean_squared_error")
    norm.gamma.assign(rng.normal(1, 0.3, size=8))
    norm.beta.assign(rng.normal(0, 0.3, size=8))
    before = {
        weight.name: to_numpy(weight).astype(np.float64) for weight in model.trainable_weights
    }
    assert set(before) >= {"kernel", "gamma", "beta"}

    def loss(weights):
        outputs = reference_training_output(norm, x @ weights["kernel"], weights)
        return np.mean((outputs - target) ** 2)

    expected = finite_difference_gradients(loss, before)
    history = model.fit(x, target, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss(before), rel=1e-4)
    scale = max(np.abs(gradient).max() for gradient in expected.values())
    for weight in model.trainable_weights:
        gradient = (before[weight.name] - to_numpy(weight)) / learning_rate
        np.testing.assert_allclose(
            gradient, expected[weight.name], rtol=1e-3, atol=1e-3 * scale, err_msg=weight.name
        )
    if isinstance(norm, MIXTURE_LAYERS):
        # The compiled step also updated BN's moving statistics, from the batch it saw.
        _, (mean, variance) = checks.reference_mixture(
            type(norm),
            x @ mixing.astype(np.float64),
            before["gamma"],
            before["beta"],
            before["mixing_logit"],
            groups=norm.groups,
        )
        assert_close(norm.moving_mean, (1 - MOMENTUM) * mean, tolerance=1e-4)
        assert_close(norm.moving_variance, MOMENTUM + (1 - MOMENTUM) * variance, tolerance=1e-4)


# Saving.


def test_every_layer_round_trips_through_its_config_and_a_keras_file(tmp_path):
    rng = np.random.default_rng(16)
    random_affine = dict(gamma_initializer="random_normal", beta_initializer="random_normal")
    inputs = keras.Input((6, 6, 8))
    x = WeightStandardizedConv2D(8, 3, padding="same", epsilon=1e-4, epsilon_inside_sqrt=False)(
        inputs
    )
    x = GroupNormalization(channels_per_group=2, **random_affine)(x)
    x = InstanceNormalization(**random_affine)(x)
    x = LayerNormalization(epsilon=1e-3, **random_affine)(x)
    x = GNPlusGNFirst(groups=4, momentum=0.8, mixing_initializer=-0.5, **random_affine)(x)
    model = keras.Model(inputs, x)
    data = rng.normal(size=(3, 6, 6, 8)).astype(np.float32)
    # A training call moves the mixture's moving statistics away from their initial values.
    model(data, training=True)
    for layer in model.layers[1:]:
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config, type(layer).__name__
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for original, copy in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(copy), to_numpy(original), err_msg=original.path)
    np.testing.assert_array_equal(to_numpy(loaded(data)), to_numpy(model(data)))


# Mixed precision.

MIXED_PRECISION_LAYERS = {
    "group": lambda: GroupNormalization(
        groups=4, gamma_initializer="random_normal", beta_initializer="random_normal"
    ),
    "gn_plus_bn_first": lambda: GNPlusBNFirst(groups=4, gamma_initializer="random_normal"),
    "ws_conv": lambda: WeightStandardizedConv2D(
        8, 3, padding="same", bias_initializer="random_normal"
    ),
}
# The largest error allowed, relative to the largest output: about the rounding of the
# output to the compute dtype, plus accumulation in it for the convolution.
MIXED_PRECISION_TOLERANCES = {"float16": 5e-3, "bfloat16": 3e-2}


@pytest.mark.parametrize("mixed_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize(
    "make_layer", MIXED_PRECISION_LAYERS.values(), ids=MIXED_PRECISION_LAYERS.keys()
)
def test_mixed_precision_outputs_the_compute_dtype_close_to_float32(make_layer, mixed_policy):
    compute_dtype = keras.mixed_precision.dtype_policy().compute_dtype
    x = checks.random_scaled_input((2, 5, 5, 8), seed=17)
    layer = make_layer()
    layer.build(x.shape)
    # The same layer and weights in float32, on the input rounded to the compute dtype:
    # the rounding of the input is then no part of the difference.
    reference = type(layer).from_config({**layer.get_config(), "dtype": "float32"})
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    inputs = ops.cast(x, compute_dtype)
    outputs = layer(inputs, training=True)
    assert standardize_dtype(outputs.dtype) == compute_dtype
    assert {standardize_dtype(weight.dtype) for weight in layer.weights} == {"float32"}
    expected = to_numpy(reference(to_numpy(inputs), training=True))
    values = to_numpy(outputs)
    assert np.isfinite(values).all()
    tolerance = MIXED_PRECISION_TOLERANCES[compute_dtype] * np.abs(expected).max()
    np.testing.assert_allclose(values, expected, atol=tolerance)


# The small CNN.


@pytest.mark.parametrize(
    "options",
    [
        dict(norm="group", groups=8, weight_standardization=True),
        dict(norm="gn_plus_parallel", groups=8),
    ],
    ids=["gn_ws", "gn_plus_parallel"],
)
def test_small_cnn_builds_and_fits_two_steps(options):
    # No keras.utils.set_random_seed: it imports TensorFlow whatever the backend, and
    # nothing below depends on the initial weights.
    model = small_cnn(num_classes=4, input_shape=(16, 16, 3), **options)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(18)
    images = rng.integers(0, 256, size=(4, 16, 16, 3)).astype(np.float32)
    labels = np.arange(4)
    before = [to_numpy(weight) for weight in model.trainable_weights]
    history = model.fit(images, labels, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    unchanged = [
        weight.path
        for weight, old in zip(model.trainable_weights, before)
        if np.array_equal(to_numpy(weight), old)
    ]
    assert not unchanged, f"not trained: {unchanged}"
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (4, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
