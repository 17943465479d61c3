"""OutputNoise: the noise of the distortion test, in training only, serializable."""

import keras
import numpy as np
import pytest

from utils.distortion import OutputNoise


def test_training_adds_noise_of_the_given_mean_and_sd_and_inference_adds_none():
    x = np.zeros((64, 16, 16, 8), dtype="float32") + 3.0
    layer = OutputNoise(mean=0.5, stddev=2.0, groups=None, seed=1)
    noise = np.asarray(layer(x, training=True)) - x
    assert abs(noise.mean() - 0.5) < 0.03 and abs(noise.std() - 2.0) < 0.03
    # A fresh draw at every call, none at inference.
    assert not np.array_equal(np.asarray(layer(x, training=True)) - x, noise)
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_grouped_noise_is_one_draw_per_example_and_group_of_consecutive_channels():
    # 4,096 examples x 4 groups of 3 channels: one value per (example, group), the same
    # at every position and in every channel of the group, as the study's code draws it.
    x = np.random.default_rng(0).normal(size=(4096, 5, 5, 12)).astype("float32")
    noise = np.asarray(OutputNoise(mean=0.5, stddev=2.0, groups=4, seed=2)(x, training=True)) - x
    blocks = noise.reshape(4096, 5, 5, 4, 3)
    np.testing.assert_allclose(blocks, blocks[:, :1, :1, :, :1] * np.ones_like(blocks), atol=1e-5)
    draws = blocks[:, 0, 0, :, 0]
    assert abs(draws.mean() - 0.5) < 0.05 and abs(draws.std() - 2.0) < 0.05
    # Different groups and different examples get different draws.
    assert len(np.unique(draws)) > 0.99 * draws.size


def test_grouped_noise_spreads_each_value_over_its_group():
    from utils.distortion import grouped_noise

    values = np.arange(2 * 3, dtype="float32").reshape(2, 1, 1, 3)
    spread = np.asarray(grouped_noise(values, 6))
    np.testing.assert_array_equal(spread[:, 0, 0], [[0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5]])


def test_groups_that_do_not_divide_the_channels_are_refused():
    with pytest.raises(ValueError, match=r"groups=4 must divide the number of channels, 6"):
        OutputNoise(1e-3, 1.001, groups=4)(np.ones((2, 3, 3, 6), "float32"), training=True)


def test_the_same_seed_gives_the_same_noise():
    x = np.ones((2, 4, 4, 3), dtype="float32")
    first, second = OutputNoise(1e-3, 1.001, seed=7), OutputNoise(1e-3, 1.001, seed=7)
    np.testing.assert_array_equal(first(x, training=True), second(x, training=True))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(stddev=-1.0), "stddev=-1.0"),
        (dict(mean=float("nan")), "mean=nan"),
        (dict(stddev="1"), "stddev='1'"),
        (dict(groups=0), "groups=0"),
        (dict(groups=2.0), "groups=2.0"),
    ],
)
def test_bad_values_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        OutputNoise(**arguments)


def test_mixed_precision_output_and_round_trip(tmp_path):
    layer = OutputNoise(1e-3, 1.001, dtype="mixed_bfloat16")
    assert layer(np.ones((2, 3), "float32"), training=True).dtype == "bfloat16"
    inputs = keras.Input((5,))
    model = keras.Model(
        inputs, OutputNoise(0.1, 0.2, groups=5, seed=3, name="noise")(keras.layers.Dense(5)(inputs))
    )
    model.save(tmp_path / "noise.keras")
    loaded = keras.models.load_model(tmp_path / "noise.keras")
    assert loaded.get_layer("noise").get_config()["stddev"] == 0.2
    assert loaded.get_layer("noise").get_config()["groups"] == 5
    x = np.ones((2, 5), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
