"""The command line: trains a profile's grid of runs, one line per run, then a table.

    python -m utils.experiments --profile cpu --experiment all
    python -m utils.experiments --profile cpu --only gn_g32_bs2_seed0,bn_bs2_seed0
    python -m utils.experiments --profile smoke --results /tmp/results --set epochs=3

Runs already complete in the results folder are read back, not trained again; a killed
grid started again resumes where it stopped. `--only` selects runs by name (or
`experiment/name`) so a grid can be split over machines that share nothing but the
final results folders.
"""

import argparse
import ast
import dataclasses
import sys
import time

from utils.config import EXPERIMENTS
from utils.config import PROFILES
from utils.config import RunConfig
from utils.config import profile_configs

__all__ = ["select_runs", "run_grid", "summary_table", "parse_overrides", "main"]

_TABLE_COLUMNS = (
    "experiment",
    "run_name",
    "status",
    "epochs_completed",
    "val_error_median5",
    "train_error_median5",
    "val_loss_median5",
    "steps_per_epoch",
    "wall_seconds",
    "reused_from",
)


def select_runs(configs, only=None):
    """The configs named in `only`, in grid order.

    Args:
        configs: the grid (list of RunConfig).
        only: None (all), or names separated by commas: a run name (e.g.
            "gn_g32_bs4_seed0", which selects it in every experiment) or
            "experiment/run_name".

    Raises:
        ValueError: for a name no config has; the message lists the valid names.
    """
    if not only:
        return list(configs)
    names = [name.strip() for name in (only.split(",") if isinstance(only, str) else only) if name.strip()]
    valid = {config.run_name for config in configs} | {f"{c.experiment}/{c.run_name}" for c in configs}
    unknown = [name for name in names if name not in valid]
    if unknown:
        run_names = sorted({config.run_name for config in configs})
        raise ValueError(
            f"Unknown run name(s) {unknown}; valid names are {run_names} "
            "(or experiment/run_name to pick one experiment's run)."
        )
    wanted = set(names)
    return [c for c in configs if c.run_name in wanted or f"{c.experiment}/{c.run_name}" in wanted]


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
            raise ValueError(f"--set {assignment!r}: unknown field {key!r}; valid fields are {sorted(fields)}.")
        text = text.strip()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False, "none": None}.get(text.lower(), text)
        overrides[key] = value
    return overrides


def summary_table(results):
    """A pandas DataFrame with one row per run result (`RunResult`, or an exception for
    a run that failed)."""
    import pandas as pd

    rows = []
    for config, result in results:
        if isinstance(result, BaseException):
            row = {"experiment": config.experiment, "run_name": config.run_name, "status": f"failed: {result}"}
        else:
            row = {column: result.summary.get(column) for column in _TABLE_COLUMNS}
        rows.append(row)
    return pd.DataFrame(rows, columns=list(_TABLE_COLUMNS))


def _describe(result):
    summary = result.summary
    text = f"{summary['status']}, {summary['epochs_completed']}/{summary['epochs']} epochs"
    if summary.get("val_error_median5") is not None:
        text += f", val error {summary['val_error_median5']:.2f}% (median of last 5)"
    if summary.get("diverged_epoch") is not None:
        text += f", diverged in epoch {summary['diverged_epoch']}"
    if summary.get("reused_from"):
        text += f", reused from {summary['reused_from']}"
    return text + f", {summary['wall_seconds']:.0f} s"


def run_grid(configs, results_dir="results", *, data_dir=None, verbose=1, print_line=print):
    """Runs configs in order; a run that fails is reported and the grid goes on.

    Returns:
        A list of (config, RunResult or the exception raised).
    """
    from utils.training import run

    results = []
    for number, config in enumerate(configs, start=1):
        label = f"[{number}/{len(configs)}] {config.experiment}/{config.run_name}"
        print_line(f"{label}: starting")
        start = time.perf_counter()
        try:
            result = run(config, results_dir, data_dir=data_dir, verbose=verbose)
        except Exception as error:  # noqa: BLE001 - one failed run must not stop the grid
            print_line(f"{label}: failed after {time.perf_counter() - start:.0f} s: {type(error).__name__}: {error}")
            results.append((config, error))
            continue
        print_line(f"{label}: {_describe(result)}")
        results.append((config, result))
    return results


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m utils.experiments",
        description="Train a profile's grid of Group Normalization experiments (resumable).",
    )
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="grid scale (default: cpu)")
    parser.add_argument(
        "--experiment", choices=EXPERIMENTS + ("all",), default="all", help="which experiment (default: all)"
    )
    parser.add_argument("--only", help="comma-separated run names (or experiment/run_name) to run")
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--data", default=None, help="Tiny ImageNet folder or archive (synthetic: cache folder)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field on every run"
    )
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras fit verbosity")
    parser.add_argument("--list", action="store_true", help="list the selected runs and exit")
    return parser


def main(argv=None):
    """Command-line entry point; returns the exit status (1 if a run failed)."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        configs = profile_configs(arguments.profile, arguments.experiment, **parse_overrides(arguments.set))
        configs = select_runs(configs, arguments.only)
    except ValueError as error:
        parser.error(str(error))
    if arguments.list:
        for config in configs:
            print(f"{config.experiment}/{config.run_name}")
        return 0
    print(f"{len(configs)} run(s) of profile {arguments.profile!r} into {arguments.results}/")
    results = run_grid(configs, arguments.results, data_dir=arguments.data, verbose=arguments.verbose)
    table = summary_table(results)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.2f}".format):
        print(table.fillna({"reused_from": ""}).to_string(index=False))
    return 1 if any(isinstance(result, BaseException) for _, result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
