"""Every experiment's figures, drawn from a results folder (the functions each experiment
declares: utils.experiments.Experiment.figures)."""

import importlib
from pathlib import Path

from utils import experiments
from utils import results

__all__ = ["draw_figures"]


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
    complete = set(runs.loc[runs["state"] == "complete", "experiment"])
    written = []
    for name in names or experiments.NAMES:
        if name not in complete:
            continue
        for target in experiments.get(name).figures:
            module, _, function = target.partition(":")
            figure = getattr(importlib.import_module(module), function)(runs, figures_dir=figures_dir)
            plt.close(figure)
            written.append(Path(figures_dir) / f"{function.removeprefix('plot_')}.png")
    return written
