"""Every benchmark, one after the other: `make benchmark` (or python -m benchmarks.run_all).

The data benchmark needs Tiny ImageNet (TINY_IMAGENET_DIR or the Keras cache) and is
skipped, with a note, when there is none. Each benchmark runs in its own process so
that one's threads and caches do not slow the next.
"""

import os
import subprocess
import sys

BENCHMARKS = (
    "benchmarks.layer_benchmark",
    "benchmarks.training_benchmark",
    "benchmarks.data_benchmark",
    "benchmarks.grid_benchmark",
    "benchmarks.probe_benchmark",
    "benchmarks.thread_benchmark",
)


def main():
    failed = []
    for module in BENCHMARKS:
        print(f"\n=== python -m {module}", flush=True)
        if module.endswith(("data_benchmark", "grid_benchmark")) and not os.environ.get(
            "TINY_IMAGENET_DIR"
        ):
            print(
                "skipped: set TINY_IMAGENET_DIR to a copy of Tiny ImageNet to measure the data path"
            )
            continue
        if subprocess.run([sys.executable, "-m", module]).returncode != 0:
            failed.append(module)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
