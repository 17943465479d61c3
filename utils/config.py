"""One frozen dataclass per training run, and the profiles (grids of runs).

A `RunConfig` holds every setting that changes what a training run computes, so a run
is identified by its config alone: `results/<experiment>/<run_name>/config.json`.
Invalid values raise `ValueError` when the config is created, before any work starts.

The default recipe is the paper's (Wu & He 2018, Section 5), for every normalization:

- SGD with momentum 0.9;
- learning rate `base_learning_rate * batch_size / 32` (the paper's linear scaling
  rule; `batch_size` is the number of images per device, as the paper's "batch size" is
  images per GPU), with the paper's `base_learning_rate = 0.1` for ResNet-50 and 0.003
  for the small CNN (see `DEFAULT_BASE_LEARNING_RATES` for why);
- the learning rate is divided by 10 at 30%, 60% and 90% of the epochs (the paper's
  epochs 30, 60 and 90 of 100);
- weight decay 1e-4 on every weight, gamma and beta included (coupled L2, added to
  the gradient as `weight_decay * w`, as in the paper);
- 32 groups for group normalization.

On several devices (tf.distribute) `batch_size` stays the images per device, so the
global batch is `batch_size * replicas`, and the learning rate stays
`base_learning_rate * batch_size / 32`: the paper's rule is stated per GPU (all its runs
used 8 GPUs), and keeping it per device keeps the batch-size sweep's meaning (the
normalization statistics see `batch_size` images) whatever the number of devices. Batch
norm statistics stay per device, as in the paper, unless `sync_batch_norm=True`.

Profiles (`profile_configs`) give the grids of the two experiments at three scales:
"smoke" (synthetic data, about a minute on a CPU), "cpu" (a subset of the real Tiny
ImageNet for two CPU cores: hours per experiment, trained in the background; the README
gives the measured time of each) and "paper" (the full data set at the 2023 report's
scale, for a GPU).
"""

import dataclasses
import math
import re

from utils.norms import GROUPED
from utils.norms import SHORT_NAMES
from utils.norms import canonical_norm

__all__ = [
    "RunConfig",
    "MODELS",
    "DATASETS",
    "PRECISIONS",
    "DISTRIBUTIONS",
    "PAPER_DECAY_FRACTIONS",
    "PROFILES",
    "PROFILE_SEEDS",
    "AUGMENTATIONS",
    "MODEL_CHANNELS",
    "REFERENCE_BATCH_SIZE",
    "DEFAULT_BASE_LEARNING_RATES",
    "learning_rate_for_epoch",
    "learning_rate_boundaries",
]

MODELS = ("small_cnn", "resnet10", "resnet50")
DATASETS = ("tiny-imagenet-200", "synthetic-tiny-imagenet")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# "auto": all local GPUs when there are two or more, else the one default device.
# Several machines (MultiWorkerMirroredStrategy) are not offered: Keras 3's fit fails
# under that strategy (keras-team/keras#20585, tensorflow/tensorflow#72388); a grid is
# split over machines with `python -m utils.experiments --only` instead.
DISTRIBUTIONS = ("auto", "none", "mirrored")
PROFILES = ("smoke", "cpu", "paper")
# The seeds each profile trains (utils.profiles), here so that what plans runs can read them.
PROFILE_SEEDS = {"smoke": (0,), "cpu": (0, 1, 2), "paper": (0,)}
# "flip": a random horizontal flip (the study's); "scale": a random resized crop back to the
# image size, then the flip (the paper's kind of scale augmentation, utils.data).
AUGMENTATIONS = ("flip", "scale")
# The largest seed NumPy and TensorFlow take (an unsigned 32-bit integer).
MAX_SEED = 2**32 - 1
# The paper's learning rate 0.1 is given for 32 images per GPU.
REFERENCE_BATCH_SIZE = 32

# Learning rate at 32 images per device, by model. ResNet-50: the paper's 0.1. The small
# CNN does not train at 0.1: its global-average-pooled features after GN, LN or IN are
# nearly the same vector for every image, so at 0.1 (and still at 0.025) the first steps
# kill every ReLU unit of its 128-unit dense layer and it predicts the class prior forever
# (train error stuck at chance on 30 Tiny ImageNet classes for GN and LN; BN trains but
# worse than at lower rates). Measured on 30 classes x 200 images, batch 32: after one
# epoch, val accuracy GN 3% / 6% / 9% / 10% at 0.1 / 0.01 / 0.003 / 0.001, BN 9% / 13% /
# 12% / 14%; after three epochs GN and BN train as well at 0.003 as at 0.001. 0.003 is
# the largest of these rates without collapse, which matters for the short schedules.
# ResNet-10 starts from the paper's ResNet rate; the depth experiment trains at the rate
# its own sweep chooses and spells it out in its run names.
DEFAULT_BASE_LEARNING_RATES = {"small_cnn": 0.003, "resnet10": 0.1, "resnet50": 0.1}

# Channels of the normalized layers: groups must divide all of them. ResNet-50's
# widths (64 ... 2048) are all multiples of 64.
MODEL_CHANNELS = {
    "small_cnn": (64, 256),
    "resnet10": (64, 128, 256),
    "resnet50": (64, 128, 256, 512, 1024, 2048),
}

# Tiny ImageNet-200: 200 classes, 500 training and 50 validation images per class.
_TINY_IMAGENET_CLASSES = 200
_TINY_IMAGENET_TRAIN_PER_CLASS = 500
_TINY_IMAGENET_VAL_PER_CLASS = 50

# The paper's decay epochs, 30, 60 and 90 of 100, and its weight decay.
PAPER_DECAY_FRACTIONS = (0.3, 0.6, 0.9)
_DEFAULT_WEIGHT_DECAY = 1e-4
# The 2021 study's code draws its distortion noise per example and per group of 32.
_DEFAULT_NOISE_GROUPS = 32


def _check_divides_channels(name, value, model, *, requirement="must divide"):
    """Refuses a group count (or group size) that does not divide every normalized
    layer's channels of `model`; None passes."""
    channels = MODEL_CHANNELS[model]
    if value is None or (_is_int(value) and value >= 1 and not any(c % value for c in channels)):
        return
    divisors = [g for g in range(1, min(channels) + 1) if all(c % g == 0 for c in channels)]
    raise ValueError(
        f"{name}={value!r} {requirement} the {model}'s normalized channels {channels}; valid values are {divisors}."
    )


_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run.

    Args:
        experiment: experiment (results sub-folder), e.g. "norm_comparison" or
            "batch_size_sweep"; letters, digits, "_", "-" and ".".
        profile: the profile the run belongs to: "smoke", "cpu", "paper" or "custom".
        model: "small_cnn" (the 2023 report's CNN), "resnet10" (a residual network that
            two CPU cores train: utils.models.resnet10) or "resnet50" (the paper's network).
        norm: "batch", "layer", "instance", "group", "batch_renorm", one of the GN+BN
            mixtures "gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first", or
            "none" (short names such as bn, ln, in, gn, brn are accepted and stored as
            the full name).
        groups: number of groups for group normalization and the GN+BN mixtures
            (default 32, the paper's, unless `channels_per_group` is given); must divide
            every normalized layer's channels (64 and 256 for the small CNN). Must be
            None for the other normalizations.
        channels_per_group: group normalization with this many channels in every group
            instead of a fixed number of groups (the paper's Table 3, bottom half), so
            the number of groups differs between layers; must divide every normalized
            layer's channels. Mutually exclusive with `groups`.
        weight_standardization: standardize every convolution kernel (Qiao et al.,
            2019; `utils.layers.WeightStandardizedConv2D`), with any normalization.
        norm_noise_mean, norm_noise_stddev: Gaussian noise of this mean and standard
            deviation added to every normalization's output while training (the
            distortion test of Gunawan et al., 2021); 0 and 0 add none. Small CNN only.
        norm_noise_groups: the noise is drawn once per example and per group of
            consecutive channels, with this many groups, and shared by the group's
            channels and positions (default 32, as in the study's code); None draws one
            value per element. Must divide every normalized layer's channels.
        landscape_probes: how many times per epoch to probe the loss landscape along
            the gradient (utils.landscape; written to landscape.csv); 0 probes never.
            Probing reads the weights and never changes them, so a probed run trains as
            the same run without probes.
        sync_batch_norm: batch normalization statistics over all devices instead of
            per device (the paper keeps them per device). Batch norm only (not
            batch_renorm).
        batch_size: images per device per step (the paper's "images per GPU").
        epochs: number of training epochs.
        base_learning_rate: learning rate for 32 images per device; the run uses
            `base_learning_rate * batch_size / 32` (linear scaling rule). None (the
            default) takes the model's entry of `DEFAULT_BASE_LEARNING_RATES`: 0.1 (the
            paper's) for ResNet-50, 0.003 for the small CNN.
        momentum: SGD momentum.
        weight_decay: coupled L2 weight decay on every weight, gamma and beta included.
        lr_decay_fractions: the learning rate is multiplied by `lr_decay_factor` at
            each `round(fraction * epochs)` epoch; fractions strictly increasing in (0, 1).
        lr_decay_factor: multiplier applied at each decay boundary, in (0, 1].
        seed: random seed (weights, shuffling, augmentation).
        augmentation: what is done to each training image: "flip" (a random horizontal
            flip, the study's) or "scale" (a random resized crop back to 64 px, then the
            flip: the paper's kind of scale augmentation; utils.data.make_dataset).
        dataset: "tiny-imagenet-200" (the real data) or "synthetic-tiny-imagenet" (a
            generated stand-in with the same layout, for tests).
        classes: number of classes used (the first `classes` of the data set).
        images_per_class: training images per class.
        val_images_per_class: validation images per class: always 50 for the real data
            (all of them); the number generated for the synthetic data.
        precision: Keras dtype policy: "float32", "mixed_float16" or "mixed_bfloat16".
        jit_compile: compile the train and test steps with XLA.
        steps_per_execution: training steps run per call into the compiled function
            (fewer Python round trips); the steps per epoch stay floor(images / batch).
        second_kernel_size: kernel size of the small CNN's second conv.
        distribution: "none" (one device), "mirrored" (tf.distribute.MirroredStrategy
            over all local GPUs) or "auto" (mirrored when there are two or more GPUs).
        deterministic: the same config gives the same history. With jit_compile=False
            this turns on TensorFlow's deterministic kernels for the run (slower, most of
            all on GPU); with XLA, Keras would then silently compile without XLA, so
            determinism rests on XLA instead, whose CPU kernels are deterministic (on GPU,
            XLA runs may differ in the last bits).
    """

    experiment: str = "norm_comparison"
    profile: str = "custom"
    model: str = "small_cnn"
    norm: str = "group"
    groups: int | None = None
    channels_per_group: int | None = None
    weight_standardization: bool = False
    norm_noise_mean: float = 0.0
    norm_noise_stddev: float = 0.0
    norm_noise_groups: int | None = _DEFAULT_NOISE_GROUPS
    landscape_probes: int = 0
    sync_batch_norm: bool = False
    batch_size: int = 32
    epochs: int = 100
    base_learning_rate: float | None = None
    momentum: float = 0.9
    weight_decay: float = _DEFAULT_WEIGHT_DECAY
    lr_decay_fractions: tuple = PAPER_DECAY_FRACTIONS
    lr_decay_factor: float = 0.1
    seed: int = 0
    augmentation: str = "flip"
    dataset: str = "tiny-imagenet-200"
    classes: int = 200
    images_per_class: int = 500
    val_images_per_class: int = 50
    precision: str = "float32"
    jit_compile: bool = True
    steps_per_execution: int = 1
    # 1x1, as in the 2023 report's code (utils.models.small_cnn's default).
    second_kernel_size: int = 1
    distribution: str = "auto"
    deterministic: bool = True

    def __post_init__(self):
        # Frozen dataclass: the validators normalize values through object.__setattr__.
        self._check_names()
        self._check_normalization()
        self._check_counts()
        self._check_recipe()
        self._check_data()
        self._check_execution()

    def _set_field(self, name, value):
        object.__setattr__(self, name, value)

    def _check_names(self):
        """The experiment and profile names (they name folders) and the model."""
        for name in ("experiment", "profile"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME_PATTERN.match(value):
                raise ValueError(
                    f"{name}={value!r} is not a valid name: use letters, digits, '_', '-' "
                    "and '.' (it names a results folder)."
                )
        if self.profile not in PROFILES + ("custom",):
            raise ValueError(
                f"Unknown profile {self.profile!r}; valid profiles are {PROFILES + ('custom',)}."
            )
        if self.model not in MODELS:
            raise ValueError(f"Unknown model {self.model!r}; valid models are {MODELS}.")

    def _check_normalization(self):
        """The normalization and its options: groups, WS, output noise, probes, sync BN."""
        self._set_field("norm", canonical_norm(self.norm))

        if self.norm in GROUPED:
            if self.channels_per_group is not None and self.norm != "group":
                raise ValueError(
                    f"channels_per_group={self.channels_per_group!r} applies only to norm='group', not "
                    f"norm={self.norm!r}; give groups instead."
                )
            if self.groups is not None and self.channels_per_group is not None:
                raise ValueError(
                    f"groups={self.groups!r} and channels_per_group={self.channels_per_group!r} "
                    "were both given; give one of them (the other follows from the channels)."
                )
            if self.groups is None and self.channels_per_group is None:
                self._set_field("groups", 32)
            for name in ("groups", "channels_per_group"):
                _check_divides_channels(name, getattr(self, name), self.model)
        else:
            for name in ("groups", "channels_per_group"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name}={getattr(self, name)!r} applies only to group normalization (and "
                        f"groups to the GN+BN mixtures), not norm={self.norm!r}; leave {name} as None."
                    )
        if not isinstance(self.weight_standardization, bool):
            raise ValueError(
                f"weight_standardization={self.weight_standardization!r} must be True or False."
            )
        for name in ("norm_noise_mean", "norm_noise_stddev"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a finite number.")
        if self.norm_noise_stddev < 0:
            raise ValueError(f"norm_noise_stddev={self.norm_noise_stddev!r} must be >= 0.")
        _check_divides_channels(
            "norm_noise_groups",
            self.norm_noise_groups,
            self.model,
            requirement="must be None or divide",
        )
        if self.has_norm_noise and (self.model != "small_cnn" or self.norm == "none"):
            raise ValueError(
                f"norm noise (mean {self.norm_noise_mean!r}, sd {self.norm_noise_stddev!r}) needs a normalization "
                f"to distort and the small CNN; got model={self.model!r}, norm={self.norm!r}."
            )
        if not _is_int(self.landscape_probes) or self.landscape_probes < 0:
            raise ValueError(f"landscape_probes={self.landscape_probes!r} must be an integer >= 0.")
        if self.landscape_probes and self.precision != "float32":
            raise ValueError(
                f"landscape_probes={self.landscape_probes} needs precision='float32', not {self.precision!r}: "
                "the probes' small steps would round away in 16-bit weights."
            )
        if not isinstance(self.sync_batch_norm, bool):
            raise ValueError(f"sync_batch_norm={self.sync_batch_norm!r} must be True or False.")
        if self.sync_batch_norm and self.norm != "batch":
            raise ValueError(
                f"sync_batch_norm=True applies only to batch normalization, not norm={self.norm!r}."
            )

    def _check_counts(self):
        """Batch size, epochs, steps per call, kernel size and seed."""
        for name in ("batch_size", "epochs", "steps_per_execution", "second_kernel_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1.")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(
                f"seed={self.seed!r} must be an integer from 0 to {MAX_SEED} (NumPy's seeds are "
                "32-bit)."
            )

    def _check_recipe(self):
        """The optimizer and schedule: rate (the model's default when None), momentum, decay."""
        if self.base_learning_rate is None:
            self._set_field("base_learning_rate", DEFAULT_BASE_LEARNING_RATES[self.model])
        if not _is_number(self.base_learning_rate) or self.base_learning_rate <= 0:
            raise ValueError(
                f"base_learning_rate={self.base_learning_rate!r} must be a number > 0."
            )
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum={self.momentum!r} must be a number in [0, 1).")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} must be a number >= 0.")
        if not _is_number(self.lr_decay_factor) or not 0 < self.lr_decay_factor <= 1:
            raise ValueError(
                f"lr_decay_factor={self.lr_decay_factor!r} must be a number in (0, 1]."
            )
        fractions = self.lr_decay_fractions
        if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
            raise ValueError(
                f"lr_decay_fractions={fractions!r} must be a sequence of numbers, e.g. (0.3, 0.6, 0.9)."
            )
        fractions = tuple(fractions)
        if not all(_is_number(f) and 0 < f < 1 for f in fractions) or any(
            a >= b for a, b in zip(fractions, fractions[1:])
        ):
            raise ValueError(
                f"lr_decay_fractions={fractions!r} must be strictly increasing numbers in (0, 1), "
                "e.g. (0.3, 0.6, 0.9)."
            )
        self._set_field("lr_decay_fractions", fractions)

    def _check_data(self):
        """The data set, its selection and its augmentation."""
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"Unknown augmentation {self.augmentation!r}; valid values are {AUGMENTATIONS}."
            )
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {self.dataset!r}; valid datasets are {DATASETS}.")
        if not _is_int(self.classes) or not 1 <= self.classes <= _TINY_IMAGENET_CLASSES:
            raise ValueError(
                f"classes={self.classes!r} must be an integer in [1, {_TINY_IMAGENET_CLASSES}]."
            )
        if (
            not _is_int(self.images_per_class)
            or not 1 <= self.images_per_class <= _TINY_IMAGENET_TRAIN_PER_CLASS
        ):
            raise ValueError(
                f"images_per_class={self.images_per_class!r} must be an integer in "
                f"[1, {_TINY_IMAGENET_TRAIN_PER_CLASS}]."
            )
        if (
            not _is_int(self.val_images_per_class)
            or not 1 <= self.val_images_per_class <= _TINY_IMAGENET_VAL_PER_CLASS
        ):
            raise ValueError(
                f"val_images_per_class={self.val_images_per_class!r} must be an integer in "
                f"[1, {_TINY_IMAGENET_VAL_PER_CLASS}]."
            )
        if (
            self.dataset == "tiny-imagenet-200"
            and self.val_images_per_class != _TINY_IMAGENET_VAL_PER_CLASS
        ):
            raise ValueError(
                f"val_images_per_class={self.val_images_per_class!r}: the real Tiny ImageNet is always "
                f"validated on all {_TINY_IMAGENET_VAL_PER_CLASS} images per class; use "
                f"{_TINY_IMAGENET_VAL_PER_CLASS} (smaller values are for the synthetic data set)."
            )

    def _check_execution(self):
        """Precision, XLA, determinism and distribution."""
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"Unknown precision {self.precision!r}; valid precisions are {PRECISIONS}."
            )
        for name in ("jit_compile", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False.")
        if self.distribution == "multi_worker":
            raise ValueError(
                "distribution='multi_worker' is not supported: Keras 3's fit fails under "
                "MultiWorkerMirroredStrategy (keras-team/keras#20585). Use 'mirrored' for "
                "several GPUs of one machine, and split a grid over machines with "
                "`python -m utils.experiments --only`."
            )
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"Unknown distribution {self.distribution!r}; valid values are {DISTRIBUTIONS}."
            )

    @property
    def run_name(self):
        """The run's folder name: "<short norm>[_g<G>|_cpg<C/G>][_ws]_bs<batch>[_lr<base>_decay<%>][_wd<decay>]
        [_noise<mean>-<sd>[-g<groups>|-elementwise]][_probes<n>][_scaleaug]_seed<seed>".

        The base learning rate and the decay epochs (in percent of the epochs) appear when
        either differs from the default recipe (the model's default base rate, decays at
        30, 60 and 90%): runs of the default recipe keep their short names, and every run
        of another recipe spells it out, e.g. "gn_g32_bs32_lr0.003_decay50-75_seed0".
        """
        groups = ""
        if self.norm in GROUPED:
            groups = (
                f"_g{self.groups}" if self.groups is not None else f"_cpg{self.channels_per_group}"
            )
        if self.weight_standardization:
            groups += "_ws"
        recipe = ""
        if (
            self.base_learning_rate != DEFAULT_BASE_LEARNING_RATES[self.model]
            or self.lr_decay_fractions != PAPER_DECAY_FRACTIONS
        ):
            decays = "-".join(f"{100 * fraction:g}" for fraction in self.lr_decay_fractions)
            recipe = f"_lr{self.base_learning_rate:g}_decay{decays}"
        extras = ""
        if self.weight_decay != _DEFAULT_WEIGHT_DECAY:
            extras += f"_wd{self.weight_decay:g}"
        if self.has_norm_noise:
            extras += f"_noise{self.norm_noise_mean:g}-{self.norm_noise_stddev:g}"
            if self.norm_noise_groups is None:
                extras += "-elementwise"
            elif self.norm_noise_groups != _DEFAULT_NOISE_GROUPS:
                extras += f"-g{self.norm_noise_groups}"
        if self.landscape_probes:
            extras += f"_probes{self.landscape_probes}"
        if self.augmentation != "flip":
            extras += f"_{self.augmentation}aug"
        return (
            f"{SHORT_NAMES[self.norm]}{groups}_bs{self.batch_size}{recipe}{extras}_seed{self.seed}"
        )

    @property
    def has_norm_noise(self):
        """Whether noise is added to the normalizations' outputs."""
        return self.norm_noise_mean != 0 or self.norm_noise_stddev != 0

    def norm_noise_options(self):
        """The `utils.distortion.OutputNoise` options of this run's noise."""
        return dict(
            mean=self.norm_noise_mean, stddev=self.norm_noise_stddev, groups=self.norm_noise_groups
        )

    @property
    def learning_rate(self):
        """The initial learning rate: base_learning_rate * batch_size / 32."""
        return self.base_learning_rate * self.batch_size / REFERENCE_BATCH_SIZE

    def norm_options(self):
        """Keyword arguments for the normalization layers (utils.models.make_norm)."""
        if self.norm in GROUPED:
            if self.channels_per_group is not None:
                return {"channels_per_group": self.channels_per_group}
            return {"groups": self.groups}
        if self.norm == "batch" and self.sync_batch_norm:
            return {"synchronized": True}
        return {}

    def training_settings(self):
        """Everything but the experiment name: two runs with equal settings train alike."""
        settings = dataclasses.asdict(self)
        del settings["experiment"]
        return settings

    def to_dict(self):
        """The JSON form written to config.json: every field plus "run_name"."""
        data = dataclasses.asdict(self)
        data["lr_decay_fractions"] = list(self.lr_decay_fractions)
        data["run_name"] = self.run_name
        return data

    @classmethod
    def from_dict(cls, data):
        """The config of a config.json dict (the inverse of `to_dict`).

        Args:
            data: mapping of field names to values; "run_name", if present, must match
                the name the fields give.

        Raises:
            ValueError: for unknown keys, a run_name that does not match, or invalid values.
        """
        data = dict(data)
        run_name = data.pop("run_name", None)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}; valid keys are {sorted(known)}.")
        if "lr_decay_fractions" in data and isinstance(data["lr_decay_fractions"], list):
            data["lr_decay_fractions"] = tuple(data["lr_decay_fractions"])
        config = cls(**data)
        if run_name is not None and run_name != config.run_name:
            raise ValueError(
                f"run_name {run_name!r} does not match the config, which gives {config.run_name!r}."
            )
        return config


def learning_rate_boundaries(config):
    """The 0-based epochs at which the learning rate is multiplied by lr_decay_factor.

    Each boundary is `fraction * epochs` rounded half up (0.3 * 100 -> 30; 0.3 * 5 -> 2).
    """
    return [math.floor(fraction * config.epochs + 0.5) for fraction in config.lr_decay_fractions]


def learning_rate_for_epoch(config, epoch):
    """The learning rate of 0-based `epoch`: a per-epoch step schedule.

    `base_learning_rate * batch_size / 32 * lr_decay_factor ** k`, where k is the number
    of boundaries (see `learning_rate_boundaries`) at or before `epoch`.
    """
    decays = sum(1 for boundary in learning_rate_boundaries(config) if boundary <= epoch)
    return config.learning_rate * config.lr_decay_factor**decays
