"""Noise added to a normalization's output: the distortion test of Gunawan et al. (2021).

That study adds Gaussian noise (mean 1e-3, standard deviation 1.001) to the output of
every normalization layer and reports that a GN network stops learning while a BN network
still trains. Its published code draws one value per example and per group of channels
(32 groups, whatever the normalization) and adds it to every position of every channel
in the group: a random shift of each group's mean, the statistic GN normalizes.
`OutputNoise` is that distortion as a Keras layer (`groups=32`), or with one draw per
element (`groups=None`, like `keras.layers.GaussianNoise` with a mean). It is active
while training only; evaluation sees the network without noise.
"""

import math

import keras
from keras import ops

__all__ = ["OutputNoise", "grouped_noise"]


def grouped_noise(group_noise, channels):
    """Spreads one noise value per (example, group) over the group's channels.

    Args:
        group_noise: tensor of shape (batch, 1, ..., 1, groups), channels last.
        channels: the number of channels, a multiple of `groups`.

    Returns:
        A tensor of shape (batch, 1, ..., 1, channels) in which channel c holds the value
        of group c // (channels // groups): consecutive channels form a group, as in
        `utils.layers.GroupNormalization`. It broadcasts over the spatial axes.
    """
    groups = group_noise.shape[-1]
    return ops.repeat(group_noise, channels // groups, axis=-1)


@keras.saving.register_keras_serializable(package="utils")
class OutputNoise(keras.layers.Layer):
    """Adds Gaussian noise of a given mean and standard deviation while training.

    Args:
        mean: the noise's mean.
        stddev: the noise's standard deviation, >= 0.
        groups: None draws one value per element. An integer draws one value per example
            and per group of `channels // groups` consecutive channels (channels last),
            shared by all the group's channels and positions; it must divide the
            channels. The 2021 study's code uses 32.
        seed: seed of the noise; None draws it from Keras's global seed
            (`keras.utils.set_random_seed`), so a seeded run is reproducible.
        **kwargs: base layer keyword arguments (name, dtype, ...).

    Reference:
        Agus Gunawan, Xu Yin and Kang Zhang, "Understanding and Improving Group
        Normalization", 2021, the distortion experiment.
    """

    def __init__(self, mean=0.0, stddev=0.0, groups=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("mean", mean), ("stddev", stddev)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number; received {name}={value!r}.")
        if stddev < 0:
            raise ValueError(f"stddev must be >= 0; received stddev={stddev!r}.")
        if groups is not None and (
            isinstance(groups, bool) or not isinstance(groups, int) or groups < 1
        ):
            raise ValueError(
                f"groups must be None or a positive integer; received groups={groups!r}."
            )
        self.mean = float(mean)
        self.stddev = float(stddev)
        self.groups = groups
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.groups is not None and (channels is None or channels % self.groups):
            raise ValueError(
                f"groups={self.groups} must divide the number of channels, {channels}, of the input "
                f"of shape {tuple(input_shape)}; choose a divisor of {channels} or groups=None."
            )

    def call(self, inputs, training=False):
        if not training:
            return inputs
        if self.groups is None:
            return inputs + self._normal(ops.shape(inputs))
        rank = len(inputs.shape)
        group_noise = self._normal((ops.shape(inputs)[0],) + (1,) * (rank - 2) + (self.groups,))
        return inputs + grouped_noise(group_noise, inputs.shape[-1])

    def _normal(self, shape):
        return keras.random.normal(
            shape,
            mean=self.mean,
            stddev=self.stddev,
            dtype=self.compute_dtype,
            seed=self.seed_generator,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "mean": self.mean,
            "stddev": self.stddev,
            "groups": self.groups,
            "seed": self.seed,
        }
