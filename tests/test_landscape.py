"""Loss-landscape probes: analytic values on quadratics, side-effect-free Keras models,
the callback's schedule and its silence on training, and the summary."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from utils.landscape import (
    GradientProbe,
    LandscapeProbe,
    StepProbe,
    model_loss_and_gradients,
    probe_along_gradient,
)

# ------------------------------------------------------------------- quadratic losses

_RNG = np.random.default_rng(0)
_BASIS, _ = np.linalg.qr(_RNG.normal(size=(5, 5)))
A = _BASIS @ np.diag([0.5, 1.0, 2.0, 3.0, 7.0]) @ _BASIS.T  # symmetric positive-definite
B = _RNG.normal(size=5)
W = _RNG.normal(size=5)
STEP_SIZES = (0.05, 0.1, 0.2)


def _split(vector):
    """The weights as two arrays of different shapes, to exercise the list handling."""
    return [vector[:2].reshape(1, 2), vector[2:]]


def _quadratic_numpy(weights):
    w = np.concatenate([np.ravel(weight) for weight in weights])
    return 0.5 * w @ A @ w + B @ w, _split(A @ w + B)


def _quadratic_tensorflow(weights):
    with tf.GradientTape() as tape:
        tape.watch(weights)
        w = tf.concat([tf.reshape(weight, [-1]) for weight in weights], axis=0)
        loss = 0.5 * tf.tensordot(w, tf.linalg.matvec(tf.constant(A), w), 1) + tf.tensordot(
            tf.constant(B), w, 1
        )
    return loss, tape.gradient(loss, weights)


def _analytic_loss(w):
    return 0.5 * w @ A @ w + B @ w


def _check_quadratic(probe):
    gradient = A @ W + B
    assert isinstance(probe, GradientProbe) and all(
        isinstance(step, StepProbe) for step in probe.steps
    )
    np.testing.assert_allclose(probe.base_loss, _analytic_loss(W), rtol=1e-12)
    np.testing.assert_allclose(probe.gradient_norm, np.linalg.norm(gradient), rtol=1e-12)
    assert [step.step_size for step in probe.steps] == list(STEP_SIZES)
    for step in probe.steps:
        eta = step.step_size
        np.testing.assert_allclose(step.loss, _analytic_loss(W - eta * gradient), rtol=1e-12)
        # grad L(w) - grad L(w - eta g) = A (eta g).
        np.testing.assert_allclose(
            step.gradient_distance, np.linalg.norm(A @ (eta * gradient)), rtol=1e-12
        )
        np.testing.assert_allclose(step.step_length, eta * np.linalg.norm(gradient), rtol=1e-12)
    # On a quadratic every step sees the same curvature along g: ||A g|| / ||g||.
    np.testing.assert_allclose(
        probe.beta_smoothness, np.linalg.norm(A @ gradient) / np.linalg.norm(gradient), rtol=1e-12
    )
    losses = [step.loss for step in probe.steps]
    np.testing.assert_allclose(probe.loss_range, max(losses) - min(losses), rtol=1e-12)


def test_a_quadratic_gives_the_analytic_losses_distances_and_smoothness_with_numpy():
    _check_quadratic(probe_along_gradient(_quadratic_numpy, _split(W.copy()), STEP_SIZES))


def test_tensorflow_tensors_give_the_same_numbers():
    weights = [tf.constant(weight) for weight in _split(W)]
    _check_quadratic(probe_along_gradient(_quadratic_tensorflow, weights, STEP_SIZES))


def test_in_one_dimension_the_smoothness_is_the_curvature():
    curvature = 3.5

    def parabola(weights):
        (w,) = weights
        return 0.5 * curvature * float(w @ w), [curvature * w]

    probe = probe_along_gradient(parabola, [np.array([2.0])], (0.01, 0.1, 0.5))
    np.testing.assert_allclose(probe.beta_smoothness, curvature, rtol=1e-12)
    np.testing.assert_allclose(
        [step.loss for step in probe.steps],
        [0.5 * curvature * (2.0 - eta * curvature * 2.0) ** 2 for eta in (0.01, 0.1, 0.5)],
    )


def test_the_probe_leaves_the_weights_alone_and_refuses_bad_step_sizes():
    weights = _split(W.copy())
    probe_along_gradient(_quadratic_numpy, weights, STEP_SIZES)
    np.testing.assert_array_equal(np.concatenate([np.ravel(weight) for weight in weights]), W)
    for step_sizes in ((), (0.1, 0.0), (float("nan"),), (-1.0,)):
        with pytest.raises(ValueError, match="step_sizes"):
            probe_along_gradient(_quadratic_numpy, weights, step_sizes)


# ----------------------------------------------------------------------- Keras models


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Dropout(0.25)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _batch(size=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(size, 6)).astype("float32"), rng.integers(0, 3, size=size)


def _snapshot(model):
    return [np.array(keras.ops.convert_to_numpy(variable)) for variable in model.variables]


def test_model_loss_and_gradients_are_the_training_mode_cross_entropy_and_change_no_variable():
    model = _tiny_model()
    images, labels = _batch()
    model(images, training=True)  # moving statistics away from their initial values
    before = _snapshot(model)
    # Seed-generator states are among the variables kept unchanged.
    assert len(before) > len(model.trainable_variables) + 2

    loss_and_gradients = model_loss_and_gradients(model, images, labels)
    loss, gradients = loss_and_gradients([variable.value for variable in model.trainable_variables])
    probe_along_gradient(
        loss_and_gradients, [variable.value for variable in model.trainable_variables], (0.1, 1.0)
    )
    for previous, now in zip(before, _snapshot(model)):
        np.testing.assert_array_equal(now, previous)

    # The same computation done the ordinary way, on the same (unchanged) seed states, so
    # dropout draws the same mask; this call updates the moving statistics.
    with tf.GradientTape() as tape:
        expected = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, model(images, training=True))
        )
    expected_gradients = tape.gradient(expected, model.trainable_variables)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
    for gradient, expected_gradient in zip(gradients, expected_gradients):
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------- the callback

_LEARNING_RATE = 0.05


def _fit(probe=None, *, steps_per_execution=1, epochs=2, model=None, initial_epoch=0):
    """Fits the tiny model on 8 steps of 8 images per epoch; returns (model, history)."""
    if model is None:
        model = _tiny_model()
        model.compile(
            optimizer=keras.optimizers.SGD(_LEARNING_RATE, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            steps_per_execution=steps_per_execution,
        )
    images, labels = _batch(64, seed=2)
    history = model.fit(
        images,
        labels,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        callbacks=[probe] if probe else [],
    )
    return model, history.history


def _probe_batches():
    # The probe's own stream of training batches, repeated.
    images, labels = _batch(64, seed=3)
    return (
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(8).repeat().as_numpy_iterator()
    )


def test_the_callback_probes_every_few_steps_and_does_not_disturb_training():
    probe = LandscapeProbe(_probe_batches(), every_steps=4)
    model, history = _fit(probe)
    undisturbed_model, undisturbed = _fit()
    assert history == undisturbed
    for weight, undisturbed_weight in zip(_snapshot(model), _snapshot(undisturbed_model)):
        np.testing.assert_array_equal(weight, undisturbed_weight)

    assert len(probe.rows) == 5 * 4
    assert sorted({row["step"] for row in probe.rows}) == [0, 4, 8, 12, 16]
    assert [row["epoch"] for row in probe.rows[::4]] == [1, 1, 1, 2, 2]
    assert {row["step"] for row in probe.rows_of_epoch(2)} == {12, 16}
    assert [row["multiplier"] for row in probe.rows[:4]] == [0.5, 1.0, 2.0, 4.0]
    for row in probe.rows:
        np.testing.assert_allclose(row["step_size"], row["multiplier"] * _LEARNING_RATE, rtol=1e-6)
        np.testing.assert_allclose(
            row["step_length"], row["step_size"] * row["gradient_norm"], rtol=1e-12
        )
        assert np.isfinite([row["loss"], row["base_loss"], row["gradient_distance"]]).all()


def test_with_several_steps_per_execution_the_probes_still_fall_on_the_multiples():
    probe = LandscapeProbe(_probe_batches(), every_steps=8)
    _fit(probe, steps_per_execution=4)
    assert sorted({row["step"] for row in probe.rows}) == [0, 8, 16]


def test_one_fit_per_epoch_probes_step_zero_once():
    probe = LandscapeProbe(_probe_batches(), every_steps=4, multipliers=(1.0,))
    model, _ = _fit(probe, epochs=1)
    _fit(probe, model=model, epochs=2, initial_epoch=1)
    assert [(row["epoch"], row["step"]) for row in probe.rows] == [
        (1, 0),
        (1, 4),
        (1, 8),
        (2, 12),
        (2, 16),
    ]
    # A new probe on a resumed model does not probe at its first step.
    resumed = LandscapeProbe(_probe_batches(), every_steps=4, multipliers=(1.0,))
    _fit(resumed, model=model, epochs=3, initial_epoch=2)
    assert [row["step"] for row in resumed.rows] == [20, 24]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="every_steps"):
        LandscapeProbe([], every_steps=0)
    with pytest.raises(ValueError, match="multipliers"):
        LandscapeProbe([], every_steps=1, multipliers=(1.0, -2.0))


def test_a_mixed_precision_model_is_refused_before_training():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, activation="softmax", dtype="mixed_bfloat16", name="mixed")(
        inputs
    )
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(_LEARNING_RATE), loss="sparse_categorical_crossentropy"
    )
    images, labels = _batch(16)
    with pytest.raises(
        ValueError,
        match=r"needs a float32 model; layers of this one compute in \['mixed_bfloat16'\]",
    ):
        model.fit(
            images,
            labels,
            batch_size=8,
            verbose=0,
            callbacks=[LandscapeProbe(_probe_batches(), every_steps=1)],
        )


def test_a_weight_the_loss_does_not_use_gets_a_zero_gradient():
    model = _tiny_model()
    unused = model.add_weight(shape=(2,), name="unused", initializer="ones")
    images, labels = _batch()
    variables = model.trainable_variables
    loss, gradients = model_loss_and_gradients(model, images, labels)([v.value for v in variables])
    assert np.isfinite(float(loss))
    gradient = gradients[[v is unused for v in variables].index(True)]
    np.testing.assert_array_equal(np.asarray(gradient), np.zeros(2))
