"""Where the time of a training step goes: the ops of one profiled epoch, by self time.

    python -m benchmarks.profile_training --norm gn --batch-size 32
    python -m benchmarks.profile_training --norm bn --batch-size 2 --xla --steps-per-execution 8

Trains the small CNN as `training_benchmark` does, records one epoch with the TensorFlow
profiler and prints the ops (TensorFlow kernels, or XLA fusions and thunks when the step
is compiled with XLA) that took the most time, excluding the time of the ops they
called. Times are summed over all threads, so on two cores a step's ops can add up to
twice its wall time. The profiler slows the step down; compare ops within one profile.
The trace stays in --trace-dir for TensorBoard's profile plugin.
"""

import argparse
import collections
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks.training_benchmark import NORMS  # noqa: E402
from benchmarks.training_benchmark import make_trainer  # noqa: E402
from benchmarks.training_benchmark import steps_per_round  # noqa: E402
from benchmarks.training_benchmark import time_epoch  # noqa: E402


def self_times(space):
    """Milliseconds of self time per event name over the host threads of an XSpace."""
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            open_events = []  # (end, name) of the events enclosing the current one
            for event in sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps)):
                name = plane.event_metadata[event.metadata_id].name
                while open_events and open_events[-1][0] <= event.offset_ps:
                    open_events.pop()
                milliseconds = event.duration_ps / 1e9
                if open_events:
                    totals[open_events[-1][1]] -= milliseconds
                totals[name] += milliseconds
                open_events.append((event.offset_ps + event.duration_ps, name))
    return totals


def profile(norm_name, batch_size, jit_compile, steps_per_execution, images, trace_dir):
    """(images/s while profiled, table of ops by self time per step)."""
    steps = steps_per_round(images, batch_size, steps_per_execution)
    model, dataset = make_trainer(norm_name, batch_size, jit_compile, steps_per_execution, steps)
    tf.profiler.experimental.start(str(trace_dir))
    seconds = time_epoch(model, dataset, steps)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(next(Path(trace_dir).rglob("*.xplane.pb")).read_bytes())
    table = pd.DataFrame(
        [dict(op=name, ms_per_step=round(ms / steps, 3)) for name, ms in self_times(space).items()]
    ).sort_values("ms_per_step", ascending=False, ignore_index=True)
    return steps * batch_size / seconds, table


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--norm", default="gn", choices=list(NORMS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--xla", action="store_true", help="compile the step with XLA")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--images", type=int, default=512, help="images in the profiled epoch")
    parser.add_argument("--top", type=int, default=25, help="ops to print")
    parser.add_argument(
        "--trace-dir",
        default=None,
        help="where to keep the trace (default: a new temporary folder)",
    )
    args = parser.parse_args(argv)
    trace_dir = Path(args.trace_dir or tempfile.mkdtemp(prefix="profile_training_"))
    rate, table = profile(
        args.norm, args.batch_size, args.xla, args.steps_per_execution, args.images, trace_dir
    )
    print(
        f"{args.norm}, batch {args.batch_size}, xla={args.xla}, steps_per_execution={args.steps_per_execution}: "
        f"{rate:.0f} images/s while profiled; trace in {trace_dir}"
    )
    with pd.option_context("display.max_colwidth", 100):
        print(table.head(args.top).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
