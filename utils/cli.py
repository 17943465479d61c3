"""The command line: trains a profile's grid of runs, one line per run, then a table.

    python -m utils.experiments --profile cpu --experiment study
    python -m utils.experiments --profile cpu --experiment beyond_the_paper
    python -m utils.experiments --profile cpu --only gn_g32_bs2_seed0,bn_bs2_seed0
    python -m utils.experiments --profile smoke --results /tmp/results --set epochs=3
    python -m utils.experiments --profile cpu --workers 2
    python -m utils.experiments --profile cpu --list
    python -m utils.experiments --profile paper --executor ray --address auto

Runs already complete in the results folder are read back, not trained again; a killed
grid started again resumes where it stopped. `--only` selects runs by name (or
`experiment/name`); `--executor ray` spreads a grid over a Ray cluster. This module
parses and dispatches: the grids are declared in utils.experiments, run by utils.grid,
in worker processes by utils.workers, as Ray tasks by utils.ray_executor.
"""

import argparse
import ast
import dataclasses
import os
import re
import sys
from pathlib import Path

from utils import experiments
from utils import grid as grid_module
from utils import workers
from utils.config import RunConfig
from utils import profiles
from utils.profiles import PROFILES
from utils.profiles import profile_configs

__all__ = ["parse_overrides", "main"]

# The RunConfig fields that the options decide for every run (the option that does).
_FIELDS_OF_OPTIONS = {"experiment": "--experiment", "profile": "--profile"}


def parse_overrides(assignments):
    """RunConfig field overrides from "key=value" strings (values as Python literals,
    bare words as strings), e.g. ["epochs=3", "precision=mixed_bfloat16"].

    Raises:
        ValueError: for a malformed assignment or an unknown field.
    """
    fields = {field.name for field in dataclasses.fields(RunConfig)}
    overrides = {}
    for assignment in assignments or ():
        key, separator, text = assignment.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"--set {assignment!r} must look like key=value, e.g. epochs=3.")
        if key not in fields:
            raise ValueError(
                f"--set {assignment!r}: unknown field {key!r}; valid fields are {sorted(fields)}."
            )
        if key in _FIELDS_OF_OPTIONS:
            option = _FIELDS_OF_OPTIONS[key]
            raise ValueError(
                f"--set {assignment!r}: the {key} field is decided by {option}; "
                f"use {option} {text.strip()} instead."
            )
        text = text.strip()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False, "none": None}.get(text.lower(), text)
        overrides[key] = value
    return overrides


def _whole_number(text):
    """An argparse type: a whole number written in the digits 0-9. int() alone would
    take the digits of other scripts too (Arabic-Indic ones, for instance), which no
    one types on purpose."""
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a whole number written in the digits 0-9, such as 2."
        )
    return int(text)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m utils.experiments",
        description="Train a profile's grid of Group Normalization experiments (resumable).",
    )
    parser.add_argument(
        "--profile", choices=PROFILES, default="cpu", help="grid scale (default: cpu)"
    )
    parser.add_argument(
        "--experiment",
        choices=experiments.NAMES + tuple(experiments.GROUPS),
        default="study",
        help="which experiment: one, or a group of them ("
        + ", ".join(f"'{group}'" for group in experiments.GROUPS)
        + "; 'study' is the paper's two, 'all' every experiment) (default: study)",
    )
    parser.add_argument("--only", help="comma-separated run names (or experiment/run_name) to run")
    parser.add_argument(
        "--seeds", help="comma-separated seeds of the study's runs (default: the profile's)"
    )
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument(
        "--data", default=None, help="Tiny ImageNet folder or archive (synthetic: cache folder)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field on every run",
    )
    parser.add_argument(
        "--verbose", type=_whole_number, choices=(0, 1, 2), default=1, help="Keras fit verbosity"
    )
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help="write each run's curves for TensorBoard under DIR/<experiment>/<run> (view them with "
        "tensorboard --logdir DIR); the environment variable GN_TENSORBOARD does the same",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the selected runs, each with what would be done with it, and exit",
    )
    parser.add_argument(
        "--workers",
        type=_whole_number,
        default=None,
        help="training processes side by side (default: 2 on a CPU with two or more cores, 1 with a GPU; "
        "lowered to what the cores and the memory allow)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where runs train: 'local' processes on this machine (default), or 'ray' tasks on a Ray "
        "cluster (pip install -r requirements-cluster.txt)",
    )
    parser.add_argument(
        "--address",
        help="with --executor ray: the cluster to join, e.g. auto or ray://host:10001 "
        "(default: start Ray on this machine)",
    )
    parser.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        help="with --executor ray: GPUs each run asks for (default: 1 for the paper profile, else 0)",
    )
    return parser


def _train(arguments, configs):
    """The grid trained by the chosen executor, then read back (a list of GridRun)."""
    if arguments.executor == "ray":
        from utils import ray_executor

        return ray_executor.run_on_ray(
            configs,
            arguments.results,
            address=arguments.address,
            data_dir=arguments.data,
            verbose=arguments.verbose,
            gpus_per_run=arguments.gpus_per_run,
        )
    return workers.run_in_workers(
        configs,
        arguments.results,
        workers=arguments.workers or workers.default_workers(),
        data_dir=arguments.data,
        verbose=arguments.verbose,
    )


def main(argv=None):
    """Command-line entry point; returns the exit status (1 if a run failed, 2 for a
    results folder that cannot be used)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        configs = profile_configs(
            arguments.profile,
            arguments.experiment,
            seeds=profiles.parse_seeds(arguments.seeds),
            results_dir=arguments.results,
            **parse_overrides(arguments.set),
        )
    except ValueError as error:
        parser.error(str(error))
    try:
        configs = grid_module.select_runs(configs, arguments.only)
    except ValueError as error:
        parser.error(f"--only {error}")
    if arguments.workers is not None and arguments.workers < 1:
        parser.error(f"--workers {arguments.workers} must be 1 or more.")
    if arguments.executor == "local":
        for option, value in (
            ("--address", arguments.address),
            ("--gpus-per-run", arguments.gpus_per_run),
        ):
            if value is not None:
                parser.error(
                    f"{option} {value} is an option of --executor ray; add --executor ray or drop {option}."
                )
    elif arguments.workers is not None:
        parser.error(
            f"--workers {arguments.workers} is an option of the local executor; with --executor ray, Ray "
            "places the runs by the resources each asks for (--gpus-per-run)."
        )
    if arguments.list:
        status = grid_module.list_runs(configs, arguments.results)
        if arguments.experiment != "all":
            others = ", ".join(
                name for name in experiments.GROUPS if name not in ("all", arguments.experiment)
            )
            print(
                f"These are the runs of --experiment {arguments.experiment}; --experiment all lists every "
                f"experiment's, and each group has its name: {others}."
            )
        return status
    if arguments.tensorboard:
        # The workers (and Ray's local tasks) inherit the environment.
        os.environ["GN_TENSORBOARD"] = str(Path(arguments.tensorboard).expanduser().resolve())
    print(f"{len(configs)} run(s) of profile {arguments.profile!r} into {arguments.results}/")
    try:
        grid = _train(arguments, configs)
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # The workers are ended by now; a traceback would only hide the one useful line.
        print(
            "\nStopped. Run the same command again to resume: each run goes on from its last finished "
            "epoch.",
            file=sys.stderr,
        )
        return 128 + 2  # what a shell reports for a process ended by Ctrl-C (SIGINT)
    table = grid_module.summary_table(grid)
    table["reused_from"] = table["reused_from"].map(
        lambda source: source if isinstance(source, str) else ""
    )
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", None, "display.float_format", "{:.2f}".format
    ):
        print(table.to_string(index=False))
    return 1 if any(item.outcome == "failed" for item in grid) else 0
