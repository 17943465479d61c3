"""The fair comparison's rate sweep: its runs and the rule that picks each method's rate,
on handmade run folders (no training)."""

import math

import pytest

from tests import results_factory as factory
from utils import rates
from utils.experiments.fair_comparison import rate_sweep
from utils.profiles import profile_configs

SEEDS = (0, 1, 2)


def write_method(results_dir, method, finals_by_rate, *, seeds=SEEDS, collapsed_rates=()):
    """Complete runs of one method: val error (%) converging to finals_by_rate[rate]."""
    for rate, final in finals_by_rate.items():
        for seed in seeds:
            config = factory.make_config(
                rate_sweep.RATE_SWEEP, seed=seed, **rate_sweep.run_fields(method, rate)
            )
            curve = factory.curve(final, config.epochs)
            # A collapsed run ends with a training error at chance.
            train = [99.0] * config.epochs if rate in collapsed_rates else None
            factory.write_run(results_dir, config, curve, train_errors=train)


def test_the_grid_is_every_method_at_every_rate_and_seed():
    configs = profile_configs("cpu", rate_sweep.RATE_SWEEP)
    assert len(configs) == len(rate_sweep.METHODS) * len(rate_sweep.LEARNING_RATES) * 3
    assert {c.batch_size for c in configs} == {32}
    assert {c.base_learning_rate for c in configs} == set(rate_sweep.LEARNING_RATES)
    assert {(c.norm, c.weight_standardization) for c in configs} == {
        ("batch", False),
        ("layer", False),
        ("instance", False),
        ("group", False),
        ("batch", True),
        ("group", True),
        ("gn_plus_parallel", False),
        ("gn_plus_bn_first", False),
    }
    assert {c.lr_decay_fractions for c in configs} == {rate_sweep.DECAY_FRACTIONS}


@pytest.mark.parametrize(
    "rate, up, down",
    [(0.001, 0.003, 0.0003), (0.003, 0.01, 0.001), (0.03, 0.1, 0.01), (0.1, 0.3, 0.03)],
)
def test_next_rate_steps_along_the_one_three_grid(rate, up, down):
    assert rates.next_rate(rate, +1) == pytest.approx(up)
    assert rates.next_rate(rate, -1) == pytest.approx(down)


def test_the_best_rate_inside_the_sweep_is_chosen(tmp_path):
    write_method(tmp_path, "GN", {0.001: 70.0, 0.003: 60.0, 0.01: 65.0, 0.03: 80.0})
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["GN"]
    assert row["chosen"] == 0.003 and math.isnan(row["edge"])
    assert row["means"][0.003] < row["means"][0.01]


def test_a_best_rate_on_the_edge_waits_for_the_next_rate(tmp_path):
    write_method(tmp_path, "BN", {0.001: 70.0, 0.003: 66.0, 0.01: 63.0, 0.03: 60.0})
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["BN"]
    assert row["best"] == 0.03 and row["edge"] == pytest.approx(0.1) and math.isnan(row["chosen"])
    extra = rate_sweep.more_runs(tmp_path, SEEDS)
    assert rate_sweep.run_fields("BN", 0.1) in extra
    names = {
        c.run_name for c in profile_configs("cpu", rate_sweep.RATE_SWEEP, results_dir=tmp_path)
    }
    assert {f"bn_bs32_lr0.1_decay50-75_seed{seed}" for seed in SEEDS} <= names
    # Once the next rate is worse, the edge is inside and the choice is made.
    write_method(tmp_path, "BN", {0.1: 64.0})
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["BN"]
    assert row["chosen"] == 0.03 and math.isnan(row["edge"])


def test_an_added_rate_stays_in_the_grid_while_its_runs_train(tmp_path):
    write_method(tmp_path, "BN", {0.001: 70.0, 0.003: 66.0, 0.01: 63.0, 0.03: 60.0})
    # Seed 0 of the added rate is half trained, the others not started.
    config = factory.make_config(rate_sweep.RATE_SWEEP, seed=0, **rate_sweep.run_fields("BN", 0.1))
    factory.write_run(tmp_path, config, factory.curve(58.0, config.epochs)[:4], status="running")
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["BN"]
    assert math.isnan(row["edge"]) and math.isnan(row["chosen"])
    assert rate_sweep.more_runs(tmp_path, SEEDS) == [rate_sweep.run_fields("BN", 0.1)]
    names = {
        c.run_name for c in profile_configs("cpu", rate_sweep.RATE_SWEEP, results_dir=tmp_path)
    }
    assert {f"bn_bs32_lr0.1_decay50-75_seed{seed}" for seed in SEEDS} <= names


def test_a_rate_where_a_seed_collapses_is_excluded_and_bounds_the_sweep(tmp_path):
    # Best at 0.03 but it collapses there: 0.01 is chosen, and no rate above is needed.
    write_method(
        tmp_path, "IN", {0.001: 70.0, 0.003: 66.0, 0.01: 63.0, 0.03: 55.0}, collapsed_rates=(0.03,)
    )
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["IN"]
    assert row["excluded"] == (0.03,) and row["chosen"] == 0.01


def test_nothing_is_chosen_while_a_seed_is_missing(tmp_path):
    write_method(tmp_path, "LN", {0.001: 70.0, 0.003: 60.0, 0.01: 65.0, 0.03: 80.0}, seeds=(0, 1))
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["LN"]
    assert math.isnan(row["chosen"]) and row["means"] == {}
    assert rate_sweep.more_runs(tmp_path, SEEDS) == []


def test_the_mixtures_control_follows_the_parallel_mixtures_chosen_rate(tmp_path):
    assert not any(
        fields["norm"] == rate_sweep.FIXED_MIXTURE
        for fields in rate_sweep.more_runs(tmp_path, SEEDS)
    )
    write_method(tmp_path, "GN+BN parallel", {0.001: 70.0, 0.003: 64.0, 0.01: 62.0, 0.03: 66.0})
    controls = [
        c
        for c in profile_configs("cpu", rate_sweep.RATE_SWEEP, results_dir=tmp_path)
        if c.norm == rate_sweep.FIXED_MIXTURE
    ]
    assert {(c.base_learning_rate, c.seed) for c in controls} == {(0.01, seed) for seed in SEEDS}
    assert all(c.run_name.startswith("gnbn_parallel_fixed_g32_bs32_lr0.01") for c in controls)


def test_long_training_adds_a_methods_runs_once_its_rate_is_chosen(tmp_path):
    from utils.experiments.fair_comparison import long_training

    assert profile_configs("cpu", long_training.LONG_TRAINING, results_dir=tmp_path) == []
    write_method(tmp_path, "GN", {0.001: 70.0, 0.003: 60.0, 0.01: 65.0, 0.03: 80.0})
    configs = profile_configs("cpu", long_training.LONG_TRAINING, results_dir=tmp_path)
    assert {(c.norm, c.batch_size, c.weight_decay, c.seed) for c in configs} == {
        ("group", batch, decay, seed)
        for batch, decay in ((32, 1e-4), (8, 1e-4), (2, 1e-4), (32, 0.0))
        for seed in SEEDS
    }
    assert {c.epochs for c in configs} == {30} and {c.base_learning_rate for c in configs} == {
        0.003
    }
    # The linear scaling rule at smaller batches, the study's schedule.
    assert {c.batch_size: c.learning_rate for c in configs} == {
        32: 0.003,
        8: 0.003 * 8 / 32,
        2: 0.003 * 2 / 32,
    }
    assert {c.lr_decay_fractions for c in configs} == {(0.5, 0.75)}


def test_the_rate_table_shows_finished_seeds_and_the_choice(tmp_path):
    write_method(tmp_path, "GN", {0.001: 70.0, 0.003: 60.0, 0.01: 65.0, 0.03: 80.0})
    write_method(tmp_path, "BN", {0.01: 62.0}, seeds=(0,))
    table = rate_sweep.rate_table(tmp_path, seeds=SEEDS).set_index("method")
    gn = factory.curve_median(60.0)
    assert (
        table.loc["GN", "0.003"] == f"{gn:.1f} ± 0.0" and table.loc["GN", "chosen rate"] == "0.003"
    )
    assert table.loc["BN", "0.01"] == f"{factory.curve_median(62.0):.1f} (1 of 3 seeds)"
    assert table.loc["BN", "0.001"] == "" and table.loc["BN", "chosen rate"] == "not yet"
