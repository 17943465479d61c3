"""One training process alone: one intra-op thread against all the cores.

    python -m benchmarks.thread_benchmark                          # BN and GN, batch 32 and 2
    python -m benchmarks.thread_benchmark --norms gn --batch-sizes 32 --threads 1,2

Every training runs with one TensorFlow thread (utils.training.TRAINING_THREADS) so that
its history does not depend on how many cores the machine has or how many runs train side
by side. This measures what that costs when a single run trains alone (the end of a
grid, or `--workers 1`): each thread count is measured in its own process (TensorFlow
fixes its thread pools when it starts), on random images through `model.fit` with the
engine's settings (utils.profiles.fastest_settings), best of several rounds.
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks import integers_argument, names_argument

NORMS = ("bn", "ln", "in", "gn")


def measure_in_this_process(norms, batch_sizes, threads, images_per_round, rounds):
    """{(norm, batch_size): images/s} with `threads` intra- and inter-op threads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from benchmarks import training_benchmark
    from utils.profiles import fastest_settings

    settings = []
    for norm in norms:
        for batch_size in batch_sizes:
            fastest = fastest_settings(norm, batch_size)
            settings.append(
                (norm, batch_size, fastest["jit_compile"], fastest["steps_per_execution"])
            )
    table = training_benchmark.measure(settings, images_per_round, rounds)
    return {f"{row.norm},{row.batch_size}": row.images_per_second for row in table.itertuples()}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--norms", default="bn,gn", help="comma-separated, from: " + ",".join(NORMS)
    )
    parser.add_argument("--batch-sizes", default="32,2")
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="thread counts to compare")
    parser.add_argument("--images-per-round", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    norms = names_argument(parser, arguments.norms, NORMS, "norms")
    batch_sizes = integers_argument(arguments.batch_sizes)
    if arguments.child is not None:
        print(
            json.dumps(
                measure_in_this_process(
                    norms,
                    batch_sizes,
                    arguments.child,
                    arguments.images_per_round,
                    arguments.rounds,
                )
            )
        )
        return None
    results = {}
    for threads in integers_argument(arguments.threads):
        command = [
            sys.executable,
            "-m",
            "benchmarks.thread_benchmark",
            "--norms",
            arguments.norms,
            "--batch-sizes",
            arguments.batch_sizes,
            "--images-per-round",
            str(arguments.images_per_round),
            "--rounds",
            str(arguments.rounds),
            "--child",
            str(threads),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[threads] = json.loads(output.strip().splitlines()[-1])
    counts = sorted(results)
    print(
        f"{os.cpu_count()} cores; images/s of one training process, best of {arguments.rounds} rounds"
    )
    print(
        "norm  batch  "
        + "  ".join(f"{count} thread(s)" for count in counts)
        + f"  {counts[0]} / {counts[-1]}"
    )
    for key in results[counts[0]]:
        norm, batch_size = key.split(",")
        values = [results[count][key] for count in counts]
        print(
            f"{norm:<4}  {batch_size:>5}  "
            + "  ".join(f"{value:>11,.0f}" for value in values)
            + f"  {values[0] / values[-1]:>8.2f}"
        )
    return results


if __name__ == "__main__":
    main()
