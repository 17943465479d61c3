"""Forward + backward time of single normalization layers at the small CNN's shapes.

    python -m benchmarks.layer_benchmark
    python -m benchmarks.layer_benchmark --batch-sizes 32 --rounds 5

Each layer runs as one `tf.function` computing the output and the gradients with respect
to the input and the layer's weights, with and without XLA, at the activation shapes of
the small CNN (29x29x64 after the first conv, 15x15x256 after the second). Layers are
timed in interleaved rounds and the best round is kept; compare ratios within one run.
"""

import argparse
import itertools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import integers_argument  # noqa: E402
from benchmarks import names_argument  # noqa: E402
from utils.layers import GroupNormalization  # noqa: E402
from utils.layers import InstanceNormalization  # noqa: E402
from utils.layers import group_normalize_reference  # noqa: E402


class ReshapedGroupNormalization(GroupNormalization):
    """Our GroupNormalization layer computing GN literally as the paper's Figure 3 does,
    through the (N, H, W, G, C // G) view; the layer computes the same numbers from
    per-channel statistics instead, and this is here to measure that."""

    def call(self, inputs):
        return group_normalize_reference(
            inputs,
            self.groups,
            axis=self.axis,
            epsilon=self.epsilon,
            gamma=self.gamma,
            beta=self.beta,
        )


LAYERS = {
    "keras_bn": lambda: keras.layers.BatchNormalization(epsilon=1e-5),
    "gn": lambda: GroupNormalization(groups=32),
    "gn_reshaped": lambda: ReshapedGroupNormalization(groups=32),
    "in": lambda: InstanceNormalization(),
    "keras_gn": lambda: keras.layers.GroupNormalization(groups=32, epsilon=1e-5),
    "keras_ln": lambda: keras.layers.LayerNormalization(epsilon=1e-5),
}
SHAPES = {"conv1": (29, 29, 64), "conv2": (15, 15, 256)}


def make_step(layer_name, shape, batch_size, jit_compile):
    """A compiled forward+backward step of one layer, and its input."""
    layer = LAYERS[layer_name]()
    inputs = tf.random.stateless_normal((batch_size, *shape), seed=(0, 1))
    upstream = tf.random.stateless_normal((batch_size, *shape), seed=(2, 3))
    layer.build(inputs.shape)

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        return tape.gradient(loss, [x, *layer.trainable_weights])

    step(inputs)  # trace and compile outside the timing
    return step, inputs


def time_step(step, inputs, calls):
    start = time.perf_counter()
    for _ in range(calls):
        outputs = step(inputs)
    outputs[0].numpy()  # wait for the last call to finish
    return (time.perf_counter() - start) / calls


def measure(settings, calls, rounds):
    steps = {setting: make_step(*setting) for setting in settings}
    best = {setting: float("inf") for setting in settings}
    for _ in range(rounds):
        for setting, (step, inputs) in steps.items():
            best[setting] = min(best[setting], time_step(step, inputs, calls))
    return pd.DataFrame(
        [
            dict(
                layer=name,
                shape=shape_name,
                batch_size=batch,
                xla=xla,
                microseconds=round(best[setting] * 1e6, 1),
            )
            for setting in settings
            for name, shape, batch, xla in [setting]
            for shape_name in [next(k for k, v in SHAPES.items() if v == shape)]
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--layers", default=",".join(LAYERS), help="comma-separated, from: " + ",".join(LAYERS)
    )
    parser.add_argument("--batch-sizes", default="32,8,2")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    names = names_argument(parser, args.layers, LAYERS, "layers")
    batch_sizes = integers_argument(args.batch_sizes)
    settings = list(itertools.product(names, SHAPES.values(), batch_sizes, (False, True)))
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores; "
        f"forward+backward, best of {args.rounds} rounds of {args.calls} calls"
    )
    table = measure(settings, args.calls, args.rounds)
    wide = table.pivot_table(
        index=["shape", "batch_size", "xla"], columns="layer", values="microseconds"
    )
    print("\nMicroseconds per forward+backward call:")
    print(wide.to_string())
    if "keras_bn" in wide:
        print("\nTime relative to keras BatchNormalization at the same setting (lower is better):")
        print(wide.div(wide["keras_bn"], axis=0).round(2).to_string())
    return table


if __name__ == "__main__":
    main()
