"""What the notebooks share: settings from the environment, the data check, the runner.

Every notebook starts with `settings = notebook.read_settings()` and then only sets
parameters, calls `utils` and displays. Environment variables (all optional):

    GN_PROFILE         the grid of runs: "smoke", "cpu" (default) or "paper" (utils.profiles).
    TINY_IMAGENET_DIR  Tiny ImageNet-200: the extracted `tiny-imagenet-200` folder or the
                       downloaded .zip / .tar.gz. Unset: a copy in the Keras cache
                       (`$KERAS_HOME/datasets`, `~/.keras/datasets`), else the official
                       download, which is tried only when a run still has to be trained.
    GN_RESULTS_DIR     the results folder (default `results/` for the `cpu` profile,
                       `results-<profile>/` for the others).
    GN_FIGURES_DIR     where figures are written (default `figures/` for the `cpu` profile
                       and its default results folder, else `<results folder>/figures/`).
    GN_SYNTHETIC_DIR   where the smoke profile generates its synthetic data set (default
                       `data/`, which git ignores).
    GN_VERBOSE         Keras fit verbosity while training: 2 (default) prints one line per
                       epoch, 1 a live progress bar (long outputs in a saved notebook), 0
                       nothing.
    GN_SEEDS           the seeds of the study's runs, e.g. `0` for a quick pass with one
                       seed (default: the profile's: 0, 1 and 2 for `cpu`).
    GN_WORKERS         training processes side by side (default: 2 on a CPU with two or
                       more cores, 1 with a GPU; utils.workers).
    GN_TRAIN           1 (default) trains the runs that are missing; 0 only reads the
                       results folder (e.g. while a grid trains in the background).

Relative paths are taken from the repository root, whichever folder the notebook runs in.

Importing this module limits TensorFlow in the process to one thread on a CPU
(utils.training.use_training_threads), so that a run trained or resumed from a notebook
has the history the command line gives it.

When every run of the profile is already complete in the results folder, nothing here
reads an image: the engine (utils.training.run) returns finished runs from disk, and
`find_data` only looks for a local copy of the data unless told it may download.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import platform
import re
from pathlib import Path

from utils.quiet import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402 - after TensorFlow's quiet start
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils import config as config_module
from utils import data as data_module
from utils import data_sources
from utils import grid as grid_module
from utils import paths
from utils import planning
from utils import plots
from utils import profiles
from utils import results
from utils import training
from utils import workers
from utils.paths import REPOSITORY_ROOT
from utils.paths import display_path
from utils.synthetic import SYNTHETIC_DATASET_NAME

# Before a notebook's first TensorFlow operation: a run trained (or resumed) here then
# uses the same threads as one trained by the command line.
training.use_training_threads()

__all__ = [
    "REPOSITORY_ROOT",
    "ENVIRONMENT_VARIABLES",
    "Settings",
    "DataStatus",
    "read_settings",
    "show_setup",
    "hardware",
    "profile_configs",
    "run_plan",
    "example_config",
    "show_config",
    "display_path",
    "find_data",
    "load_profile_data",
    "show_data",
    "run_experiment",
    "plan_counts",
    "regenerate",
    "TrainingLines",
    "show_table",
]

DEFAULT_PROFILE = paths.STUDY_PROFILE
# Variable name -> what it sets (printed by `show_setup`).
ENVIRONMENT_VARIABLES = {
    "GN_PROFILE": f"grid of runs: one of {config_module.PROFILES} (default {DEFAULT_PROFILE!r})",
    data_sources.ENVIRONMENT_VARIABLE: "Tiny ImageNet-200 folder or archive (default: the Keras cache)",
    "GN_RESULTS_DIR": "results folder (default results/ for the cpu profile, results-<profile>/ otherwise)",
    "GN_FIGURES_DIR": "figures folder (default figures/ with the default cpu results, else <results>/figures/)",
    "GN_SYNTHETIC_DIR": "where the smoke profile's synthetic data is generated (default data/)",
    "GN_VERBOSE": "Keras fit verbosity while training: 2 one line per epoch (default), 1 progress bar, 0 none",
    "GN_SEEDS": "seeds of the study's runs, e.g. 0 for a quick pass (default: the profile's)",
    "GN_WORKERS": "training processes side by side (default: 2 on a CPU with two or more cores, 1 with a GPU)",
    "GN_TRAIN": "1 (default) trains what is missing; 0 only reads the results folder",
}
SAMPLE_IMAGES = 32


@dataclasses.dataclass(frozen=True)
class Settings:
    """A notebook's settings, read from the environment by `read_settings`.

    Args:
        profile: "smoke", "cpu" or "paper".
        results_dir: absolute results folder.
        figures_dir: absolute figures folder.
        synthetic_dir: absolute folder the synthetic data set is generated in.
        verbose: Keras fit verbosity (0, 1 or 2).
        seeds: the seeds of the study's runs, or None for the profile's.
        workers: training processes side by side, or None for utils.workers's default.
        train: False to only read the results folder, training nothing (GN_TRAIN=0).
    """

    profile: str
    results_dir: Path
    figures_dir: Path
    synthetic_dir: Path
    verbose: int
    seeds: tuple | None = None
    workers: int | None = None
    train: bool = True


@dataclasses.dataclass(frozen=True)
class DataStatus:
    """Where a profile's images come from, and whether they are there.

    Args:
        dataset: "tiny-imagenet-200" or "synthetic-tiny-imagenet".
        available: whether the images can be read without a download.
        data_dir: what to pass to the engine as `data_dir`: the data set's folder, the
            synthetic data's parent folder, or (when not available) the path that was
            looked at, so that a run needing images fails at once instead of downloading.
        message: one paragraph for the reader: where the data is, or how to get it.
    """

    dataset: str
    available: bool
    data_dir: Path | None
    message: str


def _path_setting(environ, name, default):
    value = environ.get(name) or default
    path = Path(value).expanduser()
    # Relative to the repository root, not to the notebook's folder (notebooks/).
    return path if path.is_absolute() else REPOSITORY_ROOT / path


def read_settings(environ=None):
    """The settings from the environment variables (see the module docstring).

    Args:
        environ: a mapping to read instead of `os.environ` (for tests).

    Returns:
        A `Settings`.

    Raises:
        ValueError: for a value a variable cannot take, naming the variable, the value
            and what it may be.
    """
    environ = os.environ if environ is None else environ
    profile = environ.get("GN_PROFILE") or DEFAULT_PROFILE
    if profile not in config_module.PROFILES:
        raise ValueError(
            f"GN_PROFILE={profile!r} is not a profile; set it to one of {config_module.PROFILES}."
        )
    try:
        seeds = profiles.parse_seeds(environ.get("GN_SEEDS"))
    except ValueError:
        raise ValueError(
            f"GN_SEEDS={environ.get('GN_SEEDS')!r} must be comma-separated integers >= 0 (at most "
            f"{config_module.MAX_SEED}) in the digits 0-9, each at most once, e.g. 0 or 0,1,2."
        ) from None
    # Seeds other than the profile's are a grid of their own, in a folder of their own.
    other_seeds = (
        seeds
        if seeds is not None and tuple(seeds) != tuple(profiles.profile_settings(profile)["seeds"])
        else None
    )
    results_dir = _path_setting(
        environ, "GN_RESULTS_DIR", paths.default_results_dir(profile, other_seeds)
    )
    verbose_text = environ.get("GN_VERBOSE") or "2"
    train_text = environ.get("GN_TRAIN") or "1"
    if train_text not in ("0", "1"):
        raise ValueError(
            f"GN_TRAIN={train_text!r} must be 1 (train what is missing) or 0 (only read results)."
        )
    # Spaces around the number are taken, as the command line's --workers takes them.
    workers_text = (environ.get("GN_WORKERS") or "").strip()
    # Not str.isdigit(): it is true of superscripts and of other scripts' digits too.
    if workers_text and not (re.fullmatch(r"[0-9]+", workers_text) and int(workers_text) >= 1):
        raise ValueError(
            f"GN_WORKERS={workers_text!r} must be an integer >= 1 in the digits 0-9, such as 2."
        )
    if verbose_text not in ("0", "1", "2"):
        raise ValueError(f"GN_VERBOSE={verbose_text!r} must be 0, 1 or 2.")
    return Settings(
        profile=profile,
        results_dir=results_dir,
        figures_dir=_path_setting(
            environ, "GN_FIGURES_DIR", paths.default_figures_dir(profile, results_dir)
        ),
        synthetic_dir=_path_setting(environ, "GN_SYNTHETIC_DIR", "data"),
        verbose=int(verbose_text),
        seeds=seeds,
        workers=int(workers_text) if workers_text else None,
        train=train_text == "1",
    )


def hardware():
    """Two lines describing the machine: its CPU and its accelerators."""
    lines = [
        f"CPU: {platform.machine() or 'unknown'}, {os.cpu_count()} logical cores, {platform.system()}"
    ]
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [
            tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in gpus
        ]
        lines.append(f"GPUs: {len(gpus)} ({', '.join(names)})")
    else:
        lines.append("GPUs: none (training runs on the CPU)")
    return "\n".join(lines)


def versions():
    """The versions of Python and of the libraries that compute the results."""
    return (
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"NumPy {np.__version__}, pandas {pd.__version__}"
    )


def _epochs_text(epochs):
    """ "10 epochs" when every experiment trains as long, else the usual count and the
    exceptions: "10 epochs (long_training 30)"."""
    counts = list(epochs.values())
    usual = max(set(counts), key=counts.count)
    others = ", ".join(
        f"{experiment} {count}" for experiment, count in epochs.items() if count != usual
    )
    return f"{usual} epochs" + (f" ({others})" if others else "")


def show_setup(settings):
    """Prints the profile, the folders, the data source and the hardware.

    Args:
        settings: from `read_settings`.
    """
    profile = profiles.profile_settings(settings.profile)
    print(
        f"profile:  {settings.profile} (dataset {profile['dataset']}, {profile['classes']} classes, "
        f"{profile['images_per_class']} training images per class, {_epochs_text(profile['epochs'])})"
    )
    seeds = settings.seeds if settings.seeds is not None else profile["seeds"]
    print(
        f"seeds:    {', '.join(map(str, seeds))} (the study's runs; the recipe sweep uses seed 0)"
    )
    print(f"results:  {display_path(settings.results_dir)}")
    print(f"figures:  {display_path(settings.figures_dir)}")
    if profile["dataset"] == SYNTHETIC_DATASET_NAME:
        print(f"data:     synthetic, generated in {display_path(settings.synthetic_dir)}")
    else:
        # Where the copy lies differs from machine to machine; so does the hardware, which
        # `run_experiment` shows when it trains. The saved notebooks show neither.
        print(
            f"data:     {data_sources.ENVIRONMENT_VARIABLE} if set, else the Keras cache (utils/README.md#data)"
        )
    print(versions())


def profile_configs(settings, experiment="study"):
    """The profile's run configs (utils.profiles.profile_configs) for one experiment or a group ("study": the paper's two).

    Args:
        settings: from `read_settings`.
        experiment: an experiment of utils.experiments.NAMES, "study" (the paper's two) or
            "beyond_the_paper".
    """
    return profiles.profile_configs(
        settings.profile, experiment, seeds=settings.seeds, results_dir=settings.results_dir
    )


# The fields a reader of any run wants to see, whatever their values.
_CONFIG_ESSENTIALS = (
    "experiment",
    "model",
    "norm",
    "batch_size",
    "epochs",
    "base_learning_rate",
    "seed",
)


def show_config(config):
    """Shows a run's config as a two-column table: the fields that say what the run is
    (its experiment, network, normalization, batch size, length, rate and seed) and every
    other field whose value is not `RunConfig`'s default; the rest are named in one line.

    Args:
        config: a RunConfig.
    """
    from IPython.display import Markdown, display

    defaults = config_module.RunConfig()
    shown, rest = [], []
    for field in dataclasses.fields(config_module.RunConfig):
        value = getattr(config, field.name)
        if field.name in _CONFIG_ESSENTIALS or value != getattr(defaults, field.name):
            shown.append(f"| `{field.name}` | `{value!r}` |")
        else:
            rest.append(field.name)
    lines = ["| field | value |", "|:---|:---|", *shown, ""]
    if rest:
        lines.append(f"At `RunConfig`'s defaults: {', '.join(rest)}.")
    display(Markdown("\n".join(lines)))


def example_config(configs, results_dir, **fields):
    """The config a lesson shows: the first of `configs` whose fields match `fields` and
    whose run is finished in the results folder (it is then read back, not trained), else
    the first that matches.

    Raises:
        ValueError: when no config matches `fields`.
    """
    matching = [
        config
        for config in configs
        if all(getattr(config, key) == value for key, value in fields.items())
    ]
    if not matching:
        raise ValueError(f"No config of the grid has {fields}.")
    finished = [
        config
        for config in matching
        if planning.planned_action(config, results_dir)[0] == "finished"
    ]
    return (finished or matching)[0]


def run_plan(configs, results_dir):
    """One row per run: its settings and what the engine will do with it.

    Args:
        configs: run configs.
        results_dir: the results folder.

    Returns:
        A DataFrame whose "on disk" column says "finished", "reuses <experiment>/<run>"
        or "to train" (utils.grid.plan_runs).
    """
    return grid_module.plan_table(grid_module.plan_runs(configs, results_dir), results_dir)


def plan_counts(configs, results_dir):
    """How many runs of each experiment are finished, reuse a finished run or are to train:
    one row per experiment (the run-by-run plan is `run_plan`); no row for an empty grid
    (e.g. a grid whose runs wait for a sweep's choice)."""
    table = run_plan(configs, results_dir)
    if table.empty:
        return pd.DataFrame(
            columns=["finished", "reuses a finished run", "to train"],
            index=pd.Index([], name="experiment"),
            dtype=int,
        )
    status = table["on disk"].where(
        ~table["on disk"].str.startswith("reuses "), "reuses a finished run"
    )
    counts = pd.crosstab(table["experiment"], status).reindex(
        columns=["finished", "reuses a finished run", "to train"], fill_value=0
    )
    counts = counts.loc[list(dict.fromkeys(table["experiment"]))]  # grid order
    counts.columns.name = None
    return counts


def find_data(settings, *, download=False):
    """Whether the profile's images are available, without downloading unless allowed.

    The synthetic data of the smoke profile is always available (it is generated). For
    Tiny ImageNet, `TINY_IMAGENET_DIR` and the Keras cache are searched; the official
    archive is downloaded only when `download` is True (and training is on: GN_TRAIN).

    Args:
        settings: from `read_settings`.
        download: whether the official archive may be downloaded when no copy is found.

    Returns:
        A `DataStatus`.
    """
    dataset = profiles.profile_settings(settings.profile)["dataset"]
    download = download and settings.train
    if dataset == SYNTHETIC_DATASET_NAME:
        return DataStatus(
            dataset,
            True,
            settings.synthetic_dir,
            f"Synthetic stand-in for Tiny ImageNet, generated in {display_path(settings.synthetic_dir)}.",
        )
    try:
        folder = data_sources.resolve_dataset_folder(None, download=download)
    except (FileNotFoundError, ValueError) as error:
        configured = os.environ.get(data_sources.ENVIRONMENT_VARIABLE)
        looked_at = (
            Path(configured).expanduser()
            if configured
            else (data_sources.default_cache_dir() / data_sources.TINY_IMAGENET_DATASET_NAME)
        )
        return DataStatus(dataset, False, looked_at, f"The data is not available.\n{error}")
    where = (
        data_sources.ENVIRONMENT_VARIABLE
        if os.environ.get(data_sources.ENVIRONMENT_VARIABLE)
        else "the Keras cache"
    )
    # Not the folder itself: its path (and the cache's key in its name) differs from machine
    # to machine, and the saved notebooks show this line. `data_dir` holds it.
    return DataStatus(dataset, True, Path(folder), f"Tiny ImageNet-200 found (from {where}).")


def load_profile_data(settings, data):
    """The profile's training and validation arrays and class names, as the engine loads them.

    Args:
        settings: from `read_settings`.
        data: an available `DataStatus` from `find_data`.

    Returns:
        ((x_train, y_train), (x_val, y_val), class_names): class_names[label] is
        (wnid, name), from utils.data.tiny_imagenet_classes.
    """
    if not data.available:
        raise ValueError(f"The data is not available: {data.message}")
    first = profile_configs(settings)[0]
    arrays = training.load_data(first, data.data_dir)
    folder = data.data_dir
    if data.dataset == SYNTHETIC_DATASET_NAME:
        folder = training.synthetic_data_folder(first, data.data_dir) / SYNTHETIC_DATASET_NAME
    names = data_module.tiny_imagenet_classes(folder, download=False, classes=first.classes)
    return (*arrays, names)


def _sample_indices(labels, count):
    """Up to `count` indices spread over the classes: the first images of each class."""
    classes = np.unique(labels)
    per_class = max(1, count // len(classes))
    chosen = [index for label in classes for index in np.flatnonzero(labels == label)[:per_class]]
    return np.asarray(chosen[:count])


def show_data(settings, data, *, count=SAMPLE_IMAGES):
    """Prints a summary of the profile's data and draws sample training images.

    When the data is not available it prints so and how to get it, and draws nothing.

    Args:
        settings: from `read_settings`.
        data: a `DataStatus` from `find_data`.
        count: how many sample images to draw.

    Returns:
        The path of the sample-image figure (not shown inline), or None when the data is
        not available.
    """
    print(data.message)
    if not data.available:
        print(
            "\nNo sample images are shown. Finished runs are read from "
            f"{display_path(settings.results_dir)} without the data; a run that still has to be trained needs it."
        )
        return None
    (x_train, y_train), (x_val, y_val), class_names = load_profile_data(settings, data)
    counts = np.bincount(y_train, minlength=len(class_names))
    print(
        f"{data.dataset}: {len(class_names)} classes, {len(x_train)} training images "
        f"({counts.min()} to {counts.max()} per class), {len(x_val)} validation images, "
        f"{x_train.shape[1:]} {x_train.dtype}, pixel mean {x_train.mean():.1f}."
    )
    shown = ", ".join(f"{label}: {name}" for label, (_, name) in list(enumerate(class_names))[:8])
    print(f"First classes: {shown}{', ...' if len(class_names) > 8 else ''}")
    indices = _sample_indices(y_train, count)
    figure = plots.plot_sample_images(
        x_train[indices],
        y_train[indices],
        class_names,
        figures_dir=settings.figures_dir,
        dataset=data.dataset,
        profile=settings.profile,
        count=len(indices),
    )
    # Written to disk but not embedded in the notebook: the executed notebooks are kept in
    # the repository, which holds no part of the data set (git ignores the file, too).
    plt.close(figure)
    path = Path(settings.figures_dir) / "sample_images.png"
    print(f"Sample training images with their class names: {display_path(path)}")
    return path


# A grid's line about one run: "[3/20] norm_comparison/bn_bs32_seed0: <what happened>".
_RUN_LINE = re.compile(r"^(?:\[worker \d+\] )?(\[\d+/\d+\] \S+): (.*)$")


class TrainingLines:
    """A grid's `print_line` for notebooks: prints what is trained (its start and end
    lines), what fails or is skipped, and Keras's lines, but not the runs read back from
    disk, which would fill a saved notebook with a line per finished run."""

    def __init__(self, print_line=print):
        self.print_line = print_line
        self.started = set()

    def __call__(self, line):
        match = _RUN_LINE.match(line)
        if match is None:
            self.print_line(line)
            return
        label, outcome = match.groups()
        if outcome.startswith("skipped") and line.startswith("[worker "):
            # A worker skips the runs that the other workers hold: only another grid's
            # hold is news.
            return
        if outcome == "starting":
            self.started.add(label)
            self.print_line(line)
        elif label in self.started:  # the end of a run trained here, printed once
            self.started.discard(label)
            self.print_line(line)
        elif outcome.startswith(("failed", "skipped", "not trained")):
            self.print_line(line)


def run_experiment(settings, experiment, data=None):
    """Trains the runs of an experiment that are not finished yet; reads back the rest.

    Finished runs come from disk without loading any image (utils.training.run). When
    some run must be trained and `data` is not given, the data is looked for and, if
    there is no local copy, downloaded. When the data is not available, the runs that
    need it are left missing (the engine says so, and this says once how to get the
    data); the tables and figures then label them "missing".

    Args:
        settings: from `read_settings`.
        experiment: an experiment of utils.experiments.NAMES, "study" (the paper's two) or
            "beyond_the_paper".
        data: a `DataStatus` from `find_data`, or None to look for the data only if needed.

    Returns:
        A DataFrame with one row per run (utils.grid.summary_table).

    Raises:
        ValueError: when the results folder holds runs of other settings.
        RuntimeError: when a run failed.
    """
    configs = profile_configs(settings, experiment)
    to_train = [
        plan
        for plan in grid_module.plan_runs(configs, settings.results_dir)
        if plan.action == "train"
    ]
    if data is None:
        data = find_data(settings, download=bool(to_train))
    print(
        f"{len(configs)} runs; {len(configs) - len(to_train)} finished or reusable in "
        f"{display_path(settings.results_dir)}, {len(to_train)} to train"
        + ("." if settings.train else " (GN_TRAIN=0: none is trained here).")
    )
    print_line = TrainingLines()
    if data.available and settings.train:
        if to_train:
            print(hardware())
        grid = workers.run_in_workers(
            configs,
            settings.results_dir,
            workers=settings.workers or workers.default_workers(),
            data_dir=data.data_dir,
            verbose=settings.verbose,
            print_line=print_line,
        )
    else:
        reason = "GN_TRAIN=0" if not settings.train else "the data is not available"
        grid = grid_module.run_grid(
            configs,
            settings.results_dir,
            skip_training=reason,
            verbose=settings.verbose,
            print_line=print_line,
        )
        if settings.train and any(item.outcome == "not trained" for item in grid):
            print(f"\n{data.message}")
    outcomes = collections.Counter(item.outcome for item in grid)
    if outcomes:  # nothing to say of an empty grid beyond its "0 runs"
        print(", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())) + ".")
    failed = [
        f"{item.config.experiment}/{item.config.run_name}: {type(item.error).__name__}: {item.error}"
        for item in grid
        if item.outcome == "failed"
    ]
    if failed:
        raise RuntimeError("Some runs failed:\n" + "\n".join(failed))
    return grid_module.summary_table(grid)


def regenerate(settings):
    """Draws every experiment's figures from the results folder and rewrites the report
    (`<results>/README.md`); with the study's settings also the README's headline block.
    Prints what it wrote."""
    from utils import figures
    from utils import report

    drawn = figures.draw_figures(settings.results_dir, settings.figures_dir)
    study = settings.results_dir.resolve() == paths.default_results_dir(paths.STUDY_PROFILE)
    figures_link = os.path.relpath(settings.figures_dir, settings.results_dir)
    report.write_report(
        settings.results_dir, REPOSITORY_ROOT / "README.md" if study else None, figures_link
    )
    print(
        f"{len(drawn)} figures in {display_path(settings.figures_dir)}: "
        + ", ".join(path.stem for path in drawn)
    )
    print(
        f"The report: {display_path(settings.results_dir / report.REPORT)}"
        + (" and the README's headline." if study else ".")
    )


def show_table(frame, *, decimals=1, markdown=True):
    """Shows a results table once: as markdown with its caption, which notebooks (and
    GitHub's view of them) render as a table; or, for long listings, as pandas' table.

    Args:
        frame: a DataFrame from utils.results (table1, table2, report_table, ...).
        decimals: digits after the point.
        markdown: the markdown table with its caption; False for long listings (pandas'
            table, scrolled, without a caption).
    """
    from IPython.display import Markdown, display

    if markdown:
        display(Markdown(results.to_markdown(frame, decimals=decimals)))
    else:
        # The cells' text, not the numbers: pandas would round them its own way (half to even).
        display(results.formatted(frame, decimals=decimals))
