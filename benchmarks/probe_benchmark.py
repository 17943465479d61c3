"""What the loss-landscape probes cost: images/s of the small CNN with and without them.

    python -m benchmarks.probe_benchmark                         # GN, batch 32 and 2
    python -m benchmarks.probe_benchmark --norm bn --batch-sizes 32 --probes-per-epoch 20

The `landscape` experiment probes 20 times per epoch of the `cpu` data (625 steps at
batch 32, 10,000 at batch 2); each probe costs 1 + 4 forward and backward passes on one
batch. Here an epoch is `--steps` steps and the probes are spread over it as in the
experiment (every steps // probes-per-epoch steps). Settings are timed in interleaved
rounds and the best round of each is reported; the ratio is the result.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from benchmarks import integers_argument  # noqa: E402
from benchmarks import names_argument  # noqa: E402
from benchmarks.training_benchmark import NORMS  # noqa: E402
from benchmarks.training_benchmark import make_trainer  # noqa: E402
from benchmarks.training_benchmark import time_epoch  # noqa: E402
from utils.landscape import LandscapeProbe  # noqa: E402


def measure(norm, batch_size, steps, probes_per_epoch, rounds, steps_per_execution=8):
    """(images/s without probes, images/s with them, probes per timed epoch)."""
    jit_compile = (
        batch_size < 16
    )  # the cpu profile's measured choice (utils.profiles.fastest_settings)
    model, dataset = make_trainer(norm, batch_size, jit_compile, steps_per_execution, steps)
    batches = dataset.as_numpy_iterator()
    best = {"without": 0.0, "with": 0.0}
    probe = None
    for _ in range(rounds):
        for setting in best:
            callbacks = []
            if setting == "with":
                probe = LandscapeProbe(batches, every_steps=max(1, steps // probes_per_epoch))
                callbacks = [probe]
            seconds = time_epoch(model, dataset, steps, callbacks)
            best[setting] = max(best[setting], steps * batch_size / seconds)
    probes = len({row["step"] for row in probe.rows}) if probe else 0
    return best["without"], best["with"], probes


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--norm", default="gn", help="one of: " + ",".join(NORMS))
    parser.add_argument("--batch-sizes", default="32,2")
    parser.add_argument("--steps", type=int, default=320, help="steps per timed epoch")
    parser.add_argument("--probes-per-epoch", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    (norm,) = names_argument(parser, args.norm, NORMS, "norm")
    rows = []
    for batch_size in integers_argument(args.batch_sizes):
        without, with_probes, probes = measure(
            norm, batch_size, args.steps, args.probes_per_epoch, args.rounds
        )
        rows.append(
            {
                "norm": norm,
                "batch_size": batch_size,
                "probes": probes,
                "images/s without": round(without, 1),
                "images/s with": round(with_probes, 1),
                "time ratio (with / without)": round(without / with_probes, 3),
            }
        )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
