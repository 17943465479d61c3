"""Keras's Batch Renormalization, `BatchNormalization(renorm=True)`, against the paper.

Ioffe (2017), Algorithm 1, for one channel with batch values x_1..x_m and moving mean mu
and moving standard deviation sigma:

    mu_B = mean(x),  sigma_B = sqrt(var(x) + epsilon)           (biased variance)
    r = stop_gradient(clip(sigma_B / sigma, 1 / r_max, r_max))
    d = stop_gradient(clip((mu_B - mu) / sigma, -d_max, d_max))
    y = ((x - mu_B) / sigma_B * r + d) * gamma + beta           (training)
    mu += alpha * (mu_B - mu),  sigma += alpha * (sigma_B - sigma)
    y = (x - mu) / sigma * gamma + beta                          (inference)

Keras (like TensorFlow 1's layer before it) keeps two such pairs of moving statistics:
`renorm_mean`/`renorm_stddev`, updated with `renorm_momentum` (alpha = 1 - renorm_momentum),
give r and d; `moving_mean`/`moving_stddev`, updated with `momentum`, are used at
inference (`moving_variance` is stored as moving_stddev ** 2 - epsilon so that
sqrt(moving_variance + epsilon) = moving_stddev). Each pair follows the paper's update, so
the paper's algorithm with rate alpha is checked twice: with alpha = 1 - renorm_momentum
for the training outputs, with alpha = 1 - momentum for inference. With
renorm_momentum == momentum the two pairs coincide and Keras is exactly Algorithm 1.

Keras's clipping bounds are fixed (the paper relaxes r_max and d_max on a schedule) and a
missing "rmin" means 0, not 1 / rmax: pass it.
"""

import numpy as np
import pytest
import tensorflow as tf

import keras

EPSILON = 1e-5
# The Batch Renorm settings of the GN paper's comparison (Wu & He, 2018, Section 5.1).
PAPER_CLIPPING = {"rmin": 1 / 1.5, "rmax": 1.5, "dmax": 0.5}

# Four channels whose batches differ from the starting moving statistics so that, at the
# first step, r is clipped above (channel 0), below (1 and 3) or not (2), and d above
# (0), below (1) or not (2 and 3).
BATCH_MEANS = np.array([3.0, -2.0, 0.1, 0.0])
BATCH_STDS = np.array([4.0, 0.2, 1.1, 1.0])
START_MEAN = np.array([0.0, 0.0, 0.0, 0.5])
START_STD = np.array([1.0, 1.0, 1.0, 2.0])
GAMMA = np.array([1.5, 0.5, -1.0, 2.0])
BETA = np.array([0.1, -0.3, 0.2, 1.0])


class PaperRenorm:
    """Ioffe's Algorithm 1 for channels-last inputs, in float64 NumPy."""

    def __init__(self, mean, std, gamma, beta, clipping, alpha, epsilon=EPSILON):
        self.mean = np.array(mean, np.float64)
        self.std = np.array(std, np.float64)
        self.gamma = np.asarray(gamma, np.float64)
        self.beta = np.asarray(beta, np.float64)
        self.rmin = clipping.get("rmin", 0.0)
        self.rmax = clipping.get("rmax", np.inf)
        self.dmax = clipping.get("dmax", np.inf)
        self.alpha = alpha
        self.epsilon = epsilon

    def corrections(self, x):
        """Batch mean and std, and r and d before and after clipping, for a batch."""
        axes = tuple(range(x.ndim - 1))
        batch_mean = x.mean(axis=axes)
        batch_std = np.sqrt(x.var(axis=axes) + self.epsilon)
        r_raw = batch_std / self.std
        d_raw = (batch_mean - self.mean) / self.std
        r = np.clip(r_raw, self.rmin, self.rmax)
        d = np.clip(d_raw, -self.dmax, self.dmax)
        return batch_mean, batch_std, r_raw, d_raw, r, d

    def train_step(self, x):
        """The training output; then updates the moving statistics. Returns y, r_raw, d_raw."""
        x = np.asarray(x, np.float64)
        batch_mean, batch_std, r_raw, d_raw, r, d = self.corrections(x)
        y = ((x - batch_mean) / batch_std * r + d) * self.gamma + self.beta
        self.mean = self.mean + self.alpha * (batch_mean - self.mean)
        self.std = self.std + self.alpha * (batch_std - self.std)
        return y, r_raw, d_raw

    def inference(self, x):
        return (np.asarray(x, np.float64) - self.mean) / self.std * self.gamma + self.beta


def batches(steps, shape=(8, 3, 3, 4), seed=0):
    rng = np.random.default_rng(seed)
    return [
        (BATCH_MEANS + BATCH_STDS * rng.normal(size=shape)).astype(np.float32) for _ in range(steps)
    ]


def renorm_layer(clipping=PAPER_CLIPPING, momentum=0.9, renorm_momentum=0.6):
    """A built renorm layer starting from START_MEAN and START_STD, with GAMMA and BETA."""
    layer = keras.layers.BatchNormalization(
        epsilon=EPSILON,
        momentum=momentum,
        renorm=True,
        renorm_clipping=clipping,
        renorm_momentum=renorm_momentum,
        gamma_initializer=keras.initializers.Constant(GAMMA),
        beta_initializer=keras.initializers.Constant(BETA),
        moving_mean_initializer=keras.initializers.Constant(START_MEAN),
        moving_variance_initializer=keras.initializers.Constant(START_STD**2),
    )
    layer.build((None, 3, 3, 4))
    return layer


def references(clipping=PAPER_CLIPPING, momentum=0.9, renorm_momentum=0.6):
    """The paper's algorithm for the training outputs (renorm statistics) and for the
    inference statistics."""
    training = PaperRenorm(START_MEAN, START_STD, GAMMA, BETA, clipping, alpha=1 - renorm_momentum)
    inference = PaperRenorm(START_MEAN, START_STD, GAMMA, BETA, clipping, alpha=1 - momentum)
    return training, inference


def train_step_function(layer, mode):
    def step(x):
        return layer(x, training=True)

    return step if mode == "eager" else tf.function(step, jit_compile=True)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_training_steps_match_the_paper_with_clipping_active(mode):
    layer = renorm_layer()
    training, inference = references()
    step = train_step_function(layer, mode)
    clipped_r, clipped_d = [], []
    for x in batches(6):
        expected, r_raw, d_raw = training.train_step(x)
        inference.train_step(x)
        np.testing.assert_allclose(np.asarray(step(tf.constant(x))), expected, atol=2e-4, rtol=1e-4)
        # The layer's statistics after the step are the paper's, for each pair.
        np.testing.assert_allclose(layer.renorm_mean.numpy(), training.mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.renorm_stddev.numpy(), training.std, rtol=1e-5)
        np.testing.assert_allclose(layer.moving_mean.numpy(), inference.mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_stddev.numpy(), inference.std, rtol=1e-5)
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), inference.std**2 - EPSILON, rtol=1e-5
        )
        clipped_r.append((r_raw < PAPER_CLIPPING["rmin"]) | (r_raw > PAPER_CLIPPING["rmax"]))
        clipped_d.append(np.abs(d_raw) > PAPER_CLIPPING["dmax"])
    clipped_r, clipped_d = np.array(clipped_r), np.array(clipped_d)
    # The test means something: at the first step r is clipped above and below and d on
    # both sides, while one channel is left alone ...
    assert clipped_r[0].tolist() == [True, True, False, True]
    assert clipped_d[0].tolist() == [True, True, False, False]
    # ... and as the renorm statistics follow the batches, which channels are clipped
    # changes from step to step: the outputs above match only if the configured bounds
    # and the current statistics are used at every step.
    assert not clipped_r[-1].all() and (clipped_r[0] != clipped_r[-1]).any()
    assert (clipped_d[0] != clipped_d[-1]).any()


def test_r_and_d_use_the_renorm_statistics_not_the_inference_ones():
    # The two pairs start equal and drift apart at different rates; from the second step
    # on, outputs computed from the inference pair would differ.
    layer = renorm_layer(momentum=0.99, renorm_momentum=0.5)
    training, inference = references(momentum=0.99, renorm_momentum=0.5)
    data = batches(3, seed=1)
    for x in data[:2]:
        training.train_step(x)
        inference.train_step(x)
        layer(x, training=True)
    wrong, _, _ = inference.train_step(data[2])
    expected, _, _ = training.train_step(data[2])
    outputs = np.asarray(layer(data[2], training=True))
    np.testing.assert_allclose(outputs, expected, atol=2e-4, rtol=1e-4)
    assert np.abs(outputs - wrong).max() > 0.1


def test_equal_momenta_give_the_papers_single_pair_of_statistics():
    layer = renorm_layer(momentum=0.8, renorm_momentum=0.8)
    paper = PaperRenorm(START_MEAN, START_STD, GAMMA, BETA, PAPER_CLIPPING, alpha=0.2)
    data = batches(5, seed=2)
    for x in data:
        expected, _, _ = paper.train_step(x)
        np.testing.assert_allclose(
            np.asarray(layer(x, training=True)), expected, atol=2e-4, rtol=1e-4
        )
    np.testing.assert_allclose(
        layer.renorm_mean.numpy(), layer.moving_mean.numpy(), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(layer.renorm_stddev.numpy(), layer.moving_stddev.numpy(), rtol=1e-6)
    inference = np.asarray(layer(data[0], training=False))
    np.testing.assert_allclose(inference, paper.inference(data[0]), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_inference_uses_the_moving_statistics_like_batch_norm(mode):
    layer = renorm_layer()
    training, inference = references()
    data = batches(4, seed=3)
    for x in data[:3]:
        training.train_step(x)
        inference.train_step(x)
        layer(x, training=True)
    before = [w.numpy().copy() for w in layer.non_trainable_weights]
    infer = (
        (lambda x: layer(x, training=False))
        if mode == "eager"
        else tf.function(lambda x: layer(x, training=False), jit_compile=True)
    )
    outputs = np.asarray(infer(tf.constant(data[3])))
    np.testing.assert_allclose(outputs, inference.inference(data[3]), atol=2e-4, rtol=1e-4)
    # The same as a plain BatchNormalization given the moving mean and variance ...
    plain = keras.layers.BatchNormalization(epsilon=EPSILON)
    plain.build((None, 3, 3, 4))
    plain.set_weights([GAMMA, BETA, layer.moving_mean.numpy(), layer.moving_variance.numpy()])
    np.testing.assert_allclose(outputs, np.asarray(plain(data[3], training=False)), atol=1e-5)
    # ... and inference changes no statistic.
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, layer.non_trainable_weights))


def test_a_missing_rmin_means_no_lower_bound_not_one_over_rmax():
    clipping = {"rmax": PAPER_CLIPPING["rmax"], "dmax": PAPER_CLIPPING["dmax"]}
    layer = renorm_layer(clipping=clipping)
    training, _ = references(clipping=clipping)
    x = batches(1, seed=4)[0]
    expected, r_raw, _ = training.train_step(x)
    outputs = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(outputs, expected, atol=2e-4, rtol=1e-4)
    # Channel 1's r (about 0.2) is used as is: the paper would clip it to 1 / 1.5.
    assert r_raw[1] < 0.3
    paper, _ = references()
    paper_outputs, _, _ = paper.train_step(x)
    assert np.abs(outputs - paper_outputs)[..., 1].max() > 0.1


def stop_gradient_reference(x, upstream, r, d, gamma, epsilon=EPSILON):
    """Gradients of sum(upstream * y) for the training output with r and d constants:
    y = (x_hat * r + d) * gamma + beta with x_hat = (x - mu_B) / sigma_B, so the gradient
    with respect to x is batch norm's, for the upstream gradient upstream * gamma * r."""
    axes = tuple(range(x.ndim - 1))
    x = np.asarray(x, np.float64)
    batch_std = np.sqrt(x.var(axis=axes) + epsilon)
    x_hat = (x - x.mean(axis=axes)) / batch_std
    g = upstream * gamma * r
    grad_x = (g - g.mean(axis=axes) - x_hat * (g * x_hat).mean(axis=axes)) / batch_std
    grad_gamma = (upstream * (x_hat * r + d)).sum(axis=axes)
    grad_beta = upstream.sum(axis=axes)
    return grad_x, grad_gamma, grad_beta


def numerical_gradient(function, x, step=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (function(plus) - function(minus)) / (2 * step)
    return grad


def test_gradient_treats_r_and_d_as_constants():
    rng = np.random.default_rng(5)
    x = (BATCH_MEANS + BATCH_STDS * rng.normal(size=(4, 2, 2, 4))).astype(np.float32)
    upstream = rng.normal(size=x.shape)
    reference = PaperRenorm(START_MEAN, START_STD, GAMMA, BETA, PAPER_CLIPPING, alpha=0.4)
    _, _, r_raw, d_raw, r, d = reference.corrections(x.astype(np.float64))
    expected = stop_gradient_reference(x, upstream, r, d, GAMMA)

    # The analytic reference is itself checked by finite differences with r, d frozen.
    def frozen_loss(values):
        axes = (0, 1, 2)
        y = (values - values.mean(axis=axes)) / np.sqrt(values.var(axis=axes) + EPSILON) * r + d
        return float(np.sum(upstream * (y * GAMMA + BETA)))

    x64 = x.astype(np.float64)
    np.testing.assert_allclose(numerical_gradient(frozen_loss, x64), expected[0], atol=1e-6)

    layer = renorm_layer(renorm_momentum=0.6)
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        loss = tf.reduce_sum(layer(x_tf, training=True) * tf.constant(upstream, tf.float32))
    grad_x, grad_gamma, grad_beta = tape.gradient(loss, [x_tf, layer.gamma, layer.beta])
    np.testing.assert_allclose(grad_x.numpy(), expected[0], atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(grad_gamma.numpy(), expected[1], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(grad_beta.numpy(), expected[2], atol=1e-4, rtol=1e-4)

    # Differentiating through r and d instead would give another gradient wherever they
    # are not clipped (channel 2): there y = (x - mu) / sigma * gamma + beta exactly.
    unclipped = (r_raw == r) & (d_raw == d)
    assert unclipped.tolist() == [False, False, True, False]

    def full_loss(values):
        y, _, _ = PaperRenorm(
            START_MEAN, START_STD, GAMMA, BETA, PAPER_CLIPPING, alpha=0.4
        ).train_step(values)
        return float(np.sum(upstream * y))

    through_r_and_d = numerical_gradient(full_loss, x64)
    np.testing.assert_allclose(
        through_r_and_d[..., 2], upstream[..., 2] * GAMMA[2] / START_STD[2], atol=1e-6
    )
    assert np.abs(grad_x.numpy()[..., 2] - through_r_and_d[..., 2]).max() > 0.1


@pytest.mark.parametrize("mixed_policy", ["mixed_bfloat16"])
def test_mixed_precision_computes_in_float32(mixed_policy):
    keras.mixed_precision.set_dtype_policy(mixed_policy)
    try:
        layer = renorm_layer()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    training, _ = references()
    x = tf.cast(tf.constant(batches(1, seed=6)[0]), "bfloat16")
    outputs = layer(x, training=True)
    assert outputs.dtype == "bfloat16" and layer.renorm_stddev.dtype == "float32"
    expected, _, _ = training.train_step(np.asarray(tf.cast(x, tf.float32)))
    np.testing.assert_allclose(
        np.asarray(tf.cast(outputs, tf.float32)), expected, atol=5e-2, rtol=2e-2
    )


def test_renorm_model_saves_and_loads(tmp_path):
    inputs = keras.Input((3, 3, 4))
    model = keras.Model(inputs, renorm_layer()(inputs))
    data = batches(3, seed=7)
    for x in data[:2]:
        model(x, training=True)
    path = tmp_path / "renorm.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.layers[1]
    assert layer.renorm and layer.renorm_momentum == 0.6
    assert layer.renorm_clipping == PAPER_CLIPPING
    np.testing.assert_array_equal(
        layer.renorm_stddev.numpy(), model.layers[1].renorm_stddev.numpy()
    )
    np.testing.assert_array_equal(np.asarray(loaded(data[2])), np.asarray(model(data[2])))
    np.testing.assert_array_equal(
        np.asarray(loaded(data[2], training=True)), np.asarray(model(data[2], training=True))
    )
