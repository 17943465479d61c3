"""The grid's one progress line: runs and epochs done and left, and the time left from the
epochs measured so far, in plain lines wherever the output goes."""

import io
import time

from tests import results_factory as factory
from utils import progress


def _grid(folder):
    complete = factory.make_config("norm_comparison", "batch", 32, seed=0)
    partial = factory.make_config("norm_comparison", "batch", 32, seed=1)
    missing = factory.make_config("norm_comparison", "group", 8, seed=0)
    factory.write_run(folder, complete, factory.curve(60.0, factory.EPOCHS))
    factory.write_run(folder, partial, factory.curve(60.0, factory.EPOCHS)[:4], status="running")
    return [complete, partial, missing]


def test_the_line_counts_runs_and_epochs_and_estimates_from_measured_epochs(tmp_path):
    configs = _grid(tmp_path)
    line = progress.progress_line(configs, tmp_path, workers=1)
    epochs = factory.EPOCHS
    assert f"1 of 3 runs done, 2 left | {epochs + 4} of {3 * epochs} epochs" in line
    assert f"{100 * (epochs + 4) / (3 * epochs):.0f}%" in line
    # 6 epochs left at batch 32 and 10 at batch 8 (no epoch there yet: the median of any run).
    left = (2 * epochs - 4) * factory.EPOCH_SECONDS
    assert f"about {left / 60:.0f} min left" in line
    halved = progress.progress_line(configs, tmp_path, workers=2)
    assert f"about {left / 2 / 60:.0f} min left" in halved
    assert "no epoch measured yet" in progress.progress_line(configs[2:], tmp_path)


def test_the_reporter_prints_plain_lines_at_start_when_a_run_finishes_and_at_the_end(tmp_path):
    configs = _grid(tmp_path)
    stream = io.StringIO()
    with progress.ProgressReporter(
        configs,
        tmp_path,
        print_line=lambda line: print(line, file=stream),
        interval=3600,
        poll=0.05,
    ):
        time.sleep(0.2)
        factory.write_run(tmp_path, configs[2], factory.curve(61.0, factory.EPOCHS))
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("grid [") and "1 of 3 runs done" in lines[0]
    assert any("2 of 3 runs done" in line for line in lines[1:-1])
    assert "2 of 3 runs done" in lines[-1]
    assert "\r" not in stream.getvalue() and "\x1b[" not in stream.getvalue()
