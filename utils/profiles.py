"""The profiles: the scale at which every experiment's grid is trained.

"smoke" (synthetic data, about a minute on a CPU), "cpu" (a subset of the real Tiny
ImageNet for two CPU cores: hours per experiment, trained in the background; the README
gives the measured time of each) and "paper" (the full data set at the 2023 report's
scale, for a GPU). `profile_configs` turns an experiment (utils.experiments) into the
profile's `RunConfig`s.
"""

import dataclasses
import re

from utils import experiments
from utils.config import MAX_SEED
from utils.config import PROFILE_SEEDS
from utils.config import PROFILES
from utils.config import RunConfig
from utils.experiments import recipe_sweep
from utils.norms import GROUPED

__all__ = [
    "PROFILES",
    "CPU_STUDY_RECIPE",
    "profile_settings",
    "profile_configs",
    "fastest_settings",
    "parse_seeds",
]

# The cpu study's recipe, chosen from results/recipe_sweep by utils.recipe's rule (written
# down before the sweep finished): one base rate for every normalization, excluding rates
# at which any normalization collapses, then the lowest mean validation error over the
# four. A test checks that this is still what the committed sweep gives.
CPU_STUDY_RECIPE = dict(base_learning_rate=0.003, lr_decay_fractions=recipe_sweep.DECAY_FRACTIONS)

# Per-profile settings shared by every run of the profile; `epochs` is the default length
# of its runs (an experiment may set its own: utils.experiments.Experiment.epochs).
# Every image of a class the official data set has.
_TINY_IMAGENET = dict(dataset="tiny-imagenet-200", images_per_class=500, val_images_per_class=50)

_PROFILE_SETTINGS = {
    # Synthetic images, a handful per class, one seed: the 20 trainings take about a
    # minute or two on a CPU. XLA is off because compiling takes longer than these tiny
    # trainings.
    "smoke": dict(
        seeds=PROFILE_SEEDS["smoke"],
        dataset="synthetic-tiny-imagenet",
        classes=4,
        images_per_class=16,
        val_images_per_class=4,
        jit_compile=False,
        epochs=2,
    ),
    # 40 classes x 500 images (20,000 training and 2,000 validation images), 10 epochs,
    # three seeds, each run at its fastest settings (`fastest_settings`), with the recipe
    # the recipe sweep chose (`CPU_STUDY_RECIPE`).
    "cpu": dict(
        seeds=PROFILE_SEEDS["cpu"],
        **CPU_STUDY_RECIPE,
        **_TINY_IMAGENET,
        classes=40,
        jit_compile="fastest",
        epochs=10,
    ),
    # The 2023 report's scale: all of Tiny ImageNet, 10 epochs (100 for the comparisons
    # at batch 32, which their experiments declare).
    "paper": dict(
        seeds=PROFILE_SEEDS["paper"],
        **_TINY_IMAGENET,
        classes=200,
        jit_compile=True,
        epochs=10,
    ),
}


def fastest_settings(norm, batch_size, model="small_cnn"):
    """The XLA and steps-per-execution settings measured fastest on CPU.

    Measured with `python -m benchmarks.training_benchmark` (the small CNN) and
    `python -m benchmarks.model_benchmark` (ResNet-10) on two CPU cores (numbers in
    benchmarks/README.md). The small CNN at batch 16 and above trains fastest without
    XLA: TensorFlow's oneDNN convolutions beat XLA's, and the normalizations' own ops are
    as fast either way; at smaller batches the per-op overhead dominates and XLA wins for
    every normalization. ResNet-10's convolutions dominate at every batch size: without
    XLA it is 1.5x to 2.4x faster at batch 8 and 32 and as fast at batch 2. Running 8
    steps per call into the compiled function removes most of the per-step Python
    overhead at every batch size, and the steps per epoch stay floor(images / batch).

    Args:
        norm: canonical normalization name (the measured choice is the same for all).
        batch_size: images per device per step.
        model: the RunConfig model.

    Returns:
        dict(jit_compile=..., steps_per_execution=...).
    """
    del norm
    jit_compile = model == "small_cnn" and batch_size < 16
    return dict(jit_compile=jit_compile, steps_per_execution=8)


def profile_settings(profile):
    """The settings a profile gives every run (a copy), with "epochs" per experiment.

    Raises:
        ValueError: for an unknown profile; the message lists the valid ones.
    """
    if profile not in _PROFILE_SETTINGS:
        raise ValueError(f"Unknown profile {profile!r}; valid profiles are {PROFILES}.")
    settings = dict(_PROFILE_SETTINGS[profile])
    settings["epochs"] = {
        name: experiment.epochs.get(profile, settings["epochs"])
        for name, experiment in experiments.REGISTRY.items()
    }
    return settings


def _is_seed(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED


def profile_configs(profile, experiment="study", *, seeds=None, results_dir=None, **overrides):
    """The grid of run configs of a profile.

    Args:
        profile: "smoke", "cpu" or "paper".
        experiment: an experiment's name (utils.experiments.NAMES) or a group's
            (utils.experiments.GROUPS: "study" is the comparison then the batch-size
            sweep, whose batch-32 runs reuse the comparison's results; "all" is every
            experiment).
        seeds: the seeds to train (default: the profile's, e.g. 0, 1 and 2 for "cpu");
            an experiment with seeds of its own (the recipe sweep: 0) keeps those of
            them that are among these.
        results_dir: the results folder, for the runs that an experiment's rule adds
            once earlier runs are finished (utils.experiments.Experiment.more_runs);
            None leaves them out.
        **overrides: RunConfig fields set on every run, e.g. `epochs=3`.

    Returns:
        A list of `RunConfig`, in training order: all runs of the first seed, then of
        the next, so that a stopped grid has whole seeds done.

    Raises:
        ValueError: for an unknown profile, experiment or field.
    """
    settings = profile_settings(profile)
    chosen = experiments.resolve(experiment)
    known = {field.name for field in dataclasses.fields(RunConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"Unknown config fields {unknown}; valid fields are {sorted(known)}.")
    epochs = settings.pop("epochs")
    profile_seeds = settings.pop("seeds")
    seeds = tuple(profile_seeds if seeds is None else seeds)
    if not seeds or not all(_is_seed(seed) for seed in seeds) or len(set(seeds)) < len(seeds):
        raise ValueError(
            f"seeds={seeds!r} must be distinct integers from 0 to {MAX_SEED}, e.g. (0, 1, 2)."
        )
    fields_by_experiment = {
        member.name: member.run_fields(results_dir, profile_seeds) for member in chosen
    }
    grid = [
        (seed, member.name, run_fields)
        for seed in seeds
        for member in chosen
        if seed in (member.seeds if member.seeds is not None else seeds)
        for run_fields in fields_by_experiment[member.name]
    ]
    configs = []
    for seed, name, run_fields in grid:
        norm, batch_size = run_fields["norm"], run_fields["batch_size"]
        fields = dict(
            settings, experiment=name, profile=profile, epochs=epochs[name], seed=seed, **run_fields
        )
        if fields.get("jit_compile") == "fastest":
            fields.update(fastest_settings(norm, batch_size, fields.get("model", "small_cnn")))
        fields.update(overrides)
        # Options of one normalization apply to that normalization's runs only.
        if norm not in GROUPED:
            fields.pop("groups", None)
        if norm != "group":
            fields.pop("channels_per_group", None)
        if norm != "batch":
            fields.pop("sync_batch_norm", None)
        configs.append(RunConfig(**fields))
    names = [f"{config.experiment}/{config.run_name}" for config in configs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"The overrides {overrides} make runs of the grid identical ({', '.join(repeated)}); "
            "override only fields the grid does not vary, or pick runs with --only."
        )
    return configs


def parse_seeds(text):
    """Seeds from "0,1,2" (None for None or an empty text).

    Raises:
        ValueError: for anything but distinct comma-separated integers >= 0 written in
            the digits 0-9 (int() alone would take "-1", or other scripts' digits).
    """
    if not text or not text.strip():
        return None
    parts = [part.strip() for part in text.split(",")]
    if (
        not all(re.fullmatch(r"[0-9]+", part) for part in parts)
        or len(set(map(int, parts))) < len(parts)
        or max(map(int, parts)) > MAX_SEED
    ):
        raise ValueError(
            f"--seeds {text!r} must be comma-separated integers from 0 to {MAX_SEED} in the digits "
            "0-9, each at most once, e.g. 0,1,2."
        )
    return tuple(int(part) for part in parts)
