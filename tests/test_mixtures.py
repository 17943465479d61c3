"""The GN+BN mixture layers of Gunawan et al. (2021), against a float64 NumPy reference."""

import functools
import math
import re

import numpy as np
import pytest
import tensorflow as tf

import keras
from utils import mixtures
from tests import checks
from tests.checks import reference_batch_norm
from tests.checks import reference_batch_statistics
from utils.mixtures import GNPlusBNFirst
from utils.mixtures import GNPlusGNFirst
from utils.mixtures import GNPlusParallel

EPSILON = 1e-5
MOMENTUM = 0.9
GROUPS = 4
SHAPE = (3, 4, 5, 8)  # N, H, W, C
LAYERS = [GNPlusParallel, GNPlusGNFirst, GNPlusBNFirst]


# The float64 NumPy reference and the random data, channels-last, for these constants.
reference_mixture = functools.partial(checks.reference_mixture, groups=GROUPS, epsilon=EPSILON)
random_input = functools.partial(checks.random_scaled_input, shape=SHAPE)
random_layer = functools.partial(checks.random_mixture_layer, shape=SHAPE, groups=GROUPS)


def assert_close(actual, expected, tolerance=1e-5):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=tolerance, atol=tolerance
    )


# Values.


@pytest.mark.parametrize("layer_class", LAYERS)
def test_training_output_matches_numpy(layer_class):
    layer, gamma, beta, logit = random_layer(layer_class)
    x = random_input()
    expected, _ = reference_mixture(layer_class, x, gamma, beta, logit)
    outputs = layer(x, training=True)
    assert outputs.shape == SHAPE and outputs.dtype == "float32"
    assert_close(outputs, expected)


def test_the_three_orders_give_different_outputs():
    assert mixtures.MIXTURE_LAYERS == tuple(LAYERS)
    x = random_input()
    outputs = [np.asarray(random_layer(layer_class)[0](x, training=True)) for layer_class in LAYERS]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(outputs[i] - outputs[j]).max() > 0.05


@pytest.mark.parametrize("layer_class", LAYERS)
def test_moving_statistics_and_inference_match_numpy(layer_class):
    layer, gamma, beta, logit = random_layer(layer_class)
    moving_mean, moving_variance = np.zeros(SHAPE[-1]), np.ones(SHAPE[-1])
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), moving_variance)
    for step in range(2):
        x = random_input(seed=10 + step)
        layer(x, training=True)
        _, (mean, variance) = reference_mixture(layer_class, x, gamma, beta, logit)
        moving_mean = MOMENTUM * moving_mean + (1 - MOMENTUM) * mean
        moving_variance = MOMENTUM * moving_variance + (1 - MOMENTUM) * variance
        assert_close(layer.moving_mean.numpy(), moving_mean)
        assert_close(layer.moving_variance.numpy(), moving_variance)
    x = random_input(seed=20)
    expected, _ = reference_mixture(
        layer_class, x, gamma, beta, logit, moving=(moving_mean, moving_variance)
    )
    assert_close(layer(x, training=False), expected)
    # Inference neither updates the moving statistics nor uses the batch's own.
    assert_close(layer.moving_mean.numpy(), moving_mean)
    batch_only, _ = reference_mixture(layer_class, x, gamma, beta, logit)
    assert np.abs(np.asarray(layer(x, training=False)) - batch_only).max() > 0.05


@pytest.mark.parametrize("layer_class", LAYERS)
def test_inference_is_the_default_and_each_sample_is_independent_of_its_batch(layer_class):
    layer, *_ = random_layer(layer_class)
    layer(random_input(seed=3), training=True)
    moving_mean = layer.moving_mean.numpy()
    x = random_input(seed=4)
    together = np.asarray(layer(x))
    alone = np.concatenate([np.asarray(layer(x[i : i + 1])) for i in range(len(x))])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_a_frozen_layer_runs_batch_norm_in_inference_mode(layer_class):
    layer, gamma, beta, logit = random_layer(layer_class)
    layer.trainable = False
    x = random_input()
    outputs = layer(x, training=True)
    expected, _ = reference_mixture(
        layer_class, x, gamma, beta, logit, moving=(np.zeros(SHAPE[-1]), np.ones(SHAPE[-1]))
    )
    assert_close(outputs, expected)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(SHAPE[-1]))


@pytest.mark.parametrize("layer_class", LAYERS)
def test_channels_first_equals_channels_last_transposed(layer_class):
    last, gamma, beta, logit = random_layer(layer_class)
    first = layer_class(groups=GROUPS, axis=1)
    first.build((SHAPE[0], SHAPE[3], SHAPE[1], SHAPE[2]))
    first.gamma.assign(gamma)
    first.beta.assign(beta)
    first.mixing_logit.assign(logit)
    x = random_input()
    x_first = np.transpose(x, (0, 3, 1, 2))
    for training in (True, False):
        outputs_last = np.asarray(last(x, training=training))
        outputs_first = np.asarray(first(x_first, training=training))
        assert_close(np.transpose(outputs_first, (0, 2, 3, 1)), outputs_last)
    assert_close(first.moving_mean.numpy(), last.moving_mean.numpy(), tolerance=1e-6)
    assert_close(first.moving_variance.numpy(), last.moving_variance.numpy(), tolerance=1e-6)


def test_pure_functions_match_numpy():
    x = random_input()
    mean, variance = mixtures.batch_moments(x, axis=-1)
    expected_mean, expected_variance = reference_batch_statistics(x)
    assert_close(mean, expected_mean)
    assert_close(variance, expected_variance)
    expected = reference_batch_norm(x, expected_mean, expected_variance)
    assert_close(mixtures.batch_normalize(x, mean, variance), expected)
    assert_close(mixtures.moving_average(np.ones(3), np.full(3, 3.0), 0.9), np.full(3, 1.2))
    group_normalized, batch_normalized = np.ones((2, 3)), np.zeros((2, 3))
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, -1.0])
    weight = 1 / (1 + math.exp(-0.5))
    assert_close(
        mixtures.mix(group_normalized, batch_normalized, 0.5, gamma, beta),
        np.broadcast_to(weight * gamma + beta, (2, 3)),
    )


# The mixing weight.


def test_mixing_weight_starts_at_sigmoid_of_one():
    layer = GNPlusParallel(groups=GROUPS)
    with pytest.raises(ValueError, match="built"):
        layer.mixing_weight
    layer.build(SHAPE)
    assert layer.mixing_logit.shape == ()
    assert float(layer.mixing_logit.numpy()) == 1.0
    assert isinstance(layer.mixing_weight, float)
    assert layer.mixing_weight == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-7)
    assert layer.mixing_weight == pytest.approx(0.731, abs=5e-4)
    other = GNPlusParallel(groups=GROUPS, mixing_initializer=-2)
    other.build(SHAPE)
    assert other.mixing_weight == pytest.approx(1 / (1 + math.exp(2)), abs=1e-7)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_gradient_with_respect_to_the_mixing_logit_matches_a_finite_difference(layer_class):
    layer, gamma, beta, logit = random_layer(layer_class)
    x = random_input()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=True)))
    gradient = float(tape.gradient(loss, layer.mixing_logit.value))

    def reference_loss(value):
        return np.sum(reference_mixture(layer_class, x, gamma, beta, value)[0] ** 2)

    step = 1e-4
    finite_difference = (reference_loss(logit + step) - reference_loss(logit - step)) / (2 * step)
    assert abs(finite_difference) > 0.05
    # In BN-first, GN of a batch-normalized tensor is close to it: the gradient sums small
    # float32 differences x_gn - x_bn, good to about 1e-4 relative.
    assert gradient == pytest.approx(finite_difference, rel=1e-3)


def test_mixing_logit_is_trainable_and_not_regularized():
    decay = keras.regularizers.L2(0.1)
    layer = GNPlusGNFirst(groups=GROUPS, gamma_regularizer=decay, beta_regularizer=decay)
    layer.build(SHAPE)
    assert {w.name for w in layer.trainable_weights} == {"gamma", "beta", "mixing_logit"}
    assert {w.name for w in layer.non_trainable_weights} == {"moving_mean", "moving_variance"}
    assert len(layer.losses) == 2
    layer.gamma.assign(np.zeros(SHAPE[-1]))
    layer.beta.assign(np.zeros(SHAPE[-1]))
    layer.mixing_logit.assign(5.0)
    assert float(sum(layer.losses)) == 0.0


# Errors.


def test_groups_that_do_not_divide_the_channels():
    layer = GNPlusParallel(groups=3)
    with pytest.raises(
        ValueError, match=r"groups=3 does not divide the 8 channels.*\[1, 2, 4, 8\]"
    ):
        layer.build(SHAPE)


@pytest.mark.parametrize("shape", [(8,), (1, 2, 2, 2, 2, 8)])
@pytest.mark.parametrize("layer_class", LAYERS)
def test_unsupported_rank_names_the_layer_and_the_shape(layer_class, shape):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{layer_class.__name__} expects inputs of rank 2 to 5 (batch, "
            f"..., channels); received an input of shape {shape}"
        ),
    ):
        layer_class(groups=2).build(shape)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"momentum": 1.0}, r"momentum must be a number in \[0, 1\).*momentum=1\.0"),
        ({"momentum": -0.1}, r"momentum=-0\.1"),
        ({"momentum": "0.9"}, r"momentum='0\.9'"),
        ({"epsilon": 0}, r"epsilon must be a positive float; received epsilon=0"),
        ({"epsilon": float("nan")}, r"epsilon=nan"),
        ({"groups": 0}, r"groups must be a positive integer.*groups=0"),
        ({"groups": 2.5}, r"groups=2\.5"),
        ({"axis": 0}, r"axis=0 is the batch axis"),
        ({"mixing_initializer": float("inf")}, r"mixing_initializer=inf"),
    ],
)
@pytest.mark.parametrize("layer_class", LAYERS)
def test_invalid_arguments(layer_class, arguments, message):
    with pytest.raises(ValueError, match=message):
        layer_class(**arguments)


# Saving.


@pytest.mark.parametrize("layer_class", LAYERS)
def test_config_round_trips_and_does_not_change_when_built(layer_class):
    layer = layer_class(
        groups=2,
        axis=1,
        epsilon=1e-3,
        momentum=0.99,
        mixing_initializer=0.5,
        gamma_regularizer=keras.regularizers.L2(1e-4),
        name="mixture",
    )
    config = layer.get_config()
    assert layer_class.from_config(config).get_config() == config
    layer.build((2, 8, 3, 3))
    assert layer.get_config() == config
    assert layer_class.from_config(config).mixing_initializer.value == 0.5


def test_model_saves_and_loads_with_its_moving_statistics(tmp_path):
    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = GNPlusGNFirst(groups=4, name="mixture")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    data = np.random.default_rng(5).normal(size=(4, 8, 8, 16)).astype(np.float32)
    model(data, training=True)
    layer = model.get_layer("mixture")
    layer.mixing_logit.assign(-0.3)
    assert np.abs(layer.moving_mean.numpy()).max() > 0
    path = tmp_path / "mixture.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded_layer = loaded.get_layer("mixture")
    assert type(loaded_layer) is GNPlusGNFirst
    np.testing.assert_array_equal(np.asarray(loaded(data)), np.asarray(model(data)))
    for name in ("moving_mean", "moving_variance", "mixing_logit", "gamma", "beta"):
        np.testing.assert_array_equal(
            getattr(loaded_layer, name).numpy(), getattr(layer, name).numpy()
        )
    assert loaded_layer.mixing_weight == layer.mixing_weight


# Mixed precision and compiled training.


@pytest.mark.parametrize("mixed_policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
@pytest.mark.parametrize("layer_class", LAYERS)
def test_mixed_precision(layer_class, mixed_policy):
    compute_dtype = mixed_policy.split("_")[1]
    layer, gamma, beta, logit = random_layer(layer_class)
    assert all(w.dtype == "float32" for w in layer.weights)
    x = tf.constant(random_input(), compute_dtype)
    outputs = layer(x, training=True)
    assert outputs.dtype == compute_dtype
    assert all(w.dtype == "float32" for w in layer.weights)
    assert layer.moving_mean.dtype == "float32"
    # The rounding of the input and of the output to the compute dtype is the only error.
    rounded_input = np.asarray(tf.cast(x, tf.float32))
    expected, (mean, _) = reference_mixture(layer_class, rounded_input, gamma, beta, logit)
    tolerance = 2e-2 if compute_dtype == "bfloat16" else 3e-3
    assert_close(tf.cast(outputs, tf.float32), expected, tolerance)
    assert_close(layer.moving_mean.numpy(), (1 - MOMENTUM) * mean)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_one_compiled_fit_step_updates_the_mixing_logit_and_moving_statistics(layer_class):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 8))
    features = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = layer_class(groups=4, name="mixture")(features)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    rng = np.random.default_rng(7)
    data = rng.normal(size=(8, 6, 6, 8)).astype(np.float32)
    labels = rng.integers(0, 3, size=8)
    # What the layer sees in the step: the convolution before the optimizer updates it.
    layer_inputs = np.asarray(keras.Model(inputs, features)(data))
    layer = model.get_layer("mixture")
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    model.fit(data, labels, batch_size=8, epochs=1, verbose=0)
    assert float(layer.mixing_logit.numpy()) != 1.0
    # One step on one batch of everything: exactly one update of the moving statistics.
    _, (mean, variance) = reference_mixture(layer_class, layer_inputs, gamma, beta, 1.0)
    assert_close(layer.moving_mean.numpy(), (1 - MOMENTUM) * mean, tolerance=1e-4)
    assert_close(
        layer.moving_variance.numpy(), MOMENTUM + (1 - MOMENTUM) * variance, tolerance=1e-4
    )
    assert np.abs(layer.moving_variance.numpy() - 1).max() > 1e-3
