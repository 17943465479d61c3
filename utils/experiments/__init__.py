"""The experiments: what each one trains, declared once, in one module per family.

An `Experiment` is a named grid: the fields that differ between its runs (beside the
profile's settings, utils.profiles), its seeds and its length. The registry `REGISTRY`
lists them in the order a full grid trains them; `GROUPS` names sets of them for the
command line (`--experiment all` is the study). Adding an experiment is one module here
and its name in `_declared`'s list of families.

    python -m utils.experiments --profile cpu --list      # every run, and its state
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = ["Experiment", "REGISTRY", "NAMES", "GROUPS", "get", "resolve"]


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
            results folder: called with the folder (or None) and the profile's name,
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
    more_runs: Callable[[object, str], list[dict]] | None = None
    figures: tuple[str, ...] = ()

    def run_fields(self, results_dir=None, profile="cpu"):
        """Every run's fields: the declared ones, then those a rule adds."""
        extra = self.more_runs(results_dir, profile) if self.more_runs is not None else []
        return list(self.runs) + [fields for fields in extra if fields not in self.runs]


def _declared():
    # Imported here: the family modules import this module for `Experiment`.
    from utils.experiments import (batch_renorm, distortion, group_ablation, landscape, long_training, mixtures,
                                   rate_sweep, recipe_sweep, study, weight_standardization)

    families = (study, recipe_sweep, group_ablation, batch_renorm, weight_standardization, landscape, distortion,
                mixtures, rate_sweep, long_training)
    return {experiment.name: experiment for family in families for experiment in family.EXPERIMENTS}


REGISTRY: dict[str, Experiment] = _declared()
NAMES: tuple[str, ...] = tuple(REGISTRY)
# Names that stand for several experiments on the command line and in profile_configs:
# "all" is the study, the others the families of further experiments.
GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(name for name, experiment in REGISTRY.items() if experiment.group == group)
    for group in ("all", "beyond_the_paper", "understanding_gn", "fair_comparison")
}


def get(name) -> Experiment:
    """The experiment of that name.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown experiment {name!r}; valid experiments are {NAMES + tuple(GROUPS)}.")
    return REGISTRY[name]


def resolve(name) -> tuple[Experiment, ...]:
    """The experiments an `--experiment` value stands for: one, or a group's.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    if name in GROUPS:
        return tuple(REGISTRY[member] for member in GROUPS[name])
    return (get(name),)
