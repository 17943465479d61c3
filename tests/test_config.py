"""RunConfig validation, names, JSON round trip, learning-rate schedule and profiles."""

import dataclasses
import json

import pytest

from utils import experiments
from utils.config import RunConfig
from utils.experiments import depth
from utils.experiments import why_gn_trails
from utils.config import learning_rate_boundaries
from utils.config import learning_rate_for_epoch
from utils.profiles import profile_configs
from utils.profiles import profile_settings


def test_defaults_are_the_papers_recipe():
    config = RunConfig(model="resnet50")
    assert (config.momentum, config.base_learning_rate, config.weight_decay) == (0.9, 0.1, 1e-4)
    assert config.lr_decay_fractions == (0.3, 0.6, 0.9) and config.lr_decay_factor == 0.1
    assert config.norm == "group" and config.groups == 32
    assert config.batch_size == 32 and config.learning_rate == pytest.approx(0.1)


def test_small_cnn_default_learning_rate_is_lower_and_overridable():
    assert RunConfig().base_learning_rate == 0.003
    assert RunConfig(base_learning_rate=0.1).learning_rate == pytest.approx(0.1)
    assert RunConfig(batch_size=2).learning_rate == pytest.approx(0.003 * 2 / 32)


@pytest.mark.parametrize(
    "fields, expected",
    [
        (dict(norm="gn", groups=32, batch_size=4), "gn_g32_bs4_seed0"),
        (dict(norm="group", groups=8, batch_size=2, seed=3), "gn_g8_bs2_seed3"),
        (dict(norm="bn", batch_size=32), "bn_bs32_seed0"),
        (dict(norm="layer"), "ln_bs32_seed0"),
        (dict(norm="instance"), "in_bs32_seed0"),
        (dict(norm="none", batch_size=16), "none_bs16_seed0"),
        # Any other recipe names both its base rate and its decay epochs.
        (dict(norm="bn", base_learning_rate=0.01), "bn_bs32_lr0.01_decay30-60-90_seed0"),
        (dict(norm="gn", lr_decay_fractions=(0.5, 0.75)), "gn_g32_bs32_lr0.003_decay50-75_seed0"),
        (dict(model="resnet50", norm="bn", base_learning_rate=0.1), "bn_bs32_seed0"),
        (dict(norm="gn", channels_per_group=16), "gn_cpg16_bs32_seed0"),
        (dict(norm="gn", weight_standardization=True, batch_size=2), "gn_g32_ws_bs2_seed0"),
        (dict(norm="bn", weight_standardization=True), "bn_ws_bs32_seed0"),
        (dict(norm="brn", batch_size=4), "brn_bs4_seed0"),
        (dict(norm="gn_plus_gn_first", batch_size=8), "gnbn_gn_first_g32_bs8_seed0"),
        (dict(norm="gn", weight_decay=0.0), "gn_g32_bs32_wd0_seed0"),
        (
            dict(norm="bn", norm_noise_mean=1e-3, norm_noise_stddev=1.001),
            "bn_bs32_noise0.001-1.001_seed0",
        ),
        (
            dict(norm="bn", norm_noise_stddev=1.0, norm_noise_groups=None),
            "bn_bs32_noise0-1-elementwise_seed0",
        ),
        (
            dict(norm="gn", norm_noise_stddev=1.0, norm_noise_groups=8),
            "gn_g32_bs32_noise0-1-g8_seed0",
        ),
        (dict(norm="none", batch_size=2, landscape_probes=20), "none_bs2_probes20_seed0"),
    ],
)
def test_run_name(fields, expected):
    assert RunConfig(**fields).run_name == expected


def test_aliases_are_stored_as_full_names():
    assert RunConfig(norm="BN").norm == "batch"
    assert RunConfig(norm="gn").groups == 32


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().batch_size = 2


def test_json_round_trip():
    config = RunConfig(
        norm="batch", batch_size=8, epochs=7, lr_decay_fractions=(0.5,), precision="mixed_bfloat16"
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert data["run_name"] == "bn_bs8_lr0.003_decay50_seed0"
    assert data["lr_decay_fractions"] == [0.5]
    assert RunConfig.from_dict(data) == config


def test_from_dict_rejects_unknown_keys_and_wrong_run_name():
    data = RunConfig().to_dict()
    with pytest.raises(ValueError, match="colour"):
        RunConfig.from_dict({**data, "colour": "red"})
    with pytest.raises(ValueError, match="bn_bs32_seed0"):
        RunConfig.from_dict({**data, "run_name": "bn_bs32_seed0"})


# One test per invalid value: each must be rejected when the config is created, with a
# message naming the bad value.
@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(batch_size=0), "batch_size=0"),
        (dict(batch_size=2.5), "batch_size=2.5"),
        (dict(epochs=0), "epochs=0"),
        (dict(norm="weight"), "'weight'"),
        (dict(norm="group", groups=3), "groups=3"),
        (dict(norm="group", groups=128), "groups=128"),
        (dict(norm="group", groups=0), "groups=0"),
        (dict(norm="batch", groups=32), "groups=32"),
        (dict(norm="layer", sync_batch_norm=True), "sync_batch_norm=True"),
        (dict(norm="batch_renorm", sync_batch_norm=True), "sync_batch_norm=True"),
        (dict(norm="group", groups=8, channels_per_group=8), "groups=8 and channels_per_group=8"),
        (dict(norm="group", channels_per_group=3), "channels_per_group=3"),
        (dict(norm="group", channels_per_group=128), "channels_per_group=128"),
        (dict(norm="layer", channels_per_group=4), "channels_per_group=4"),
        (dict(weight_standardization="yes"), "weight_standardization='yes'"),
        (
            dict(norm="gn_plus_parallel", channels_per_group=8),
            "channels_per_group=8 applies only to norm='group'",
        ),
        (dict(norm="gn_plus_bn_first", groups=3), "groups=3"),
        (dict(norm_noise_stddev=-1.0), "norm_noise_stddev=-1.0"),
        (dict(norm_noise_mean=float("inf")), "norm_noise_mean=inf"),
        (dict(norm="none", norm_noise_stddev=1.0), "needs a normalization"),
        (dict(model="resnet50", norm_noise_stddev=1.0), "model='resnet50'"),
        (
            dict(norm_noise_stddev=1.0, norm_noise_groups=3),
            "norm_noise_groups=3 must be None or divide the small_cnn's normalized channels (64, 256); valid values are [1, 2, 4",
        ),
        (dict(norm_noise_groups=0), "norm_noise_groups=0"),
        (dict(landscape_probes=-1), "landscape_probes=-1"),
        (dict(landscape_probes=2.5), "landscape_probes=2.5"),
        (
            dict(landscape_probes=20, precision="mixed_bfloat16"),
            "needs precision='float32', not 'mixed_bfloat16'",
        ),
        (dict(base_learning_rate=-0.1), "base_learning_rate=-0.1"),
        (dict(base_learning_rate=0), "base_learning_rate=0"),
        (dict(base_learning_rate=float("nan")), "base_learning_rate=nan"),
        (dict(weight_decay=-1e-4), "weight_decay=-0.0001"),
        (dict(momentum=1.0), "momentum=1.0"),
        (dict(lr_decay_fractions=(0.6, 0.3)), "lr_decay_fractions=(0.6, 0.3)"),
        (dict(lr_decay_fractions=(0.3, 0.3)), "lr_decay_fractions=(0.3, 0.3)"),
        (dict(lr_decay_fractions=(0.0, 0.5)), "lr_decay_fractions=(0.0, 0.5)"),
        (dict(lr_decay_fractions=(0.5, 1.0)), "lr_decay_fractions=(0.5, 1.0)"),
        (dict(lr_decay_fractions="0.3"), "lr_decay_fractions='0.3'"),
        (dict(lr_decay_factor=0), "lr_decay_factor=0"),
        (dict(precision="float16"), "'float16'"),
        (dict(model="vgg16"), "'vgg16'"),
        (dict(dataset="imagenet"), "'imagenet'"),
        (dict(classes=201), "classes=201"),
        (dict(images_per_class=0), "images_per_class=0"),
        (dict(images_per_class=501), "images_per_class=501"),
        (dict(val_images_per_class=10), "val_images_per_class=10"),
        (dict(steps_per_execution=0), "steps_per_execution=0"),
        (dict(second_kernel_size=0), "second_kernel_size=0"),
        (dict(seed=-1), "seed=-1"),
        (dict(jit_compile="yes"), "jit_compile='yes'"),
        (dict(distribution="tpu"), "'tpu'"),
        (dict(distribution="multi_worker"), "keras-team/keras#20585"),
        (dict(experiment="a/b"), "experiment='a/b'"),
        (dict(profile="huge"), "'huge'"),
    ],
)
def test_invalid_values_raise_naming_the_value(fields, message):
    with pytest.raises(ValueError) as error:
        RunConfig(**fields)
    assert message in str(error.value)


def test_groups_must_divide_resnet_widths_too():
    assert RunConfig(model="resnet50", groups=64).groups == 64
    with pytest.raises(ValueError, match="groups=12"):
        RunConfig(model="resnet50", groups=12)


def test_synthetic_data_may_use_fewer_validation_images():
    assert (
        RunConfig(dataset="synthetic-tiny-imagenet", val_images_per_class=4).val_images_per_class
        == 4
    )


def test_learning_rate_schedule_is_the_papers():
    config = RunConfig(model="resnet50", epochs=100, batch_size=32)
    assert learning_rate_boundaries(config) == [30, 60, 90]
    rates = [learning_rate_for_epoch(config, epoch) for epoch in range(100)]
    assert rates[0] == rates[29] == pytest.approx(0.1)
    assert rates[30] == rates[59] == pytest.approx(0.01)
    assert rates[60] == pytest.approx(0.001) and rates[90] == rates[99] == pytest.approx(0.0001)


def test_learning_rate_scales_linearly_with_batch_size():
    for batch_size in (32, 16, 8, 4, 2):
        config = RunConfig(model="resnet50", batch_size=batch_size, epochs=10)
        assert learning_rate_for_epoch(config, 0) == pytest.approx(0.1 * batch_size / 32)
        assert learning_rate_boundaries(config) == [3, 6, 9]
        assert learning_rate_for_epoch(config, 9) == pytest.approx(0.1 * batch_size / 32 / 1000)


def test_boundaries_round_half_up():
    assert learning_rate_boundaries(RunConfig(epochs=5)) == [2, 3, 5]
    assert learning_rate_boundaries(RunConfig(epochs=8)) == [2, 5, 7]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_profiles_hold_both_experiments_for_every_seed(profile):
    configs = profile_configs(profile)
    seeds = (0, 1, 2) if profile == "cpu" else (0,)
    norms = ("batch", "layer", "instance", "group")
    # All runs of one seed, then the next: a stopped grid has whole seeds done.
    assert [(c.seed, c.experiment, c.norm, c.batch_size) for c in configs] == [
        (seed, experiment, norm, batch)
        for seed in seeds
        for experiment, batches in (
            ("norm_comparison", (32,)),
            ("batch_size_sweep", (32, 16, 8, 4, 2)),
        )
        for norm in norms
        for batch in batches
    ]
    assert all(c.profile == profile and c.groups in (None, 32) for c in configs)
    distinct = {json.dumps(c.training_settings(), sort_keys=True) for c in configs}
    # The sweep's batch-32 runs are the comparison's, except in the paper profile, whose
    # comparison trains for longer.
    assert len(distinct) == len(seeds) * (24 if profile == "paper" else 20)


def test_seeds_can_be_chosen_and_the_recipe_sweep_keeps_seed_0():
    assert {c.seed for c in profile_configs("cpu", seeds=(1,))} == {1}
    assert {c.seed for c in profile_configs("cpu", "recipe_sweep")} == {0}
    assert profile_configs("cpu", "recipe_sweep", seeds=(1, 2)) == []
    with pytest.raises(ValueError, match="seeds"):
        profile_configs("cpu", seeds=(0, 0))


def test_profile_scales():
    smoke, cpu, paper = (profile_settings(name) for name in ("smoke", "cpu", "paper"))
    assert smoke["dataset"] == "synthetic-tiny-imagenet"
    assert cpu["dataset"] == paper["dataset"] == "tiny-imagenet-200"
    assert (paper["classes"], paper["images_per_class"]) == (200, 500)
    # The 2023 report's lengths: 100 epochs for its batch-32 comparisons, 10 for the sweeps.
    lengths = {
        "norm_comparison": 100,
        "group_ablation": 100,
        "long_training": 30,
        "depth_sweep": depth.EPOCHS,
        "depth_grid": depth.EPOCHS,
        **{experiment.name: why_gn_trails.plan.EPOCHS for experiment in why_gn_trails.EXPERIMENTS},
    }
    assert paper["epochs"] == {name: lengths.get(name, 10) for name in experiments.NAMES}
    assert cpu["classes"] * cpu["images_per_class"] < 200 * 500


def test_profile_overrides_and_errors():
    configs = profile_configs("smoke", "batch_size_sweep", seed=2, groups=16, epochs=3)
    assert {c.run_name for c in configs} >= {"bn_bs2_seed2", "gn_g16_bs2_seed2"}
    assert all(c.epochs == 3 for c in configs)
    with pytest.raises(ValueError, match="'tiny'"):
        profile_configs("tiny")
    with pytest.raises(ValueError, match="'sweep'"):
        profile_configs("smoke", "sweep")
    with pytest.raises(ValueError, match="colour"):
        profile_configs("smoke", colour="red")


def test_cpu_profile_runs_each_norm_at_its_measured_fastest_settings():
    from utils.profiles import fastest_settings

    configs = {(c.experiment, c.norm, c.batch_size, c.seed): c for c in profile_configs("cpu")}
    batch_norm_32 = configs[("norm_comparison", "batch", 32, 0)]
    assert not batch_norm_32.jit_compile and batch_norm_32.steps_per_execution == 8
    assert configs[("batch_size_sweep", "batch", 2, 0)].jit_compile
    assert not configs[("norm_comparison", "group", 32, 1)].jit_compile
    assert configs[("batch_size_sweep", "group", 8, 2)].jit_compile
    assert all(c.second_kernel_size == 1 for c in configs.values())
    for config in configs.values():
        expected = fastest_settings(config.norm, config.batch_size, config.model)
        assert (config.jit_compile, config.steps_per_execution) == tuple(expected.values())
    # An explicit override wins over the measured defaults.
    assert not any(c.jit_compile for c in profile_configs("cpu", jit_compile=False))


def test_recipe_sweep_covers_every_norm_and_rate_with_distinct_names():
    configs = profile_configs("cpu", "recipe_sweep")
    assert {
        (c.norm, c.base_learning_rate) for c in configs if c.lr_decay_fractions == (0.5, 0.75)
    } == {
        (norm, rate)
        for norm in ("batch", "layer", "instance", "group")
        for rate in (0.001, 0.003, 0.01, 0.03)
    }
    assert {c.lr_decay_fractions for c in configs} == {(0.5, 0.75), (0.3, 0.6, 0.9)}
    # The paper's schedule only at the first study's rate, for comparison.
    assert {c.base_learning_rate for c in configs if c.lr_decay_fractions == (0.3, 0.6, 0.9)} == {
        0.003
    }
    assert {c.batch_size for c in configs} == {32}
    assert len({c.run_name for c in configs}) == len(configs) == 20
    # "study" is the paper's two experiments: the recipe sweep is trained only when asked for.
    assert {c.experiment for c in profile_configs("cpu", "study")} == {
        "norm_comparison",
        "batch_size_sweep",
    }
    # "all" is every experiment of the registry.
    assert [c.experiment for c in profile_configs("smoke", "all")] == [
        c.experiment for name in experiments.NAMES for c in profile_configs("smoke", name)
    ]


def test_channels_per_group_runs_build_their_own_groups():
    config = RunConfig(norm="group", channels_per_group=16)
    assert config.groups is None
    assert config.norm_options() == {"channels_per_group": 16}
    assert RunConfig(norm="group").norm_options() == {"groups": 32}
    assert RunConfig.from_dict(config.to_dict()) == config


def test_configs_written_before_the_new_fields_still_read():
    data = RunConfig(norm="group", batch_size=8).to_dict()
    for field in ("channels_per_group", "weight_standardization"):
        del data[field]
    assert RunConfig.from_dict(data) == RunConfig(norm="group", batch_size=8)


def test_beyond_the_paper_shares_the_study_runs_it_repeats():
    configs = profile_configs("cpu", "beyond_the_paper")
    assert {c.experiment for c in configs} == {
        "group_ablation",
        "batch_renorm",
        "weight_standardization",
    }
    assert len({(c.experiment, c.run_name) for c in configs}) == len(configs) == 3 * (14 + 12 + 12)
    study = {repr(c.training_settings()) for c in profile_configs("cpu", "study")}
    new = {repr(c.training_settings()) for c in configs} - study
    # Trained anew: G in 64..2 but 32 (5) and C/G in 64..2 (6), BRN at 4 batch sizes,
    # GN+WS and BN+WS at 3: 21 per seed; every other cell is a study run.
    assert len(new) == 3 * 21
    ablation = [c for c in configs if c.experiment == "group_ablation" and c.seed == 0]
    assert [c.run_name.split("_bs")[0] for c in ablation] == [
        "gn_g64",
        "gn_g32",
        "gn_g16",
        "gn_g8",
        "gn_g4",
        "gn_g2",
        "ln",
        "gn_cpg64",
        "gn_cpg32",
        "gn_cpg16",
        "gn_cpg8",
        "gn_cpg4",
        "gn_cpg2",
        "in",
    ]
    assert all(c.batch_size == 32 for c in ablation)
    renorm = {(c.norm, c.batch_size) for c in configs if c.experiment == "batch_renorm"}
    assert renorm == {
        (norm, batch) for norm in ("batch_renorm", "batch", "group") for batch in (32, 8, 4, 2)
    }
    standardized = {
        (c.norm, c.weight_standardization, c.batch_size)
        for c in configs
        if c.experiment == "weight_standardization"
    }
    assert len(standardized) == 12
    with pytest.raises(ValueError, match="beyond_the_paper"):
        profile_configs("cpu", "beyond")


def test_understanding_gn_trains_19_runs_a_seed_and_shares_the_rest():
    configs = profile_configs("cpu", "understanding_gn")
    assert {c.experiment for c in configs} == {"landscape", "distortion", "mixtures"}
    study = {repr(c.training_settings()) for c in profile_configs("cpu", "study")}
    new = {repr(c.training_settings()) for c in configs} - study
    assert len(new) == 3 * 19
    probed = [c for c in configs if c.experiment == "landscape"]
    assert {(c.norm, c.batch_size) for c in probed} == {
        (n, b) for n in ("batch", "group", "none") for b in (32, 2)
    }
    assert all(c.landscape_probes == 20 for c in probed)
    distortion = {
        (c.norm, c.weight_decay, c.norm_noise_stddev)
        for c in configs
        if c.experiment == "distortion"
    }
    assert distortion == {
        (n, wd, sd)
        for n in ("batch", "group")
        for wd, sd in ((1e-4, 0.0), (1e-4, 1.001), (0.0, 0.0))
    }
    assert {c.norm for c in configs if c.experiment == "mixtures"} == {
        "batch",
        "group",
        "gn_plus_parallel",
        "gn_plus_gn_first",
        "gn_plus_bn_first",
    }
    assert all(c.groups == 32 for c in configs if c.norm.startswith("gn_plus_"))


def test_resnet10_takes_groups_that_divide_its_widths():
    assert RunConfig(model="resnet10", groups=64).groups == 64
    with pytest.raises(
        ValueError,
        match=r"groups=128 must divide the resnet10's normalized channels \(64, 128, 256\)",
    ):
        RunConfig(model="resnet10", groups=128)
