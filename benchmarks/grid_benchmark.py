"""Grid throughput: one training process against several side by side (`--workers`).

    python -m benchmarks.grid_benchmark                       # Tiny ImageNet (TINY_IMAGENET_DIR)
    python -m benchmarks.grid_benchmark --workers 1,2 --batch-sizes 32,4 --epochs 1
    python -m benchmarks.grid_benchmark --synthetic           # no data needed (for a quick check)

Trains the same small grid (BN and GN at each batch size, through the experiment engine,
into a fresh temporary results folder each time) with each number of workers, and
reports the training images per second of the whole grid, start to end, and the ratio
to one worker. The data is decoded before the clock starts. Nothing else should run
on the machine meanwhile.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks import integers_argument
from utils import training
from utils import workers as workers_module
from utils.config import RunConfig


def grid(batch_sizes, epochs, synthetic):
    """The benchmark's configs: BN and GN at each batch size, cpu-profile settings."""
    data = (
        dict(
            dataset="synthetic-tiny-imagenet",
            classes=4,
            images_per_class=64,
            val_images_per_class=4,
        )
        if synthetic
        else dict(dataset="tiny-imagenet-200", classes=40, images_per_class=250)
    )
    return [
        RunConfig(
            experiment="grid_benchmark",
            profile="custom",
            norm=norm,
            batch_size=batch_size,
            epochs=epochs,
            jit_compile=batch_size < 16,
            steps_per_execution=8,
            **data,
        )
        for norm in ("batch", "group")
        for batch_size in batch_sizes
    ]


def training_images(configs):
    return sum(
        c.classes * c.images_per_class // c.batch_size * c.batch_size * c.epochs for c in configs
    )


def measure(configs, workers, data_dir):
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        outcome = workers_module.run_in_workers(
            configs,
            folder,
            workers=workers,
            data_dir=data_dir,
            verbose=0,
            print_line=lambda line: None,
        )
        seconds = time.perf_counter() - start
    failed = [item.config.run_name for item in outcome if item.outcome == "failed"]
    if failed:
        raise RuntimeError(f"runs failed: {failed}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=integers_argument, default=[1, 2], help="numbers of workers (1,2)"
    )
    parser.add_argument(
        "--batch-sizes", type=integers_argument, default=[32, 4], help="batch sizes (32,4)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (1)")
    parser.add_argument(
        "--synthetic", action="store_true", help="a small synthetic data set instead"
    )
    arguments = parser.parse_args(argv)
    configs = grid(arguments.batch_sizes, arguments.epochs, arguments.synthetic)
    # Before the decoding below, TensorFlow's first operations: with the threads of every
    # training, so that this process may train the one-worker grid itself.
    training.use_training_threads()
    data_dir = Path(tempfile.mkdtemp()) if arguments.synthetic else None
    # Decode (or generate) the data once, outside the measurement.
    workers_module.prepare_data(configs, data_dir)
    images = training_images(configs)
    rows = []
    for workers in arguments.workers:
        seconds = measure(configs, workers, data_dir)
        rows.append({"workers": workers, "seconds": seconds, "images/s": images / seconds})
    table = pd.DataFrame(rows)
    table["vs 1 worker"] = (
        table["images/s"]
        / table.loc[table["workers"] == min(arguments.workers), "images/s"].iloc[0]
    )
    print(
        f"{len(configs)} runs (BN and GN at batch {arguments.batch_sizes}, {arguments.epochs} epoch(s)), "
        f"{images} training images, {os.cpu_count()} cores"
    )
    print(table.to_string(index=False, float_format=lambda value: f"{value:.2f}"))
    return table


if __name__ == "__main__":
    main()
