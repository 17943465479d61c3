"""GroupNormalization, InstanceNormalization, the paper's LayerNormalization and
WeightStandardizedConv2D."""

import re

import numpy as np
import pytest
import tensorflow as tf

import keras
from tests.checks import random_inputs
from tests.checks import random_kernel
from tests.checks import reference_group_norm
from tests.checks import reference_standardized_kernel
from tests.checks import ws_conv
from utils.layers import GroupNormalization
from utils.layers import InstanceNormalization
from utils.layers import LayerNormalization
from utils.layers import WeightStandardizedConv2D
from utils.layers import group_normalize
from utils.layers import group_normalize_reference
from utils.layers import standardize_kernel


# The worked example of the reference notes: N=3, C=4, H=1, W=2 in NCHW.
WORKED_EXAMPLE = np.array(
    [
        [[[2, 3]], [[5, 7]], [[11, 13]], [[17, 19]]],
        [[[0, 1]], [[1, 2]], [[3, 5]], [[8, 13]]],
        [[[1, 2]], [[3, 4]], [[5, 6]], [[7, 8]]],
    ],
    dtype=np.float32,
)
WORKED_EXAMPLE_SAMPLE_A = {
    "batch": [[0.522, 1.567], [0.676, 1.690], [1.071, 1.630], [1.066, 1.492]],
    "layer": [[-1.276, -1.108], [-0.774, -0.439], [0.230, 0.565], [1.234, 1.568]],
    "instance": [[-1.000, 1.000], [-1.000, 1.000], [-1.000, 1.000], [-1.000, 1.000]],
    "group2": [[-1.172, -0.651], [0.391, 1.432], [-1.265, -0.632], [0.632, 1.265]],
}


@pytest.mark.parametrize(
    "layer, key",
    [
        (lambda: keras.layers.BatchNormalization(axis=1, epsilon=1e-5), "batch"),
        (lambda: LayerNormalization(axis=1), "layer"),
        (lambda: InstanceNormalization(axis=1), "instance"),
        (lambda: GroupNormalization(groups=2, axis=1), "group2"),
    ],
)
def test_worked_example_channels_first(layer, key):
    outputs = np.asarray(layer()(WORKED_EXAMPLE, training=True))
    np.testing.assert_allclose(outputs[0, :, 0, :], WORKED_EXAMPLE_SAMPLE_A[key], atol=1e-3)


@pytest.mark.parametrize("groups, key", [(1, "layer"), (2, "group2"), (4, "instance")])
def test_worked_example_through_the_figure_3_reference(groups, key):
    outputs = np.asarray(group_normalize_reference(WORKED_EXAMPLE, groups, axis=1))
    np.testing.assert_allclose(outputs[0, :, 0, :], WORKED_EXAMPLE_SAMPLE_A[key], atol=1e-3)


def test_worked_example_channels_last_matches_channels_first():
    channels_last = np.transpose(WORKED_EXAMPLE, (0, 2, 3, 1))
    outputs = np.asarray(GroupNormalization(groups=2)(channels_last))
    np.testing.assert_allclose(outputs[0, 0].T, WORKED_EXAMPLE_SAMPLE_A["group2"], atol=1e-3)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize(
    "shape, groups",
    [
        ((4, 8), 2),
        ((3, 7, 12), 3),
        ((2, 5, 6, 16), 4),
        ((2, 5, 6, 16), 1),
        ((2, 5, 6, 16), 16),
        ((2, 3, 4, 5, 8), 2),
    ],
)
def test_matches_numpy_reference_on_random_inputs(shape, groups, axis):
    x, gamma, beta = random_inputs(shape, axis)
    layer = GroupNormalization(
        groups=groups,
        axis=axis,
        gamma_initializer=keras.initializers.Constant(gamma),
        beta_initializer=keras.initializers.Constant(beta),
    )
    expected = reference_group_norm(x, groups, axis, gamma=gamma, beta=beta)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5, rtol=1e-5)
    functional = group_normalize(x, groups, axis=axis, gamma=gamma, beta=beta)
    np.testing.assert_allclose(np.asarray(functional), expected, atol=1e-5, rtol=1e-5)


# Shapes with 6 channels, ranks 2 to 5, and 1, 2 or 6 groups (-1 is one per channel).
# Rank 2 with one group per channel is left out: groups of a single element normalize to
# exactly 0, which the fast kernel's folded multiply-add only reaches to within about
# |x| / sqrt(epsilon) float32 roundings.
FIGURE_3_CASES = [
    (shape, groups)
    for shape in [(4, 6), (3, 5, 6), (2, 4, 5, 6), (2, 3, 4, 2, 6)]
    for groups in [1, 2, 6, -1]
    if len(shape) > 2 or groups in (1, 2)
]


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("shape, groups", FIGURE_3_CASES)
def test_figure_3_reference_equals_the_fast_kernel_and_numpy(shape, groups, axis):
    x, gamma, beta = random_inputs(shape, axis)
    reference = np.asarray(group_normalize_reference(x, groups, axis=axis, gamma=gamma, beta=beta))
    fast = np.asarray(group_normalize(x, groups, axis=axis, gamma=gamma, beta=beta))
    np.testing.assert_allclose(reference, fast, atol=1e-5, rtol=1e-5)
    numpy_groups = x.shape[axis] if groups == -1 else groups
    expected = reference_group_norm(x, numpy_groups, axis, gamma=gamma, beta=beta)
    np.testing.assert_allclose(reference, expected, atol=1e-5, rtol=1e-5)


def test_groups_are_contiguous_channel_blocks_not_pixels():
    # Channels 0-1 hold small values, channels 2-3 large ones. With correct grouping of
    # channels each group is normalized on its own; grouping pixels would mix them.
    x = np.zeros((1, 2, 2, 4), np.float32)
    x[..., :2] = np.arange(8).reshape(2, 2, 2)
    x[..., 2:] = 1000 + 100 * np.arange(8).reshape(2, 2, 2)
    out = np.asarray(GroupNormalization(groups=2)(x))
    for block in (out[..., :2], out[..., 2:]):
        np.testing.assert_allclose(block.mean(), 0, atol=1e-5)
        np.testing.assert_allclose(block.std(), 1, atol=1e-3)


def test_special_cases_of_group_norm():
    x = np.random.default_rng(1).normal(5, 10, size=(3, 4, 5, 8)).astype(np.float32)
    layer_norm = np.asarray(LayerNormalization()(x))
    np.testing.assert_allclose(np.asarray(GroupNormalization(groups=1)(x)), layer_norm, atol=1e-6)
    np.testing.assert_allclose(layer_norm, reference_group_norm(x, 1), atol=1e-5)
    instance_norm = np.asarray(InstanceNormalization()(x))
    np.testing.assert_allclose(
        np.asarray(GroupNormalization(groups=8)(x)), instance_norm, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(GroupNormalization(groups=-1)(x)), instance_norm, atol=1e-6
    )
    np.testing.assert_allclose(instance_norm, reference_group_norm(x, 8), atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize(
    "shape, channels_per_group",
    [((4, 8), 2), ((3, 7, 12), 4), ((2, 5, 6, 16), 4), ((2, 5, 6, 16), 16), ((2, 3, 4, 5, 8), 1)],
)
def test_channels_per_group_matches_numpy_reference(shape, channels_per_group, axis):
    x, gamma, beta = random_inputs(shape, axis)
    layer = GroupNormalization(
        channels_per_group=channels_per_group,
        axis=axis,
        gamma_initializer=keras.initializers.Constant(gamma),
        beta_initializer=keras.initializers.Constant(beta),
    )
    groups = shape[-1] // channels_per_group
    expected = reference_group_norm(x, groups, axis, gamma=gamma, beta=beta)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5, rtol=1e-5)
    assert layer.groups == groups


def test_channels_per_group_special_cases():
    x = np.random.default_rng(7).normal(5, 10, size=(3, 4, 5, 8)).astype(np.float32)
    # One channel per group is instance norm ...
    per_channel = np.asarray(GroupNormalization(channels_per_group=1)(x))
    np.testing.assert_allclose(per_channel, np.asarray(InstanceNormalization()(x)), atol=1e-6)
    np.testing.assert_allclose(per_channel, reference_group_norm(x, 8), atol=1e-5)
    # ... all C channels in one group is layer norm.
    one_group = np.asarray(GroupNormalization(channels_per_group=8)(x))
    np.testing.assert_allclose(one_group, np.asarray(LayerNormalization()(x)), atol=1e-6)
    np.testing.assert_allclose(one_group, reference_group_norm(x, 1), atol=1e-5)


def test_groups_are_resolved_from_channels_per_group_in_build():
    layer = GroupNormalization(channels_per_group=4)
    assert layer.groups is None
    layer.build((None, 3, 3, 64))
    assert layer.groups == 16 and layer.channels_per_group == 4


def test_default_is_32_groups():
    layer = GroupNormalization()
    assert layer.groups == 32 and layer.channels_per_group is None
    assert layer.get_config()["groups"] == 32


def test_layer_norm_has_per_channel_gamma_and_beta():
    layer = LayerNormalization()
    layer.build((None, 5, 5, 16))
    assert layer.gamma.shape == (16,)
    assert layer.beta.shape == (16,)


@pytest.mark.parametrize(
    "layer_class", [GroupNormalization, InstanceNormalization, LayerNormalization]
)
def test_each_sample_is_independent_of_the_batch(layer_class):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6, 6, 32)).astype(np.float32)
    layer = layer_class()
    alone = np.asarray(layer(x[:1]))
    other = x.copy()
    other[1:] = rng.normal(100, 50, size=other[1:].shape)
    np.testing.assert_allclose(np.asarray(layer(x))[:1], alone, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(other))[:1], alone, atol=1e-6)


def paper_group_norm_tf(x, gamma, beta, groups, epsilon=1e-5):
    """The paper's Figure 3 code, NCHW, in float64 TensorFlow."""
    n, c, h, w = x.shape
    grouped = tf.reshape(x, [n, groups, c // groups, h, w])
    mean, var = tf.nn.moments(grouped, [2, 3, 4], keepdims=True)
    grouped = (grouped - mean) / tf.sqrt(var + epsilon)
    x = tf.reshape(grouped, [n, c, h, w])
    return x * tf.reshape(gamma, [1, c, 1, 1]) + tf.reshape(beta, [1, c, 1, 1])


def test_gradients_match_the_paper_formula():
    rng = np.random.default_rng(3)
    x = rng.normal(5, 10, size=(2, 3, 4, 8)).astype(np.float32)  # NHWC
    upstream = rng.normal(size=x.shape)
    gamma = rng.normal(1, 0.3, size=8)
    beta = rng.normal(0, 0.3, size=8)
    layer = GroupNormalization(
        groups=4,
        gamma_initializer=keras.initializers.Constant(gamma),
        beta_initializer=keras.initializers.Constant(beta),
    )
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        loss = tf.reduce_sum(layer(x_tf) * tf.constant(upstream, tf.float32))
    ours = tape.gradient(loss, [x_tf, layer.gamma, layer.beta])

    x64 = tf.constant(np.transpose(x, (0, 3, 1, 2)).astype(np.float64))
    gamma64, beta64 = tf.Variable(gamma), tf.Variable(beta)
    with tf.GradientTape() as tape:
        tape.watch(x64)
        out = paper_group_norm_tf(x64, gamma64, beta64, groups=4)
        loss = tf.reduce_sum(out * tf.constant(np.transpose(upstream, (0, 3, 1, 2))))
    grad_x, grad_gamma, grad_beta = tape.gradient(loss, [x64, gamma64, beta64])
    np.testing.assert_allclose(
        ours[0].numpy(), np.transpose(grad_x.numpy(), (0, 2, 3, 1)), atol=1e-4, rtol=1e-3
    )
    np.testing.assert_allclose(ours[1].numpy(), grad_gamma.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ours[2].numpy(), grad_beta.numpy(), atol=1e-4, rtol=1e-4)


def test_unknown_batch_and_spatial_sizes_in_tf_function_and_xla():
    inputs = keras.Input((None, None, 64))
    model = keras.Model(inputs, GroupNormalization(groups=32)(inputs))
    x = np.random.default_rng(4).normal(size=(3, 5, 7, 64)).astype(np.float32)
    expected = reference_group_norm(x, 32)
    np.testing.assert_allclose(np.asarray(model(x)), expected, atol=1e-5)
    graph = tf.function(model, reduce_retracing=True)
    np.testing.assert_allclose(graph(x).numpy(), expected, atol=1e-5)
    compiled = tf.function(model, jit_compile=True)
    np.testing.assert_allclose(compiled(x).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(
        compiled(x[:2, :3]).numpy(), reference_group_norm(x[:2, :3], 32), atol=1e-5
    )


def test_unknown_spatial_sizes_channels_first():
    inputs = keras.Input((16, None, None))
    model = keras.Model(inputs, GroupNormalization(groups=4, axis=1)(inputs))
    x = np.random.default_rng(5).normal(size=(2, 16, 3, 6)).astype(np.float32)
    graph = tf.function(model, input_signature=[tf.TensorSpec((None, 16, None, None))])
    np.testing.assert_allclose(graph(x).numpy(), reference_group_norm(x, 4, axis=1), atol=1e-5)


def test_statistics_stay_accurate_for_activations_far_from_zero():
    # A single-pass E[x^2] - E[x]^2 in float32 loses every digit of a unit variance
    # around a mean of 1e4; the layer must not.
    rng = np.random.default_rng(6)
    x = (1e4 + rng.normal(size=(2, 6, 6, 8))).astype(np.float32)
    expected = reference_group_norm(x.astype(np.float64), 4)
    np.testing.assert_allclose(np.asarray(group_normalize(x, 4)), expected, atol=2e-3)


# One test per error message.


@pytest.mark.parametrize("groups", [0, -2, 2.5, "4", True])
def test_invalid_groups_value(groups):
    with pytest.raises(
        ValueError, match=rf"groups must be a positive integer.*received groups={groups!r}"
    ):
        GroupNormalization(groups=groups)


@pytest.mark.parametrize("groups", [32, -1, 4])
def test_groups_and_channels_per_group_together(groups):
    with pytest.raises(
        ValueError,
        match=rf"Pass either groups or channels_per_group, not both; received groups={groups} "
        r"and channels_per_group=4",
    ):
        GroupNormalization(groups=groups, channels_per_group=4)


@pytest.mark.parametrize("channels_per_group", [0, -1, 2.5, "4", True])
def test_invalid_channels_per_group_value(channels_per_group):
    message = rf"channels_per_group must be a positive integer.*received channels_per_group={channels_per_group!r}"
    with pytest.raises(ValueError, match=message):
        GroupNormalization(channels_per_group=channels_per_group)


@pytest.mark.parametrize("channels_per_group", [3, 32])
def test_channels_per_group_that_does_not_divide_channels(channels_per_group):
    message = rf"channels_per_group={channels_per_group} does not divide the 16 channels.*\[1, 2, 4, 8, 16\]"
    with pytest.raises(ValueError, match=message):
        GroupNormalization(channels_per_group=channels_per_group)(
            np.zeros((1, 2, 2, 16), np.float32)
        )


def test_channels_per_group_with_an_undefined_channel_dimension():
    with pytest.raises(ValueError, match=r"channel axis -1 of the input must have a defined size"):
        GroupNormalization(channels_per_group=2)(keras.Input((4, 4, None)))


def test_groups_that_do_not_divide_channels():
    with pytest.raises(
        ValueError, match=r"groups=3 does not divide the 16 channels.*\[1, 2, 4, 8, 16\]"
    ):
        GroupNormalization(groups=3)(np.zeros((1, 2, 2, 16), np.float32))


def test_more_groups_than_channels():
    with pytest.raises(ValueError, match=r"groups=32 is more than the 16 channels"):
        GroupNormalization(groups=32)(np.zeros((1, 2, 2, 16), np.float32))


def test_undefined_channel_dimension():
    with pytest.raises(ValueError, match=r"channel axis -1 of the input must have a defined size"):
        GroupNormalization(groups=2)(keras.Input((4, 4, None)))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match=r"axis=4 is out of range for an input of rank 4"):
        GroupNormalization(groups=2, axis=4)(np.zeros((1, 2, 2, 4), np.float32))


@pytest.mark.parametrize(
    "layer_class", [GroupNormalization, InstanceNormalization, LayerNormalization]
)
def test_batch_axis_is_refused_at_construction(layer_class):
    # As in tensorflow-addons, whose tests expect GroupNormalization(axis=0) to fail.
    with pytest.raises(
        ValueError, match=r"axis=0 is the batch axis.*-1 for channels-last.*1 for channels-first"
    ):
        layer_class(axis=0)


def test_negative_batch_axis_is_refused_at_build():
    with pytest.raises(
        ValueError, match=r"axis=-4 is the batch axis of an input of shape \(4, 2, 2, 4\)"
    ):
        GroupNormalization(groups=1, axis=-4)(np.zeros((4, 2, 2, 4), np.float32))


def test_axis_must_be_one_integer():
    with pytest.raises(ValueError, match=r"axis must be a single integer.*received axis=\[1, 2\]"):
        GroupNormalization(axis=[1, 2])


@pytest.mark.parametrize("shape", [(8,), (1, 2, 2, 2, 2, 8)])
def test_unsupported_rank(shape):
    with pytest.raises(ValueError, match=r"expects inputs of rank 2 to 5"):
        GroupNormalization(groups=2)(np.zeros(shape, np.float32))


@pytest.mark.parametrize("epsilon", [0, -1e-3, float("nan"), "a"])
def test_non_positive_epsilon(epsilon):
    with pytest.raises(
        ValueError,
        match=re.escape(f"epsilon must be a positive float; received epsilon={epsilon!r}"),
    ):
        GroupNormalization(epsilon=epsilon)


@pytest.mark.parametrize("layer_class", [InstanceNormalization, LayerNormalization])
def test_fixed_group_layers_reject_groups(layer_class):
    with pytest.raises(ValueError, match=r"does not take `groups`.*received groups=4"):
        layer_class(groups=4)


@pytest.mark.parametrize("layer_class", [InstanceNormalization, LayerNormalization])
def test_fixed_group_layers_reject_channels_per_group(layer_class):
    with pytest.raises(
        ValueError,
        match=r"does not take `channels_per_group`.*received channels_per_group=2\. Use GroupNormalization",
    ):
        layer_class(channels_per_group=2)


def test_instance_norm_rejects_the_groups_that_tensorflow_addons_ignored():
    with pytest.raises(
        ValueError,
        match=r"always uses one group per channel.*tensorflow-addons' InstanceNormalization ignored "
        r"`groups` with a warning",
    ):
        InstanceNormalization(groups=32)


# The pure functions check their arguments as the layers do.

PURE_FUNCTIONS = pytest.mark.parametrize("function", [group_normalize, group_normalize_reference])
RANK_4_INPUTS = np.zeros((2, 3, 3, 4), np.float32)


@PURE_FUNCTIONS
@pytest.mark.parametrize("axis", [7, 4, -5])
def test_functions_reject_an_axis_out_of_range(function, axis):
    with pytest.raises(
        ValueError, match=rf"axis={axis} is out of range for an input of rank 4.*\[-4, 3\]"
    ):
        function(RANK_4_INPUTS, 2, axis=axis)


@PURE_FUNCTIONS
@pytest.mark.parametrize("axis", [0, -4])
def test_functions_reject_the_batch_axis(function, axis):
    with pytest.raises(ValueError, match=rf"axis={axis} is the batch axis"):
        function(RANK_4_INPUTS, 2, axis=axis)


@PURE_FUNCTIONS
def test_functions_reject_an_axis_that_is_not_an_integer(function):
    with pytest.raises(ValueError, match=r"axis must be a single integer.*received axis=1.0"):
        function(RANK_4_INPUTS, 2, axis=1.0)


@PURE_FUNCTIONS
@pytest.mark.parametrize("groups", [0, -2, 2.5, "4", True])
def test_functions_reject_invalid_groups(function, groups):
    with pytest.raises(
        ValueError, match=rf"groups must be a positive integer.*received groups={groups!r}"
    ):
        function(RANK_4_INPUTS, groups)


@PURE_FUNCTIONS
@pytest.mark.parametrize(
    "groups, message",
    [
        (3, r"groups=3 does not divide the 4 channels.*\[1, 2, 4\]"),
        (8, r"groups=8 is more than the 4 channels"),
    ],
)
def test_functions_reject_groups_that_do_not_fit_the_channels(function, groups, message):
    with pytest.raises(ValueError, match=message):
        function(RANK_4_INPUTS, groups)


@PURE_FUNCTIONS
@pytest.mark.parametrize("epsilon", [-1e-3, float("nan"), float("inf"), "a", None])
def test_functions_reject_invalid_epsilon(function, epsilon):
    message = f"epsilon must be a finite number >= 0; received epsilon={epsilon!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        function(RANK_4_INPUTS, 2, epsilon=epsilon)


@PURE_FUNCTIONS
def test_functions_accept_zero_epsilon(function):
    x, _, _ = random_inputs((2, 3, 3, 4), axis=-1)
    np.testing.assert_allclose(
        np.asarray(function(x, 2, epsilon=0)), reference_group_norm(x, 2, epsilon=0), atol=1e-5
    )


@PURE_FUNCTIONS
def test_functions_reject_inputs_without_a_channel_axis(function):
    with pytest.raises(ValueError, match=r"needs inputs of rank >= 2.*shape \(8,\)"):
        function(np.zeros(8, np.float32), 1)


# Serialization.


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: GroupNormalization(groups=-1, axis=1, epsilon=1e-3, gamma_regularizer="l2"),
        lambda: GroupNormalization(groups=4, center=False),
        lambda: GroupNormalization(channels_per_group=2, axis=1),
        lambda: InstanceNormalization(scale=False),
        lambda: LayerNormalization(beta_initializer="ones"),
    ],
)
def test_config_is_the_same_before_and_after_build(make_layer):
    layer = make_layer()
    before = layer.get_config()
    shape = (2, 8, 3, 3) if layer.axis == 1 else (2, 3, 3, 8)
    layer(np.ones(shape, np.float32))
    assert layer.get_config() == before
    clone = type(layer).from_config(before)
    assert clone.get_config() == before


def test_model_saves_and_loads_with_identical_outputs(tmp_path):
    rng = np.random.default_rng(5)
    inputs = keras.Input((6, 6, 8))
    x = GroupNormalization(
        groups=4, gamma_initializer="random_normal", beta_initializer="random_normal"
    )(inputs)
    x = InstanceNormalization()(x)
    x = LayerNormalization()(x)
    model = keras.Model(inputs, x)
    data = rng.normal(size=(3, 6, 6, 8)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == [
        "GroupNormalization",
        "InstanceNormalization",
        "LayerNormalization",
    ]
    np.testing.assert_array_equal(np.asarray(loaded(data)), np.asarray(model(data)))


def test_channels_per_group_config_and_saving(tmp_path):
    layer = GroupNormalization(channels_per_group=2, gamma_initializer="random_normal")
    config = layer.get_config()
    assert config["groups"] is None and config["channels_per_group"] == 2
    inputs = keras.Input((5, 5, 8))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path).layers[1]
    assert loaded.channels_per_group == 2 and loaded.groups == 4
    data = np.random.default_rng(8).normal(size=(2, 5, 5, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(data)), np.asarray(model(data)))
    assert {k: v for k, v in loaded.get_config().items() if k != "name"} == {
        k: v for k, v in config.items() if k != "name"
    }


# Mixed precision.


@pytest.mark.parametrize("mixed_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision(mixed_policy):
    compute_dtype = mixed_policy.split("_")[1]
    layer = GroupNormalization(groups=4)
    x = np.random.default_rng(6).normal(0, 1e4, size=(2, 3, 3, 8))
    outputs = layer(tf.constant(x, compute_dtype))
    assert outputs.dtype == compute_dtype
    assert layer.gamma.dtype == "float32" and layer.beta.dtype == "float32"
    values = np.asarray(tf.cast(outputs, tf.float32))
    assert np.isfinite(values).all()
    # Rounding the input to the compute dtype is the only error that may remain.
    rounded = np.asarray(tf.cast(tf.constant(x, compute_dtype), tf.float32))
    tolerance = 1e-2 if compute_dtype == "float16" else 5e-2
    np.testing.assert_allclose(values, reference_group_norm(rounded, 4), atol=tolerance)


# Weight Standardization.


@pytest.mark.parametrize("epsilon_inside_sqrt", [True, False])
@pytest.mark.parametrize("epsilon", [1e-5, 1e-2])
@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (7, 7, 3, 64), (1, 1, 16, 8), (5, 2)])
def test_standardized_kernel_matches_numpy(shape, epsilon, epsilon_inside_sqrt):
    kernel = random_kernel(shape)
    expected = reference_standardized_kernel(kernel, epsilon, epsilon_inside_sqrt)
    outputs = np.asarray(standardize_kernel(kernel, epsilon, epsilon_inside_sqrt))
    np.testing.assert_allclose(outputs, expected, atol=1e-5, rtol=1e-5)


def test_epsilon_placement_differs_as_documented():
    kernel = random_kernel((3, 3, 4, 2), std=1e-2)
    variance = kernel.reshape(-1, 2).var(axis=0)
    inside = np.asarray(standardize_kernel(kernel, 1e-4, epsilon_inside_sqrt=True))
    outside = np.asarray(standardize_kernel(kernel, 1e-4, epsilon_inside_sqrt=False))
    np.testing.assert_allclose(
        inside.reshape(-1, 2).var(axis=0), variance / (variance + 1e-4), rtol=1e-4
    )
    np.testing.assert_allclose(
        outside.reshape(-1, 2).var(axis=0), variance / (np.sqrt(variance) + 1e-4) ** 2, rtol=1e-4
    )


def test_effective_kernel_has_zero_mean_and_unit_variance_per_output_channel():
    kernel = random_kernel((3, 3, 8, 16), std=1.0)
    layer = ws_conv(kernel)
    effective = np.asarray(standardize_kernel(layer.kernel, layer.epsilon)).reshape(-1, 16)
    np.testing.assert_allclose(effective.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(effective.var(axis=0), 1, atol=1e-4)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(strides=2, padding="same"),
        dict(padding="valid", dilation_rate=2),
        dict(groups=2, padding="same", activation="relu"),
        dict(epsilon=1e-3, epsilon_inside_sqrt=False),
    ],
)
def test_ws_conv_equals_a_plain_conv_with_the_numpy_standardized_kernel(options):
    rng = np.random.default_rng(9)
    groups = options.get("groups", 1)
    kernel = random_kernel((3, 3, 8 // groups, 6))
    bias = rng.normal(size=6).astype(np.float32)
    x = rng.normal(size=(2, 9, 9, 8)).astype(np.float32)
    layer = ws_conv(kernel, bias, **options)
    conv_options = {k: v for k, v in options.items() if k not in ("epsilon", "epsilon_inside_sqrt")}
    plain = keras.layers.Conv2D(6, 3, **conv_options)
    plain.build((None, 9, 9, 8))
    standardized = reference_standardized_kernel(
        kernel, options.get("epsilon", 1e-5), options.get("epsilon_inside_sqrt", True)
    )
    plain.set_weights([standardized.astype(np.float32), bias])
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(plain(x)), atol=1e-4, rtol=1e-4)
    # The trainable variable stays the raw kernel.
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)


def test_ws_conv_ignores_the_scale_and_offset_of_each_output_channel():
    rng = np.random.default_rng(10)
    kernel = random_kernel((3, 3, 4, 5), std=1.0)
    x = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    rescaled = kernel * rng.uniform(2, 10, size=5).astype(np.float32) + rng.normal(size=5).astype(
        np.float32
    )
    np.testing.assert_allclose(
        np.asarray(ws_conv(rescaled)(x)), np.asarray(ws_conv(kernel)(x)), atol=1e-3, rtol=1e-3
    )


def test_ws_conv_under_tf_function_and_xla():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, WeightStandardizedConv2D(8, 3, padding="same")(inputs))
    x = np.random.default_rng(11).normal(size=(2, 7, 5, 3)).astype(np.float32)
    eager = np.asarray(model(x))
    np.testing.assert_allclose(tf.function(model)(x).numpy(), eager, atol=1e-5)
    np.testing.assert_allclose(tf.function(model, jit_compile=True)(x).numpy(), eager, atol=1e-5)


def test_ws_conv_gradient_reaches_the_raw_kernel():
    layer = ws_conv(random_kernel((3, 3, 2, 4)))
    x = tf.constant(np.random.default_rng(12).normal(size=(2, 5, 5, 2)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    grad = tape.gradient(loss, layer.kernel).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    # Standardization makes the output invariant to shifting each output channel's
    # weights, so the gradient has zero mean over every fan-in.
    np.testing.assert_allclose(grad.reshape(-1, 4).mean(axis=0), 0, atol=1e-3 * np.abs(grad).max())


@pytest.mark.parametrize("epsilon", [0, -1e-3, float("nan"), "a"])
def test_ws_conv_rejects_a_non_positive_epsilon(epsilon):
    with pytest.raises(
        ValueError,
        match=re.escape(f"epsilon must be a positive float; received epsilon={epsilon!r}"),
    ):
        WeightStandardizedConv2D(4, 3, epsilon=epsilon)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_ws_conv_rejects_a_non_boolean_epsilon_placement(value):
    message = rf"epsilon_inside_sqrt must be True.*or False.*received epsilon_inside_sqrt={value!r}"
    with pytest.raises(ValueError, match=message):
        WeightStandardizedConv2D(4, 3, epsilon_inside_sqrt=value)


@pytest.mark.parametrize("epsilon", [-1.0, float("inf"), None])
def test_standardize_kernel_rejects_invalid_epsilon(epsilon):
    message = f"epsilon must be a finite number >= 0; received epsilon={epsilon!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        standardize_kernel(np.ones((3, 3, 2, 2), np.float32), epsilon)


def test_standardize_kernel_rejects_a_vector():
    with pytest.raises(ValueError, match=r"kernel of rank >= 2.*shape \(4,\)"):
        standardize_kernel(np.ones(4, np.float32))


def test_ws_conv_positional_conv2d_arguments_are_not_taken_for_epsilon():
    layer = WeightStandardizedConv2D(4, 3, 2, "same")
    assert layer.strides == (2, 2) and layer.padding == "same" and layer.epsilon == 1e-5


def test_ws_conv_config_round_trip_and_saving(tmp_path):
    layer = WeightStandardizedConv2D(
        6, 3, strides=2, epsilon=1e-4, epsilon_inside_sqrt=False, name="ws"
    )
    config = layer.get_config()
    assert config["epsilon"] == 1e-4 and config["epsilon_inside_sqrt"] is False
    assert WeightStandardizedConv2D.from_config(config).get_config() == config
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layer(inputs))
    assert layer.get_config() == config
    path = tmp_path / "ws.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("ws")) is WeightStandardizedConv2D
    assert loaded.get_layer("ws").get_config() == config
    data = np.random.default_rng(13).normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(data)), np.asarray(model(data)))


def test_ws_conv_mixed_bfloat16_standardizes_in_float32():
    # Each output channel's weights are about 100 +- 0.01: rounded to bfloat16 (steps of
    # 0.5 near 100) before standardizing, they would lose all their spread.
    rng = np.random.default_rng(14)
    kernel = (100 + 0.01 * rng.normal(size=(3, 3, 4, 8))).astype(np.float32)
    x = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        layer = ws_conv(kernel, np.zeros(8, np.float32), padding="same")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    outputs = layer(tf.constant(x, "bfloat16"))
    assert outputs.dtype == "bfloat16"
    assert layer.kernel.dtype == "float32" and layer.bias.dtype == "float32"
    plain = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)
    plain.build((None, 6, 6, 4))
    plain.set_weights([reference_standardized_kernel(kernel).astype(np.float32)])
    rounded = np.asarray(tf.cast(tf.constant(x, "bfloat16"), tf.float32))
    expected = np.asarray(plain(rounded))
    # bfloat16 keeps 8 bits: relative errors of about 2 ** -8 per weight and per output.
    np.testing.assert_allclose(
        np.asarray(tf.cast(outputs, tf.float32)), expected, atol=0.05 * np.abs(expected).max()
    )


def test_the_documented_range_of_input_magnitudes_holds():
    # group_normalize's docstring: exact up to about 4e18, then float32 squares overflow.
    from utils.layers import group_normalize

    x = np.random.default_rng(3).standard_normal((2, 4, 4, 8)).astype("float32")
    expected = keras.ops.convert_to_numpy(group_normalize(x, groups=2))
    for scale in (1e3, 1e10, 1e18):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(group_normalize(x * scale, groups=2)), expected, atol=1e-4
        )
    assert not keras.ops.convert_to_numpy(group_normalize(x * 1e19, groups=2)).any()
