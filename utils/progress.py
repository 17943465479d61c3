"""One progress line for a whole grid: runs done and left, epochs, and the time left
estimated from the epochs measured so far.

    grid [########------------] 41% | 3 of 19 runs done, 16 left | 350 of 855 epochs | about 6.2 h left

The line is read from the run folders alone (history.csv's rows and their `seconds`), so
the local executor's workers and Ray's tasks report through it alike. `ProgressReporter`
prints it from a thread: whenever a run finishes, and every `interval` seconds otherwise.
"""

import statistics
import threading

from utils import runs

__all__ = ["progress_line", "ProgressReporter"]

BAR_WIDTH = 20


def _rows(config, results_dir):
    try:
        return runs.read_history_rows(runs.run_directory(config, results_dir))
    except (OSError, ValueError):
        return []


def _hours(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def progress_line(configs, results_dir, workers=1):
    """The grid's progress as one line (module docstring). The time left is the epochs
    left, each at the median measured epoch of runs of its model and batch size (of any
    run when none of those has trained yet), divided among `workers`."""
    done = epochs_done = 0
    measured, left = {}, []
    for config in configs:
        rows = _rows(config, results_dir)
        epochs_done += min(len(rows), config.epochs)
        if len(rows) >= config.epochs:
            done += 1
        key = (config.model, config.batch_size)
        measured.setdefault(key, []).extend(row["seconds"] for row in rows)
        left.append((key, max(config.epochs - len(rows), 0)))
    epochs_total = sum(config.epochs for config in configs)
    fraction = epochs_done / epochs_total if epochs_total else 1.0
    bar = "#" * round(fraction * BAR_WIDTH) + "-" * (BAR_WIDTH - round(fraction * BAR_WIDTH))
    every = [seconds for values in measured.values() for seconds in values]
    if not any(epochs for _, epochs in left):
        estimate = "nothing left"
    elif not every:
        estimate = "time left: no epoch measured yet"
    else:
        fallback = statistics.median(every)
        seconds = sum(
            epochs * (statistics.median(measured[key]) if measured[key] else fallback)
            for key, epochs in left
        )
        estimate = f"about {_hours(seconds / max(workers, 1))} left"
    return (
        f"grid [{bar}] {100 * fraction:.0f}% | {done} of {len(configs)} runs done, {len(configs) - done} left | "
        f"{epochs_done} of {epochs_total} epochs | {estimate}"
    )


class ProgressReporter:
    """Prints `progress_line` from a thread while the block runs: at once, when a run
    finishes (checked every `poll` seconds) and every `interval` seconds; the last line
    when the block ends normally. Use as a context manager."""

    def __init__(
        self, configs, results_dir, *, workers=1, print_line=print, interval=600.0, poll=30.0
    ):
        self.configs, self.results_dir, self.workers = list(configs), results_dir, workers
        self.print_line, self.interval, self.poll = print_line, interval, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report, daemon=True)

    def _done(self):
        return sum(len(_rows(config, self.results_dir)) >= config.epochs for config in self.configs)

    def _report(self):
        done, waited = self._done(), 0.0
        self.print_line(progress_line(self.configs, self.results_dir, self.workers))
        while not self._stop.wait(self.poll):
            waited += self.poll
            now = self._done()
            if now != done or waited >= self.interval:
                done, waited = now, 0.0
                self.print_line(progress_line(self.configs, self.results_dir, self.workers))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, kind, value, traceback):
        self._stop.set()
        # Bounded: a grid being stopped (Ctrl-C, SIGTERM) must end at once, whatever the
        # reporting thread is doing; it is a daemon thread and ends with the process.
        self._thread.join(timeout=5)
        if kind is None:
            self.print_line(progress_line(self.configs, self.results_dir, self.workers))
        return False
