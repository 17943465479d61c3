"""The grid runner: what the engine will do with each run of a grid, and doing it.

`plan_runs` says, without training, whether each config's run is finished, reuses a
finished run of another experiment or must be trained; `run_grid` trains or reads back
each in turn (a run that fails is reported and the grid goes on). Every decision is
taken again under the run's lock by `utils.training.run`, since another process may
have finished the run meanwhile. The command line (utils.cli) and the notebooks call it.
"""

import dataclasses
import os
import time
from pathlib import Path

from utils import experiments
from utils import planning
from utils import runs
from utils.config import RunConfig
from utils.quiet import import_tensorflow

__all__ = [
    "PlannedRun",
    "GridRun",
    "select_runs",
    "check_results_folder",
    "check_writable",
    "plan_runs",
    "needs_training",
    "plan_table",
    "list_runs",
    "run_grid",
    "measurements_of",
    "summary_table",
]

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
        only: None (all), or names separated by commas (a string or a list): a run
            name (e.g. "gn_g32_bs4_seed0", which selects it in every experiment) or
            "experiment/run_name".

    Raises:
        ValueError: for a name no config has, or an `only` without any name (such as
            "" or ",,", which would otherwise select every run or none); the message
            starts with `only` and lists the valid names.
    """
    if only is None:
        return list(configs)
    names = [
        name.strip()
        for name in (only.split(",") if isinstance(only, str) else only)
        if name.strip()
    ]
    run_names = sorted({config.run_name for config in configs})
    if not names:
        example = f", such as {','.join(run_names[:2])}" if run_names else ""
        raise ValueError(f"{only!r} names no run; give run names separated by commas{example}.")
    valid = {config.run_name for config in configs} | {
        f"{c.experiment}/{c.run_name}" for c in configs
    }
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ValueError(
            f"{only!r} names unknown run(s) {unknown}; valid names are {run_names} "
            "(or experiment/run_name to pick one experiment's run)."
        )
    wanted = set(names)
    return [c for c in configs if c.run_name in wanted or f"{c.experiment}/{c.run_name}" in wanted]


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """What the engine will do with one config.

    Args:
        config: the `RunConfig`.
        action: "finished" (its folder holds a finished run, read back), "reuse" (a
            finished run of another experiment has the same training settings),
            "damaged" (its folder's files are damaged or disagree: left as they are) or
            "train".
        source: for "reuse", the folder of the run that is reused; for "damaged", what
            is wrong (utils.runs.check_run's message).
    """

    config: RunConfig
    action: str
    source: Path | None = None


@dataclasses.dataclass(frozen=True)
class GridRun:
    """What became of one config of a grid.

    Args:
        config: the `RunConfig`.
        outcome: "read back" (finished before), "reused", "trained" (complete or
            diverged, see the record's status), "failed", "locked" (another process
            is training it) or "not trained" (training was off: `skip_training`).
        record: the run folder read back (`utils.runs.RunRecord`), or None.
        error: the exception of a failed run, else None.
    """

    config: RunConfig
    outcome: str
    record: object = None
    error: BaseException | None = None


def check_results_folder(configs, results_dir):
    """Raises ValueError when the folder holds runs of these names with other settings
    (e.g. another profile's), naming each run and the fields that differ.

    The engine would refuse those runs one by one; tables would then mix settings.
    """
    clashes = []
    for config in configs:
        try:
            stored = runs.read_config(runs.run_directory(config, results_dir))
        except ValueError:
            continue  # a damaged config: planning names it, and the grid leaves it as it is
        if stored is not None and stored != config:
            differences = "; ".join(runs.config_differences(stored, config))
            clashes.append(f"{config.experiment}/{config.run_name} ({differences})")
    if clashes:
        raise ValueError(
            f"{results_dir} holds runs with other settings than requested:\n  "
            + "\n  ".join(clashes)
            + "\nUse a results folder of its own for these settings (e.g. results-smoke/), or delete "
            "those run folders."
        )


def check_writable(results_dir):
    """Creates the results folder if needed; raises ValueError, naming it, when it is not
    a folder this process can write to (checked once, before any data is loaded)."""
    path = Path(results_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"The results folder {str(path)!r} is a file; pass a folder (--results).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"The results folder {str(path)!r} cannot be created ({error}); pass another one."
        ) from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(
            f"The results folder {str(path)!r} is not writable; pass another one (--results)."
        )


def plan_runs(configs, results_dir="results"):
    """What the engine will do with each config, without doing it.

    Returns:
        A list of `PlannedRun`, in grid order.

    Raises:
        ValueError: when the folder holds runs of these names with other settings.
    """
    check_results_folder(configs, results_dir)
    return [PlannedRun(config, *planning.planned_action(config, results_dir)) for config in configs]


def needs_training(configs, results_dir="results"):
    """Whether any of the configs would have to be trained (and so needs the data)."""
    return any(plan.action == "train" for plan in plan_runs(configs, results_dir))


def plan_table(planned, results_dir="results"):
    """A pandas DataFrame of a plan: one row per run with its settings and action."""
    import pandas as pd

    def on_disk(plan):
        if plan.action == "reuse":
            return f"reuses {Path(plan.source).relative_to(results_dir).as_posix()}"
        if plan.action == "damaged":
            return f"damaged: {plan.source}"
        return {"finished": "finished", "train": "to train"}[plan.action]

    columns = [
        "experiment",
        "run",
        "norm",
        "batch size",
        "learning rate",
        "epochs",
        "classes",
        "training images",
        "on disk",
    ]
    return pd.DataFrame(
        [
            {
                "experiment": plan.config.experiment,
                "run": plan.config.run_name,
                "norm": plan.config.norm,
                "batch size": plan.config.batch_size,
                "learning rate": plan.config.learning_rate,
                "epochs": plan.config.epochs,
                "classes": plan.config.classes,
                "training images": plan.config.classes * plan.config.images_per_class,
                "on disk": on_disk(plan),
            }
            for plan in planned
        ],
        columns=columns,
    )  # the columns even for an empty plan


def list_runs(configs, results_dir="results", print_line=print):
    """Prints each run with what the engine would do with it, then the counts (--list).

    Returns:
        0, the command's exit status.
    """
    planned = plan_runs(configs, results_dir)
    table = plan_table(planned, results_dir)
    names = [f"{plan.config.experiment}/{plan.config.run_name}" for plan in planned]
    width = max((len(name) for name in names), default=0)
    for name, on_disk in zip(names, table["on disk"] if len(table) else []):
        print_line(f"{name:<{width}}  {on_disk}")
    counts = {
        action: sum(plan.action == action for plan in planned)
        for action in ("finished", "reuse", "train", "damaged")
    }
    damaged = f", {counts['damaged']} damaged" if counts["damaged"] else ""
    print_line(
        f"{len(planned)} run(s) in {results_dir}/: {counts['finished']} finished, {counts['reuse']} reuse a "
        f"finished run, {counts['train']} to train{damaged}"
    )
    return 0


def summary_table(grid):
    """A pandas DataFrame with one row per `GridRun`: the run's summary, or its outcome
    when it has none ("failed", "not trained", "locked")."""
    import pandas as pd

    rows = []
    for item in grid:
        if item.record is None:
            status = {"failed": "failed", "locked": "skipped (being trained elsewhere)"}.get(
                item.outcome, "not trained"
            )
            rows.append(
                {
                    "experiment": item.config.experiment,
                    "run_name": item.config.run_name,
                    "status": status,
                }
            )
        else:
            rows.append({column: item.record.summary.get(column) for column in _TABLE_COLUMNS})
    return pd.DataFrame(rows, columns=list(_TABLE_COLUMNS))


def _describe(record):
    summary = record.summary
    text = f"{summary['status']}, {summary['epochs_completed']}/{summary['epochs']} epochs"
    if summary.get("val_error_median5") is not None:
        text += f", val error {summary['val_error_median5']:.2f}% (median of last 5)"
    if summary.get("diverged_epoch") is not None:
        text += f", diverged in epoch {summary['diverged_epoch']}"
    if summary.get("reused_from"):
        text += f", reused from {summary['reused_from']}"
    return text + f", {summary['wall_seconds']:.0f} s"


def measurements_of(config):
    """The measurement factories of a config's experiment (none for a name outside the
    registry): what `utils.training.run` records beside the run's history."""
    if config.experiment not in experiments.REGISTRY:
        return ()
    return experiments.get(config.experiment).measurement_factories()


def _exit_request(error):
    """The SystemExit or KeyboardInterrupt among `error`'s causes and contexts, else
    None: a signal handler's exit raised inside C code (an import TensorFlow makes from
    C, say) comes back as a SystemError whose cause is the exit."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (SystemExit, KeyboardInterrupt)):
            return error
        error = error.__cause__ or error.__context__
    return None


def run_grid(
    configs,
    results_dir="results",
    *,
    data_dir=None,
    skip_training=None,
    verbose=1,
    print_line=print,
):
    """Runs configs in order; a run that fails is reported and the grid goes on.

    Args:
        configs: the `RunConfig`s, in training order.
        results_dir: the results folder.
        data_dir: where the data is (utils.training.load_data).
        skip_training: None to train what is not finished; else the reason why nothing
            may be trained (e.g. "the data is not available"): runs that would have to
            be trained are then skipped ("not trained"), the others read back.
        verbose: Keras fit verbosity while training.
        print_line: called with one line per run.

    Returns:
        A list of `GridRun`, in grid order.
    """
    if any(plan.action != "finished" for plan in plan_runs(configs, results_dir)):
        check_writable(results_dir)
    grid = []
    for number, config in enumerate(configs, start=1):
        # Planned again for each run: another process may have trained it meanwhile.
        plan = PlannedRun(config, *planning.planned_action(config, results_dir))
        label = f"[{number}/{len(configs)}] {config.experiment}/{config.run_name}"
        if plan.action == "damaged":
            print_line(f"{label}: damaged, left as it is: {plan.source}")
            grid.append(GridRun(config, "failed", error=ValueError(plan.source)))
            continue
        if plan.action == "train" and skip_training:
            print_line(f"{label}: not trained ({skip_training})")
            grid.append(GridRun(config, "not trained"))
            continue
        trained = []

        def announce_training(label=label, trained=trained):
            # Said under the run's lock: another process may finish the run between
            # this process's planning and its turn, and then this one only reads it.
            trained.append(True)
            print_line(f"{label}: starting")

        start = time.perf_counter()
        try:
            # Imported here: planning and reading need no TensorFlow.
            import_tensorflow()
            from utils.training import run

            record = run(
                config,
                results_dir,
                data_dir=data_dir,
                verbose=verbose,
                measurements=measurements_of(config),
                on_training_start=announce_training,
            )
        except runs.RunLockedError as locked:
            print_line(
                f"{label}: skipped, being trained by {f'process {locked.pid}' if locked.pid else 'another process'}"
            )
            grid.append(GridRun(config, "locked", error=locked))
            continue
        except Exception as error:  # noqa: BLE001 - one failed run must not stop the grid
            exit_request = _exit_request(error)
            if exit_request is not None:
                # Asked to end (SIGTERM, Ctrl-C) inside C code, which turned the exit
                # into an error of its own: the process ends; the run did not fail.
                raise exit_request from None
            print_line(
                f"{label}: failed after {time.perf_counter() - start:.0f} s: {type(error).__name__}: {error}"
            )
            grid.append(GridRun(config, "failed", error=error))
            continue
        print_line(f"{label}: {_describe(record)}")
        # A run planned for training that another process finished meanwhile was only read.
        outcome = "trained" if trained else ("reused" if plan.action == "reuse" else "read back")
        grid.append(GridRun(config, outcome, record=record))
    return grid
