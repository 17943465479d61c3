"""Training throughput of the small CNN, normalizations side by side in one process.

    python -m benchmarks.training_benchmark                      # every norm, batch 32/16/8/2
    python -m benchmarks.training_benchmark --norms gn,keras_gn --batch-sizes 32

Each setting trains on random uint8 images through `model.fit` (the same call the
experiments use); settings are measured in interleaved rounds so that machine noise
hits all of them alike, and the best round of each is reported. Ratios, not absolute
numbers, are the result: compare them within one run only.
"""

import argparse
import itertools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import integers_argument  # noqa: E402
from benchmarks import names_argument  # noqa: E402
from utils.models import small_cnn  # noqa: E402


def keras_group_norm(**kwargs):
    """Keras's own GroupNormalization with the paper's epsilon and 32 groups."""
    kwargs.setdefault("groups", 32)
    return keras.layers.GroupNormalization(epsilon=1e-5, **kwargs)


# name -> (norm argument of small_cnn, norm options)
NORMS = {
    "bn": ("batch", {}),
    "ln": ("layer", {}),
    "in": ("instance", {}),
    "gn": ("group", {"groups": 32}),
    "keras_gn": (keras_group_norm, {}),
    # The further experiments' layers: Batch Renorm, Weight Standardization, the GN+BN mixtures.
    "brn": ("batch_renorm", {}),
    "gn_ws": ("group", {"groups": 32, "weight_standardization": True}),
    "bn_ws": ("batch", {"weight_standardization": True}),
    "gnbn_parallel": ("gn_plus_parallel", {"groups": 32}),
    "gnbn_gn_first": ("gn_plus_gn_first", {"groups": 32}),
    "gnbn_bn_first": ("gn_plus_bn_first", {"groups": 32}),
}


def make_trainer(
    norm_name, batch_size, jit_compile, steps_per_execution, steps, num_classes=200, build=small_cnn
):
    """A compiled model (`build(norm, num_classes=..., weight_decay=..., **options)`) and
    a repeating dataset of `steps` random batches."""
    norm, options = NORMS[norm_name]
    keras.utils.set_random_seed(0)
    model = build(norm, num_classes=num_classes, weight_decay=1e-4, **options)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1 * batch_size / 32, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch_size * steps, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=batch_size * steps)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).cache().repeat()
    )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # The first call compiles (and with XLA, clusters) the step: keep it out of timing.
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return model, dataset


def steps_per_round(images, batch_size, steps_per_execution):
    """About `images` images' worth of steps, a whole number of compiled calls."""
    steps = max(steps_per_execution, images // batch_size)
    return steps - steps % steps_per_execution


def time_epoch(model, dataset, steps, callbacks=()):
    start = time.perf_counter()
    model.fit(
        dataset,
        steps_per_epoch=steps,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=list(callbacks),
    )
    return time.perf_counter() - start


def measure(settings, images_per_round, rounds):
    """Images/s for each setting: best of `rounds` interleaved timings."""
    trainers = {}
    for setting in settings:
        norm_name, batch_size, jit_compile, steps_per_execution = setting
        steps = steps_per_round(images_per_round, batch_size, steps_per_execution)
        trainers[setting] = (
            *make_trainer(norm_name, batch_size, jit_compile, steps_per_execution, steps),
            steps,
        )
    best = {setting: 0.0 for setting in settings}
    for _ in range(rounds):
        for setting, (model, dataset, steps) in trainers.items():
            seconds = time_epoch(model, dataset, steps)
            best[setting] = max(best[setting], steps * setting[1] / seconds)
    rows = [
        dict(
            norm=n,
            batch_size=b,
            xla=x,
            steps_per_execution=s,
            images_per_second=round(best[(n, b, x, s)], 1),
        )
        for (n, b, x, s) in settings
    ]
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--norms", default="bn,ln,in,gn,keras_gn", help="comma-separated, from: " + ",".join(NORMS)
    )
    parser.add_argument("--batch-sizes", default="32,16,8,2")
    parser.add_argument(
        "--steps-per-execution", default="1,8", help="comma-separated values to try"
    )
    parser.add_argument("--images-per-round", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    norms = names_argument(parser, args.norms, NORMS, "norms")
    batch_sizes = integers_argument(args.batch_sizes)
    executions = integers_argument(args.steps_per_execution)
    settings = list(itertools.product(norms, batch_sizes, (False, True), executions))
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores; "
        f"{len(settings)} settings x {args.rounds} rounds of ~{args.images_per_round} images"
    )
    table = measure(settings, args.images_per_round, args.rounds)
    print(table.to_string(index=False))

    best = table.loc[table.groupby(["norm", "batch_size"])["images_per_second"].idxmax()]
    print("\nBest setting per norm and batch size:")
    print(best.to_string(index=False))
    pivot = best.pivot(index="batch_size", columns="norm", values="images_per_second")
    if "gn" in pivot and "keras_gn" in pivot:
        print("\nour GN / keras GN, each at its best (higher is better):")
        print((pivot["gn"] / pivot["keras_gn"]).round(3).to_string())
        xla = table[table.xla & (table.norm.isin(["gn", "keras_gn"]))]
        xla_best = xla.loc[xla.groupby(["norm", "batch_size"])["images_per_second"].idxmax()]
        xla_pivot = xla_best.pivot(index="batch_size", columns="norm", values="images_per_second")
        print("\nour GN with XLA / keras GN with XLA:")
        print((xla_pivot["gn"] / xla_pivot["keras_gn"]).round(3).to_string())
    if "gn" in pivot and "bn" in pivot:
        print("\nBN / our GN time-per-image ratio, each at its best (GN's cost; 1.0 = no cost):")
        print((pivot["bn"] / pivot["gn"]).round(3).to_string())
    return table


if __name__ == "__main__":
    main()
