"""Noise added to a normalization's output: the distortion test of Gunawan et al. (2021).

That study adds Gaussian noise (mean 1e-3, standard deviation 1.001) to the output of
every normalization layer and reports that a GN network stops learning while a BN network
still trains. `OutputNoise` is that distortion as a Keras layer, active while training
only (like `keras.layers.GaussianNoise`, which it extends with a mean); evaluation sees
the network without noise.
"""

import math

import keras
from keras import ops

__all__ = ["OutputNoise"]


@keras.saving.register_keras_serializable(package="utils")
class OutputNoise(keras.layers.Layer):
    """Adds Gaussian noise of a given mean and standard deviation while training.

    Args:
        mean: the noise's mean.
        stddev: the noise's standard deviation, >= 0.
        seed: seed of the noise; None draws it from Keras's global seed
            (`keras.utils.set_random_seed`), so a seeded run is reproducible.
        **kwargs: base layer keyword arguments (name, dtype, ...).

    Reference:
        Agus Gunawan, Xu Yin and Kang Zhang, "Understanding and Improving Group
        Normalization", 2021, the distortion experiment.
    """

    def __init__(self, mean=0.0, stddev=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("mean", mean), ("stddev", stddev)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number; received {name}={value!r}.")
        if stddev < 0:
            raise ValueError(f"stddev must be >= 0; received stddev={stddev!r}.")
        self.mean = float(mean)
        self.stddev = float(stddev)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training:
            return inputs
        noise = keras.random.normal(
            ops.shape(inputs), mean=self.mean, stddev=self.stddev, dtype=self.compute_dtype, seed=self.seed_generator
        )
        return inputs + noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev, "seed": self.seed}
