"""Speed and memory of the Tiny ImageNet data path, on the real data set.

    TINY_IMAGENET_DIR=../shared/data/tiny-imagenet-200.tar.gz python -m benchmarks.data_benchmark
    python -m benchmarks.data_benchmark --path ~/data/tiny-imagenet-200.zip --seconds 5

Measures, and prints as a table next to the targets:
  - extraction of the archive into an empty cache folder (none for a folder source);
  - the first full load: decoding all 110,000 JPEGs and writing the decoded cache;
  - a cached load, in a fresh process (as a later training run would do it);
  - peak memory (maximum resident set size) of each of those processes;
  - make_dataset's training batches/s and images/s at batch 32 and batch 2. The small CNN
    consumes about 1,000-1,600 images/s at batch 32 and 300-800 at batch 2 on a 2-core
    machine; the pipeline should deliver at least 5 times the upper end.

By default everything goes to a temporary cache folder that is deleted at the end, so the
first load really decodes; --cache-dir uses (and keeps) a given one, after deleting its
decoded cache of the full data set.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from utils import data, data_sources  # noqa: E402

# Images/s the small CNN consumes at each batch size (upper end), and the required factor.
MODEL_IMAGES_PER_SECOND = {32: 1_600, 2: 800}
REQUIRED_FACTOR = 5
TARGET_FIRST_LOAD_SECONDS = 60
TARGET_CACHED_LOAD_SECONDS = 5

CACHED_LOAD_CHILD = """
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from utils import data
started = time.perf_counter()
(x_train, _), (x_val, _) = data.load_tiny_imagenet(sys.argv[1], download=False, cache_dir=sys.argv[2])
seconds = time.perf_counter() - started
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
# Linux carries the parent's maximum RSS over fork and exec into ru_maxrss; VmHWM is this
# process's own peak.
if os.path.exists("/proc/self/status"):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak_mib = int(line.split()[1]) / 1024
print(json.dumps({"seconds": seconds, "images": len(x_train) + len(x_val), "peak_mib": peak_mib}))
"""


def peak_mib():
    """Maximum resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline_speed(x_train, y_train, batch_size, seconds):
    """Returns (seconds to the first batch, batches/s, images/s) of a training pipeline.

    Args:
        x_train, y_train: the training arrays.
        batch_size: images per batch.
        seconds: how long to draw batches after the first one.
    """
    dataset = data.make_dataset(x_train, y_train, batch_size, training=True, seed=0)
    started = time.perf_counter()
    iterator = iter(dataset)
    next(iterator)
    first = time.perf_counter() - started
    batches = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        next(iterator)
        batches += 1
    elapsed = time.perf_counter() - started
    return first, batches / elapsed, batches * batch_size / elapsed


def run(path, cache_dir, seconds):
    """Runs every measurement and returns them as a list of (name, value, unit, target)."""
    rows = []
    started = time.perf_counter()
    folder = data.tiny_imagenet_folder(path, download=False, cache_dir=cache_dir)
    rows.append(("extraction (once per archive)", time.perf_counter() - started, "s", "-"))
    selection = data_sources.list_selection(folder)
    slot = data.cache_slot(cache_dir, selection, None)
    shutil.rmtree(slot, ignore_errors=True)  # the first load must decode

    started = time.perf_counter()
    (x_train, y_train), (x_val, _) = data.load_tiny_imagenet(
        path, download=False, cache_dir=cache_dir
    )
    first_load = time.perf_counter() - started
    images = len(x_train) + len(x_val)
    rows.append(
        ("first load: decode + write cache", first_load, "s", f"<= {TARGET_FIRST_LOAD_SECONDS}")
    )
    rows.append(("  decode rate", images / first_load, "images/s", "-"))
    rows.append(("  peak memory (this process)", peak_mib(), "MiB", "-"))

    child = subprocess.run(
        [sys.executable, "-c", CACHED_LOAD_CHILD, str(path), str(cache_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    cached = json.loads(child.stdout.strip().splitlines()[-1])
    rows.append(
        ("cached load (fresh process)", cached["seconds"], "s", f"<= {TARGET_CACHED_LOAD_SECONDS}")
    )
    rows.append(("  peak memory (that process)", cached["peak_mib"], "MiB", "-"))

    for batch_size in (32, 2):
        first, batches_per_second, images_per_second = pipeline_speed(
            x_train, y_train, batch_size, seconds
        )
        target = REQUIRED_FACTOR * MODEL_IMAGES_PER_SECOND[batch_size]
        rows.append((f"make_dataset batch {batch_size}: first batch", first, "s", "-"))
        rows.append((f"make_dataset batch {batch_size}", batches_per_second, "batches/s", "-"))
        rows.append(
            (f"make_dataset batch {batch_size}", images_per_second, "images/s", f">= {target}")
        )
    rows.append(("peak memory (this process, end)", peak_mib(), "MiB", "-"))
    return rows


def print_table(rows):
    width = max(len(name) for name, *_ in rows)
    print(f"\n{'measurement':<{width}}  {'value':>10}  {'unit':<9}  target")
    for name, value, unit, target in rows:
        print(f"{name:<{width}}  {value:>10.2f}  {unit:<9}  {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--path",
        default=os.environ.get(data.ENVIRONMENT_VARIABLE),
        help=f"the archive or folder (default: ${data.ENVIRONMENT_VARIABLE}, else the Keras cache)",
    )
    parser.add_argument(
        "--cache-dir", help="cache folder to use and keep (default: a temporary one)"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per pipeline measurement"
    )
    arguments = parser.parse_args(argv)
    # Without a source, use the copy in the Keras cache (the benchmark's own cache is empty).
    path = arguments.path or str(data.tiny_imagenet_folder(download=False))
    temporary = None if arguments.cache_dir else tempfile.mkdtemp(prefix="tiny-imagenet-benchmark-")
    cache_dir = arguments.cache_dir or temporary
    started = time.perf_counter()
    try:
        rows = run(path, cache_dir, arguments.seconds)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    rows.append(("whole benchmark, cleanup included", time.perf_counter() - started, "s", "-"))
    print(f"\nsource: {path}   cache: {cache_dir}   CPUs: {os.cpu_count()}")
    print_table(rows)


if __name__ == "__main__":
    main()
