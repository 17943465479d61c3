"""Paths as the project prints them: without the machine's absolute folders, so that saved
notebook outputs and logs read the same on every machine."""

import os
from pathlib import Path

__all__ = ["REPOSITORY_ROOT", "display_path"]

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def display_path(path):
    """`path` relative to the repository root ("results/x"), to the home folder
    ("~/.keras/datasets") or to the repository's parent ("../shared/data"); any other
    path by its last two parts (".../data/tiny-imagenet-200.tar.gz")."""
    # abspath also folds "folder/.." away, so "notebooks/../x" prints as "x".
    path = Path(os.path.abspath(Path(path).expanduser()))
    for base, prefix in ((REPOSITORY_ROOT, ""), (Path.home(), "~/"), (REPOSITORY_ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + (path.relative_to(base).as_posix() or ".")
    return ".../" + "/".join(path.parts[-2:])
