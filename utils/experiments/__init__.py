"""The experiments: what each one trains, declared once, in one module per family.

An `Experiment` is a named grid: the fields that differ between its runs (beside the
profile's settings, utils.profiles), its seeds and its length. The registry `REGISTRY`
lists them in the order a full grid trains them; `GROUPS` names sets of them for the
command line (`--experiment study` is the paper's two). Adding an experiment is one module here
and its name in `_declared`'s list of families.

    python -m utils.experiments --profile cpu --list      # every run, and its state
"""

from __future__ import annotations

from utils.experiment import Experiment

__all__ = ["REGISTRY", "NAMES", "GROUPS", "get", "resolve"]


def _declared():
    from utils.experiments import (batch_renorm, distortion, group_ablation, landscape, long_training, mixtures,
                                   rate_sweep, recipe_sweep, study, weight_standardization)

    families = (study, recipe_sweep, group_ablation, batch_renorm, weight_standardization, landscape, distortion,
                mixtures, rate_sweep, long_training)
    return {experiment.name: experiment for family in families for experiment in family.EXPERIMENTS}


REGISTRY: dict[str, Experiment] = _declared()
NAMES: tuple[str, ...] = tuple(REGISTRY)
# Names that stand for several experiments on the command line and in profile_configs:
# "study" is the paper's two experiments, the others the families of further experiments,
# and "all" every experiment.
GROUPS: dict[str, tuple[str, ...]] = {
    **{group: tuple(name for name, experiment in REGISTRY.items() if experiment.group == group)
       for group in ("study", "beyond_the_paper", "understanding_gn", "fair_comparison")},
    "all": NAMES,
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
