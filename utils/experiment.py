"""The declaration of an experiment: a named grid of runs with its tables, findings and
figures (utils.experiments lists them), and of a report section (a group of them)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

__all__ = ["Experiment", "Table", "Figure", "Section", "load_function", "TRAINING_MODE"]

# What every figure and table that shows a run's training error says it is: history.csv's
# figure, averaged over the epoch's steps with the model in training mode (augmented images,
# BN with each batch's statistics, weights changing), not the fit of the end-of-epoch model.
TRAINING_MODE = "training error (the training-mode running average over each epoch)"


def load_function(target):
    """The function a "module:function" string names (e.g. "utils.plots:plot_curves")."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the report.

    Args:
        title: its heading.
        function: "module:function"; the function takes a runs frame
            (utils.results.load_runs) and returns a DataFrame.
        decimals: the decimals its numbers are shown with.
    """

    title: str
    function: str
    decimals: int = 1


@dataclasses.dataclass(frozen=True)
class Figure:
    """A figure: `function` ("module:function") takes a results folder or runs frame and
    `figures_dir=`, and writes `<figures_dir>/<name>.png`; `caption` is its alt text."""

    function: str
    caption: str

    @property
    def name(self):
        """The file name without ".png": the function's name without "plot_"."""
        return self.function.partition(":")[2].removeprefix("plot_")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: a grid of runs written to `results/<name>/`.

    Args:
        name: the experiment's name (its results folder, `--experiment name`).
        group: the set it belongs to on the command line (`GROUPS`), or None.
        summary: one line: what it trains and why.
        runs: the fields that differ between its runs, one dict of `RunConfig` fields
            per run of one seed (e.g. `{"norm": "group", "batch_size": 8}`).
        seeds: its seeds; None for the profile's (e.g. 0, 1, 2 for `cpu`).
        epochs: epochs by profile where they differ from the profile's default.
        more_runs: runs that a rule adds once earlier runs are finished, read from the
            results folder: called with the folder (or None) and the profile's seeds,
            returns more dicts like `runs` (e.g. one more learning rate where the best
            lies on the edge of a sweep).
        figures: its `Figure`s (utils.figures draws them, the report shows them).
        tables: its `Table`s in the report.
        findings: "module:function" of the function that gives the sentences computed
            from a runs frame (several experiments of a group may share one).
        measurements: what its runs record once an epoch beside their history, as
            "module:function" factories (utils.measurements), e.g.
            "utils.mixtures:mixing_measurement"; the grid runner passes them to training.
    """

    name: str
    group: str | None
    summary: str
    runs: tuple[dict, ...]
    seeds: tuple[int, ...] | None = None
    epochs: dict[str, int] = dataclasses.field(default_factory=dict)
    more_runs: Callable[[object, tuple], list[dict]] | None = None
    figures: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    findings: str | None = None
    measurements: tuple[str, ...] = ()

    def run_fields(self, results_dir=None, seeds=(0,)):
        """Every run's fields: the declared ones, then those a rule adds (reading the
        results folder, whose runs have the profile's `seeds`)."""
        extra = self.more_runs(results_dir, seeds) if self.more_runs is not None else []
        return list(self.runs) + [fields for fields in extra if fields not in self.runs]

    def figure(self, name):
        """Its `Figure` of that name (the file name without ".png").

        Raises:
            ValueError: for a name it does not draw; the message lists the ones it does.
        """
        for figure in self.figures:
            if figure.name == name:
                return figure
        drawn = [figure.name for figure in self.figures]
        raise ValueError(f"{self.name} draws no figure {name!r}; its figures are {drawn}.")

    def measurement_factories(self):
        """The functions `measurements` names (utils.training.run's `measurements`)."""
        return tuple(load_function(target) for target in self.measurements)


@dataclasses.dataclass(frozen=True)
class Section:
    """A section of the generated report: the experiments of one group, with their
    setup lines, tables, findings and figures.

    Args:
        anchor: the section's link anchor, e.g. "beyond-the-paper".
        title: its heading.
        group: the group of experiments it shows (utils.experiments.GROUPS).
        shared_runs: which of its runs are other experiments' runs, for its setup lines.
        lead: an experiment outside the group shown first, without setup lines: its
            tables, its findings as a paragraph, its figures (the study's recipe sweep).
    """

    anchor: str
    title: str
    group: str
    shared_runs: str
    lead: str | None = None
