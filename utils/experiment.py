"""The declaration of an experiment: a named grid of runs (utils.experiments lists them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = ["Experiment"]


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
        figures: the functions that draw its figures, as "module:function"; each takes
            a results folder (or runs frame) and `figures_dir=` and writes
            `<figures_dir>/<its name>.png` (utils.figures draws them).
    """

    name: str
    group: str | None
    summary: str
    runs: tuple[dict, ...]
    seeds: tuple[int, ...] | None = None
    epochs: dict[str, int] = dataclasses.field(default_factory=dict)
    more_runs: Callable[[object, tuple], list[dict]] | None = None
    figures: tuple[str, ...] = ()

    def run_fields(self, results_dir=None, seeds=(0,)):
        """Every run's fields: the declared ones, then those a rule adds (reading the
        results folder, whose runs have the profile's `seeds`)."""
        extra = self.more_runs(results_dir, seeds) if self.more_runs is not None else []
        return list(self.runs) + [fields for fields in extra if fields not in self.runs]
