"""Paths as the project prints them: without the machine's absolute folders, so that saved
notebook outputs and logs read the same on every machine."""

import os
from pathlib import Path

__all__ = [
    "REPOSITORY_ROOT",
    "STUDY_PROFILE",
    "display_path",
    "default_results_dir",
    "default_figures_dir",
]

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def display_path(path):
    """`path` relative to the repository root ("results/x"), to the home folder
    ("~/.keras/datasets") or to the repository's parent ("../shared/data"); any other
    path by its last two parts (".../data/tiny-imagenet-200.tar.gz")."""
    # abspath also folds "folder/.." away, so "notebooks/../x" prints as "x".
    path = Path(os.path.abspath(Path(path).expanduser()))
    for base, prefix in (
        (REPOSITORY_ROOT, ""),
        (Path.home(), "~/"),
        (REPOSITORY_ROOT.parent, "../"),
    ):
        if path.is_relative_to(base):
            return prefix + (path.relative_to(base).as_posix() or ".")
    return ".../" + "/".join(path.parts[-2:])


# The study's own profile: the one whose results and figures are committed.
STUDY_PROFILE = "cpu"


def default_results_dir(profile, seeds=None):
    """`results/` for the study's profile with its own seeds; `results-<profile>/` for any
    other profile, and `results-<profile>-seeds<0-1>/` for other seeds (GN_SEEDS), so that
    neither mixes with (or overwrites) the committed study."""
    if seeds is not None:
        return REPOSITORY_ROOT / f"results-{profile}-seeds{'-'.join(str(seed) for seed in seeds)}"
    return REPOSITORY_ROOT / ("results" if profile == STUDY_PROFILE else f"results-{profile}")


def default_figures_dir(profile, results_dir):
    """`figures/` for the study's profile with its default results folder; else
    `<results_dir>/figures/`, beside the runs they are drawn from."""
    if profile == STUDY_PROFILE and Path(results_dir).resolve() == default_results_dir(profile):
        return REPOSITORY_ROOT / "figures"
    return Path(results_dir) / "figures"
