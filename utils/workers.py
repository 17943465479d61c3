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

    python -m utils.experiments --profile cpu --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from utils import grid as grid_module
from utils.config import RunConfig
from utils.quiet import import_tensorflow

__all__ = ["default_workers", "distinct_trainings", "prepare_data", "run_in_workers", "main"]


def default_workers():
    """The number of worker processes used when none is asked for: 2 on a machine
    without a GPU and with at least two cores (measured faster than one process there),
    else 1 (one GPU is best used by one process)."""
    if import_tensorflow().config.list_physical_devices("GPU"):
        return 1
    return min(2, os.cpu_count() or 1)


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

    for config in {(c.dataset, c.classes, c.images_per_class, c.val_images_per_class): c for c in configs}.values():
        training.load_data(config, data_dir)


def _forward(process, prefix, print_line):
    for line in process.stdout:
        print_line(f"{prefix} {line.rstrip()}")


def run_in_workers(configs, results_dir="results", *, workers, data_dir=None, verbose=0, print_line=print):
    """Trains the grid's pending runs in `workers` processes, then reads the grid back.

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
        workers = min(workers, len(pending))
        print_line(f"Training {len(pending)} run(s) in {workers} processes of "
                   f"{training.TRAINING_THREADS} thread(s) each.")
        with tempfile.TemporaryDirectory() as folder:
            listing = Path(folder) / "configs.json"
            listing.write_text(json.dumps([config.to_dict() for config in pending]))
            command = [sys.executable, "-m", "utils.workers", "--configs", str(listing), "--results",
                       str(results_dir), "--verbose", str(verbose)]
            if data_dir is not None:
                command += ["--data", str(data_dir)]
            processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          bufsize=1) for _ in range(workers)]
            readers = [threading.Thread(target=_forward, args=(process, f"[worker {number}]", print_line))
                       for number, process in enumerate(processes, start=1)]
            for reader in readers:
                reader.start()
            for process, reader in zip(processes, readers):
                process.wait()
                reader.join()
    return grid_module.run_grid(configs, results_dir, data_dir=data_dir, verbose=verbose, print_line=print_line)


def main(argv=None):
    """A worker: trains the configs of a JSON list in order, skipping runs that another
    process holds."""
    parser = argparse.ArgumentParser(prog="python -m utils.workers", description=main.__doc__)
    parser.add_argument("--configs", required=True, help="JSON file: a list of RunConfig dicts")
    parser.add_argument("--results", required=True)
    parser.add_argument("--data", default=None)
    parser.add_argument("--verbose", type=int, default=0)
    arguments = parser.parse_args(argv)
    import_tensorflow()
    from utils import training

    training.use_training_threads()
    configs = [RunConfig.from_dict(data) for data in json.loads(Path(arguments.configs).read_text())]
    grid = grid_module.run_grid(configs, arguments.results, data_dir=arguments.data, verbose=arguments.verbose,
                                print_line=lambda line: print(line, flush=True))
    return 1 if any(item.outcome == "failed" for item in grid) else 0


if __name__ == "__main__":
    sys.exit(main())
