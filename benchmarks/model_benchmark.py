"""Training throughput of the residual networks beside the small CNN, one thread each.

    python -m benchmarks.model_benchmark                          # the candidates, BN and GN, batch 32 and 2
    python -m benchmarks.model_benchmark --models small_cnn,resnet10 --batch-sizes 32,8,2

Each setting trains on random uint8 images through `model.fit` with one TensorFlow
thread, as every training run does (utils.training.TRAINING_THREADS), with and without
XLA; settings are measured in interleaved rounds and the best round of each is kept.
The result is each network's time per image as a multiple of the small CNN's at the
same batch size, norm and its own faster XLA setting: multiplied by the small CNN's
recorded epoch times, it estimates what a grid of the residual network costs.
"""

import argparse
import functools
import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from utils import training  # noqa: E402

training.use_training_threads()

import pandas as pd  # noqa: E402

from benchmarks import integers_argument  # noqa: E402
from benchmarks import names_argument  # noqa: E402
from benchmarks.training_benchmark import make_trainer  # noqa: E402
from benchmarks.training_benchmark import steps_per_round  # noqa: E402
from benchmarks.training_benchmark import time_epoch  # noqa: E402
from utils import models  # noqa: E402

# name -> builder taking (norm, num_classes=..., weight_decay=..., **norm options)
MODELS = {
    "small_cnn": models.small_cnn,
    # The depth experiment's network (utils.models.resnet10).
    "resnet10": models.resnet10,
    "resnet10_wide": functools.partial(
        models.small_resnet, widths=(64, 128, 256, 512), blocks=(1, 1, 1, 1)
    ),
    "resnet18_narrow": functools.partial(
        models.small_resnet, widths=(64, 128, 128, 256), blocks=(2, 2, 2, 2)
    ),
    "resnet18": functools.partial(
        models.small_resnet, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)
    ),
}


def measure(settings, images_per_round, rounds, num_classes):
    """Images/s for each (model, norm, batch size, XLA): best of `rounds` interleaved timings."""
    trainers = {}
    for model_name, norm, batch_size, jit_compile in settings:
        steps = steps_per_round(images_per_round, batch_size, 1)
        model, dataset = make_trainer(
            norm,
            batch_size,
            jit_compile,
            1,
            steps,
            num_classes=num_classes,
            build=MODELS[model_name],
        )
        trainers[(model_name, norm, batch_size, jit_compile)] = (
            model,
            dataset,
            steps,
            model.count_params(),
        )
    best = dict.fromkeys(trainers, 0.0)
    for _ in range(rounds):
        for setting, (model, dataset, steps, _) in trainers.items():
            best[setting] = max(
                best[setting], steps * setting[2] / time_epoch(model, dataset, steps)
            )
    return pd.DataFrame(
        [
            dict(
                model=m,
                norm=n,
                batch_size=b,
                xla=x,
                parameters=trainers[(m, n, b, x)][3],
                images_per_second=round(best[(m, n, b, x)], 1),
            )
            for (m, n, b, x) in settings
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        default="small_cnn,resnet10,resnet10_wide,resnet18_narrow",
        help="comma-separated, from: " + ",".join(MODELS),
    )
    parser.add_argument("--norms", default="bn,gn")
    parser.add_argument("--batch-sizes", default="32,2")
    parser.add_argument("--images-per-round", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--classes", type=int, default=40, help="output classes (the cpu profile's 40)"
    )
    args = parser.parse_args(argv)
    model_names = names_argument(parser, args.models, MODELS, "models")
    from benchmarks.training_benchmark import NORMS

    norms = names_argument(parser, args.norms, NORMS, "norms")
    settings = list(
        itertools.product(model_names, norms, integers_argument(args.batch_sizes), (False, True))
    )
    print(
        f"{len(settings)} settings x {args.rounds} rounds of ~{args.images_per_round} images, one thread each"
    )
    table = measure(settings, args.images_per_round, args.rounds, args.classes)
    print(table.to_string(index=False))
    best = table.loc[table.groupby(["model", "norm", "batch_size"])["images_per_second"].idxmax()]
    pivot = best.pivot_table(
        index=["norm", "batch_size"], columns="model", values="images_per_second"
    )
    if "small_cnn" in pivot:
        print("\nTime per image as a multiple of the small CNN's, each at its faster XLA setting:")
        print((pivot.rdiv(pivot["small_cnn"], axis=0)).round(2).to_string())
    return table


if __name__ == "__main__":
    main()
