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
from utils.experiment import Section

__all__ = ["REGISTRY", "NAMES", "GROUPS", "SECTIONS", "get", "resolve"]


def _declared():
    from utils.experiments import (
        beyond_the_paper,
        depth,
        fair_comparison,
        recipe_sweep,
        study,
        understanding_gn,
        why_gn_trails,
    )

    families = (
        study,
        recipe_sweep,
        beyond_the_paper,
        understanding_gn,
        fair_comparison,
        depth,
        why_gn_trails,
    )
    return {experiment.name: experiment for family in families for experiment in family.EXPERIMENTS}


REGISTRY: dict[str, Experiment] = _declared()
NAMES: tuple[str, ...] = tuple(REGISTRY)
# Names that stand for several experiments on the command line and in profile_configs:
# "study" is the paper's two experiments, the others the families of further experiments,
# and "all" every experiment.
GROUPS: dict[str, tuple[str, ...]] = {
    **{
        group: tuple(name for name, experiment in REGISTRY.items() if experiment.group == group)
        for group in (
            "study",
            "beyond_the_paper",
            "understanding_gn",
            "fair_comparison",
            "depth",
            "why_gn_trails",
        )
    },
    "all": NAMES,
}
# The generated report's sections (utils.report), one per group, in its order.
SECTIONS: tuple[Section, ...] = (
    Section(
        "study",
        "The study: the recipe sweep, Tables 1 and 2",
        "study",
        shared_runs="the batch-size sweep's batch-32 runs are the comparison's, seed 0's batch-32 runs the "
        "recipe sweep's",
        lead="recipe_sweep",
    ),
    Section(
        "beyond-the-paper",
        "Beyond the paper: how many groups, Batch Renorm, Weight Standardization",
        "beyond_the_paper",
        shared_runs="G = 1 and C/G = 1 are the study's LN and IN runs, G = 32 its GN run; BN and GN without "
        "Batch Renorm or WS are the batch-size sweep's",
    ),
    Section(
        "understanding-gn",
        "Why GN trains the way it does: the 2021 study's claims",
        "understanding_gn",
        shared_runs="the recipe's BN and GN runs at batch 32 are the comparison's, BN and GN beside the "
        "mixtures the sweep's",
    ),
    Section(
        "fair-comparison",
        "The fair comparison: every method at its own rate",
        "fair_comparison",
        shared_runs="the study's rate, the recipe sweep's seed 0, WS and the mixtures at 0.003 are those "
        "experiments' runs",
    ),
    Section(
        "depth",
        "Depth: the comparison on ResNet-10",
        "depth",
        shared_runs="the depth sweep's seed-0 runs at the chosen rates are the grid's",
    ),
    Section(
        "why-gn-trails",
        "Why GN trails BN here: one shared rate, Weight Standardization, scale augmentation",
        "why_gn_trails",
        shared_runs="none of these runs is another experiment's",
    ),
)


def get(name) -> Experiment:
    """The experiment of that name.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    if name not in REGISTRY:
        raise ValueError(
            f"Unknown experiment {name!r}; valid experiments are {NAMES + tuple(GROUPS)}."
        )
    return REGISTRY[name]


def resolve(name) -> tuple[Experiment, ...]:
    """The experiments an `--experiment` value stands for: one, or a group's.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    if name in GROUPS:
        return tuple(REGISTRY[member] for member in GROUPS[name])
    return (get(name),)
