"""Training a grid in several processes at once.

Every training on a CPU uses one TensorFlow thread (utils.training.TRAINING_THREADS), so
that its history does not depend on the number of processes. Several such processes
side by side train more images per second than one (measured on two cores: see
benchmarks/README.md), because the small CNN's steps are too small to keep two threads
busy. `run_in_workers` starts `workers` processes; every process walks the same list of
trainings and takes the next one that no other process holds (the run folder's lock,
utils.runs.run_lock), so the work is shared without any coordination beyond the locks.
The results are written exactly as a single process writes them. When all processes
have ended, the grid is read back in order in this process, which also makes the copies
of runs reused by another experiment (and trains, with the same one thread, any run that
no worker finished).

More workers than the machine's cores, or than its available memory holds, are not
started (`worker_limit`). The workers read their list of trainings from their standard
input, so no file is left behind when this process is stopped, and a worker ends when its
standard input closes, that is when the process that started it ends in whatever way.

    python -m utils.experiments --profile cpu --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from utils import grid as grid_module
from utils.progress import ProgressReporter
from utils.config import RunConfig
from utils.quiet import import_tensorflow
from utils.quiet import without_jax

__all__ = [
    "WORKER_BASE_MEMORY",
    "default_workers",
    "distinct_trainings",
    "prepare_data",
    "worker_memory",
    "worker_limit",
    "run_in_workers",
    "main",
]

MEMINFO = Path("/proc/meminfo")
# The memory of a worker besides its images: TensorFlow, the model and Keras's state.
# Measured as the peak resident size of a worker of the smoke profile, whose images take
# a few hundred kilobytes: 741 MiB (rounded up here).
WORKER_BASE_MEMORY = 800 * 2**20
# A worker holds its decoded images about twice (the uint8 arrays and the input
# pipeline's copy of them): a worker of the cpu profile, with 258 MiB of images, was
# measured at 1221 MiB resident, 480 MiB above the smoke profile's.
IMAGE_COPIES = 2
# How long the workers get to end after being asked to, before they are killed.
END_SECONDS = 10


def default_workers():
    """The number of worker processes used when none is asked for: 2 on a machine
    without a GPU and with at least two cores (measured faster than one process there),
    else 1 (one GPU is best used by one process)."""
    if import_tensorflow().config.list_physical_devices("GPU"):
        return 1
    return min(2, os.cpu_count() or 1)


def worker_memory(configs):
    """Roughly the most memory, in bytes, that one worker training `configs` takes: the
    largest data selection among them, decoded, held about twice, and TensorFlow's own."""
    import_tensorflow()
    from utils.data import IMAGE_SHAPE

    image_bytes = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
    images = max(
        config.classes * (config.images_per_class + config.val_images_per_class)
        for config in configs
    )
    return WORKER_BASE_MEMORY + IMAGE_COPIES * images * image_bytes


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _available_memory():
    """MemAvailable of /proc/meminfo in bytes, or None where the system gives none."""
    try:
        text = Path(MEMINFO).read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+([0-9]+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def worker_limit(configs):
    """The most worker processes this machine can train `configs` in, and why.

    One per CPU core this process may use: a worker trains with one thread, and more
    workers than cores only share them, each with its own copy of TensorFlow and of the
    data. And no more than the available memory holds at `worker_memory` each, read
    after this process has decoded the data, since a machine that runs out of memory
    kills processes or swaps.

    Returns:
        (limit, reason): limit >= 1; reason says what sets it, e.g. "2 CPU cores".
    """
    cores = _usable_cores()
    limits = [(cores, f"{cores} CPU cores, one training thread per process")]
    available = _available_memory()
    if available is not None:
        each = worker_memory(configs)
        limits.append(
            (
                max(1, available // each),
                f"{available / 2**30:.1f} GiB of memory available, "
                f"about {each / 2**30:.1f} GiB per worker",
            )
        )
    limit = min(count for count, _ in limits)
    return limit, " and ".join(reason for count, reason in limits if count == limit)


def distinct_trainings(configs, results_dir):
    """The configs that must be trained, one per set of training settings (a config with
    the same settings as an earlier one, in another experiment, reuses its run)."""
    seen, distinct = set(), []
    for plan in grid_module.plan_runs(configs, results_dir):
        settings = json.dumps(plan.config.training_settings(), sort_keys=True)
        if plan.action == "train" and settings not in seen:
            seen.add(settings)
            distinct.append(plan.config)
    return distinct


def prepare_data(configs, data_dir):
    """Decodes (or generates) each data selection once, before the workers start, so that
    they only read the cache and never build it at the same time."""
    import_tensorflow()
    from utils import training

    for config in {
        (c.dataset, c.classes, c.images_per_class, c.val_images_per_class): c for c in configs
    }.values():
        training.load_data(config, data_dir)


def _forward(process, prefix, print_line):
    for line in process.stdout:
        print_line(f"{prefix} {line.rstrip()}")


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread while workers run (a BaseException, so that no
    `except Exception` on the way takes it for an error of a run)."""


@contextlib.contextmanager
def _terminate_raises():
    """Within the block, SIGTERM raises `_Terminated`, so that the `finally` blocks end
    the workers: Python's default is to die at once, leaving them running. After the
    block, a handler set in Python before is given the signal again; then this process
    exits (SystemExit). Only the main thread receives signals; a SIGTERM that was
    ignored stays ignored."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield
        return
    # None: a handler installed outside Python, which cannot be put back; the default
    # ends the process as well.
    previous = signal.SIG_DFL if previous is None else previous

    def terminate(signum, frame):
        # A second SIGTERM must not cut the ending of the workers short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            signal.raise_signal(signal.SIGTERM)
        # An exit, not the default handler's instant death, so that exit handlers run
        # (TensorFlow's remove its temporary files); the status is the shell's for SIGTERM.
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_in_workers(pending, results_dir, workers, data_dir, verbose, print_line):
    """Starts `workers` processes on the list `pending` and waits for them; whatever
    ends this (an error, Ctrl-C, SIGTERM) ends the workers too."""
    command = [
        sys.executable,
        "-m",
        "utils.workers",
        "--results",
        str(results_dir),
        "--verbose",
        str(verbose),
    ]
    if data_dir is not None:
        command += ["--data", str(data_dir)]
    listing = json.dumps([config.to_dict() for config in pending]) + "\n"
    processes, readers = [], []
    with _terminate_raises():
        try:
            for number in range(1, workers + 1):
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                )
                processes.append(process)
                # Read before writing: a worker that prints first must not block on a full pipe.
                reader = threading.Thread(
                    target=_forward, args=(process, f"[worker {number}]", print_line), daemon=True
                )
                reader.start()
                readers.append(reader)
                # A worker that died before reading says why in its output; its status shows.
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.write(listing)
                    process.stdin.flush()
            for process in processes:
                process.wait()
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                # Its standard input closing ends a worker as well (see `main`).
                with contextlib.suppress(OSError):
                    process.stdin.close()
            for process in processes:
                try:
                    process.wait(timeout=END_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for reader in readers:
                reader.join(timeout=END_SECONDS)


def run_in_workers(
    configs, results_dir="results", *, workers, data_dir=None, verbose=0, print_line=print
):
    """Trains the grid's pending runs in `workers` processes, then reads the grid back.

    No more processes than there are runs to train, nor than `worker_limit` allows, are
    started; a line says so when that is fewer than `workers`. SIGTERM or Ctrl-C ends
    the workers before this process ends; SIGKILL cannot be handled, but it leaves no
    file behind either (the workers get their runs on their standard input), and each
    worker ends once the standard input closes with this process.

    Args:
        configs: the grid (RunConfigs, in order).
        results_dir: the results folder.
        workers: number of processes; 1 trains in this process (utils.grid.run_grid).
        data_dir: where the data is (utils.training.load_data).
        verbose: Keras fit verbosity inside the workers (their lines are prefixed).
        print_line: called with every line, the workers' prefixed with "[worker k]".

    Returns:
        A list of `utils.grid.GridRun`, as `utils.grid.run_grid` returns.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be an integer >= 1.")
    import_tensorflow()
    from utils import training

    # Before this process's first TensorFlow operation (decoding the data below).
    training.use_training_threads()
    pending = distinct_trainings(configs, results_dir)
    if workers > 1 and len(pending) > 1:
        grid_module.check_writable(results_dir)
        prepare_data(pending, data_dir)
        limit, reason = worker_limit(pending)
        if limit < min(workers, len(pending)):
            if limit == 1:
                print_line(
                    f"Training in this process instead of {workers} worker processes: {reason}."
                )
            else:
                print_line(f"Starting {limit} worker processes instead of {workers}: {reason}.")
        workers = min(workers, len(pending), limit)
        if workers > 1:
            print_line(
                f"Training {len(pending)} run(s) in {workers} processes of "
                f"{training.TRAINING_THREADS} thread(s) each."
            )
            with ProgressReporter(pending, results_dir, workers=workers, print_line=print_line):
                _train_in_workers(pending, results_dir, workers, data_dir, verbose, print_line)
            return grid_module.run_grid(
                configs, results_dir, data_dir=data_dir, verbose=verbose, print_line=print_line
            )
    if pending:
        with ProgressReporter(pending, results_dir, workers=1, print_line=print_line):
            return grid_module.run_grid(
                configs, results_dir, data_dir=data_dir, verbose=verbose, print_line=print_line
            )
    return grid_module.run_grid(
        configs, results_dir, data_dir=data_dir, verbose=verbose, print_line=print_line
    )


def _end_when_closed(stream):
    """Ends this process (by SIGTERM) once `stream` closes, however the process at its
    other end ended (even by SIGKILL, which it cannot handle). If the orderly exit has
    not ended it `END_SECONDS` later (a library's exit handler that hangs), it ends at
    once: no worker may go on training without the process that started it."""
    stream.read()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(END_SECONDS)
    os._exit(128 + signal.SIGTERM)


def exit_on_signal(signum, frame):
    # Once: a worker is often asked twice (by its parent, and by itself when its standard
    # input closes), and a second SystemExit raised inside an exit handler prints a
    # traceback. The exit started here still ends at the latest END_SECONDS later.
    signal.signal(signum, signal.SIG_IGN)
    # The process that asked has said how to resume. Whatever this one prints while it
    # ends (the error of a library call that the exit interrupted) is only noise there.
    silent = os.open(os.devnull, os.O_WRONLY)
    os.dup2(silent, sys.stdout.fileno())
    os.dup2(silent, sys.stderr.fileno())
    os.close(silent)
    raise SystemExit(128 + signum)


def main(argv=None):
    """A worker: trains the configs listed on the first line of its standard input (a
    JSON list of RunConfig dicts) in order, skipping runs that another process holds. It
    ends when its standard input closes: the process that started it has ended."""
    parser = argparse.ArgumentParser(prog="python -m utils.workers", description=main.__doc__)
    parser.add_argument("--results", required=True)
    parser.add_argument("--data", default=None)
    parser.add_argument("--verbose", type=int, default=0)
    arguments = parser.parse_args(argv)
    # SIGTERM exits rather than killing at once, so that `finally` blocks and exit
    # handlers run: the run's lock file is removed and TensorFlow deletes its temporary
    # files. The run itself resumes where it stopped when the grid is started again.
    signal.signal(signal.SIGTERM, exit_on_signal)
    listing = sys.stdin.readline()
    threading.Thread(target=_end_when_closed, args=(sys.stdin,), daemon=True).start()
    without_jax()
    import_tensorflow()
    from utils import training

    training.use_training_threads()
    configs = [RunConfig.from_dict(data) for data in json.loads(listing)]
    grid = grid_module.run_grid(
        configs,
        arguments.results,
        data_dir=arguments.data,
        verbose=arguments.verbose,
        print_line=lambda line: print(line, flush=True),
    )
    return 1 if any(item.outcome == "failed" for item in grid) else 0


if __name__ == "__main__":
    sys.exit(main())
