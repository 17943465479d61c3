"""OutputNoise: the noise of the distortion test, in training only, serializable."""

import keras
import numpy as np
import pytest

from utils.distortion import OutputNoise


def test_training_adds_noise_of_the_given_mean_and_sd_and_inference_adds_none():
    x = np.zeros((64, 16, 16, 8), dtype="float32") + 3.0
    layer = OutputNoise(mean=0.5, stddev=2.0, seed=1)
    noise = np.asarray(layer(x, training=True)) - x
    assert abs(noise.mean() - 0.5) < 0.03 and abs(noise.std() - 2.0) < 0.03
    # A fresh draw at every call, none at inference.
    assert not np.array_equal(np.asarray(layer(x, training=True)) - x, noise)
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_the_same_seed_gives_the_same_noise():
    x = np.ones((2, 4, 4, 3), dtype="float32")
    first, second = OutputNoise(1e-3, 1.001, seed=7), OutputNoise(1e-3, 1.001, seed=7)
    np.testing.assert_array_equal(first(x, training=True), second(x, training=True))


@pytest.mark.parametrize("arguments, message", [
    (dict(stddev=-1.0), "stddev=-1.0"),
    (dict(mean=float("nan")), "mean=nan"),
    (dict(stddev="1"), "stddev='1'"),
])
def test_bad_values_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        OutputNoise(**arguments)


def test_mixed_precision_output_and_round_trip(tmp_path):
    layer = OutputNoise(1e-3, 1.001, dtype="mixed_bfloat16")
    assert layer(np.ones((2, 3), "float32"), training=True).dtype == "bfloat16"
    inputs = keras.Input((5,))
    model = keras.Model(inputs, OutputNoise(0.1, 0.2, seed=3, name="noise")(keras.layers.Dense(5)(inputs)))
    model.save(tmp_path / "noise.keras")
    loaded = keras.models.load_model(tmp_path / "noise.keras")
    assert loaded.get_layer("noise").get_config()["stddev"] == 0.2
    x = np.ones((2, 5), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
