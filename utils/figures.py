"""Every experiment's figures, drawn from a results folder (the functions each experiment
declares: utils.experiments.Experiment.figures)."""

from pathlib import Path

from utils import experiments
from utils import results
from utils.experiment import load_function

__all__ = ["draw_figures", "names"]


def names():
    """The file names (without ".png") of every experiment's figures, in registry order."""
    return [figure.name for name in experiments.NAMES for figure in experiments.get(name).figures]


def draw_figures(results_dir="results", figures_dir="figures", names=None):
    """Draws the figures of every experiment (or of `names`) that has a complete run in
    `results_dir`; returns the paths written, in registry order.

    Args:
        results_dir: the results folder.
        figures_dir: where the PNG files go.
        names: experiment names (None: every experiment of the registry).
    """
    import matplotlib.pyplot as plt

    runs = results.load_runs(results_dir)
    complete = set(runs.loc[runs["status"] == "complete", "experiment"])
    written = []
    for name in names or experiments.NAMES:
        if name not in complete:
            continue
        for declared in experiments.get(name).figures:
            plt.close(load_function(declared.function)(runs, figures_dir=figures_dir))
            written.append(Path(figures_dir) / f"{declared.name}.png")
    return written
