"""One rule for which runs may be averaged (utils.results.differing_settings), used by every
reader: tables, the rate rule and the plans it makes, figures, the landscape and mixture
tables. Runs that differ in more than the seed are named and never averaged."""

import math

from tests import results_factory as factory
from tests.test_rate_sweep import SEEDS
from tests.test_rate_sweep import write_method
from utils import plots
from utils import results
from utils import runs as runs_module
from utils.experiments.understanding_gn import analysis as understanding
from utils.experiments.fair_comparison import long_training
from utils.experiments.fair_comparison import rate_sweep
from utils.profiles import profile_configs

GN_FINALS = {0.001: 70.0, 0.003: 60.0, 0.01: 65.0, 0.03: 80.0}


def _sweep_with_other_groups(folder):
    """A finished GN sweep (best at 0.003), then GN with 16 groups at each rate, seed 0:
    runs of another setting written into the same experiment."""
    write_method(folder, "GN", GN_FINALS)
    for rate, final in GN_FINALS.items():
        config = factory.make_config(
            rate_sweep.RATE_SWEEP, seed=0, **dict(rate_sweep.run_fields("GN", rate), groups=16)
        )
        # They would pull every rate towards chance if they were averaged in.
        factory.write_run(
            folder, config, factory.curve(final + 15.0, config.epochs), train_errors=[99.0] * 10
        )


def test_the_rate_rule_neither_averages_nor_plans_from_runs_of_other_settings(tmp_path):
    _sweep_with_other_groups(tmp_path)
    row = rate_sweep.best_rates(tmp_path, seeds=SEEDS).loc["GN"]
    assert row["excluded"] == () and math.isnan(row["chosen"]) and math.isnan(row["edge"])
    assert set(row["mixed"]) == set(GN_FINALS) and "groups 16, 32" in row["mixed"][0.003]
    # No rate is added, and nothing trains at a rate chosen from them.
    assert rate_sweep.more_runs(tmp_path, SEEDS) == []
    assert not any(
        config.norm == "group" and not config.weight_standardization
        for config in profile_configs("cpu", long_training.LONG_TRAINING, results_dir=tmp_path)
    )
    table = rate_sweep.rate_table(tmp_path, seeds=SEEDS).set_index("method")
    assert table.loc["GN", "0.003"].startswith("not averaged: its runs differ in groups 16, 32")
    assert table.loc["GN", "chosen rate"] == "not yet"


def test_a_figure_draws_runs_of_other_settings_one_by_one_and_says_so(tmp_path):
    for seed, final in ((0, 60.0), (1, 61.0)):
        factory.write_run(
            tmp_path,
            factory.make_config("norm_comparison", "batch", 32, seed=seed),
            factory.curve(final, factory.EPOCHS),
        )
    factory.write_run(
        tmp_path,
        factory.make_config("norm_comparison", "batch", 32, seed=0, weight_decay=0.0),
        factory.curve(70.0, factory.EPOCHS),
    )
    figure = plots.plot_norm_comparison(tmp_path, figures_dir=tmp_path / "figures")
    validation = figure.axes[1]
    # No mean and no ±1 sd band: three single curves.
    assert not validation.collections
    assert len([line for line in validation.lines if len(line.get_xdata()) == factory.EPOCHS]) == 3
    labels = [text.get_text() for text in validation.get_legend().get_texts()]
    assert any(
        label.startswith("BN") and "not averaged: its runs differ in weight_decay" in label
        for label in labels
    )


def test_the_landscape_table_does_not_merge_the_probes_of_two_settings():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        root = factory.make_understanding_results(Path(folder))
        config = factory.make_config(
            "landscape",
            "batch",
            32,
            seed=0,
            landscape_probes=factory.PROBES_PER_EPOCH,
            weight_decay=0.0,
        )
        run_dir = factory.write_run(root, config, factory.curve(75.0, factory.EPOCHS))
        steps = config.classes * config.images_per_class // 32
        runs_module.write_measurements(
            run_dir, "landscape.csv", factory.landscape_rows("batch", 5, factory.EPOCHS, steps)
        )
        table = understanding.landscape_table(results.load_runs(root)).set_index(
            ["batch size", "norm"]
        )
    row = table.loc[(32, "BN")]
    assert math.isnan(row["effective beta-smoothness, epoch 1"]) and row["n"] == 0
    assert row["status"].startswith("not averaged: its runs differ in weight_decay")
    assert table.loc[(2, "BN"), "n"] == 2


def test_the_mixing_weight_table_names_a_cell_of_two_settings_and_leaves_it_empty(tmp_path):
    root = factory.make_understanding_results(tmp_path)
    norm = "gn_plus_parallel"
    run_dir = factory.write_run(
        root,
        factory.make_config("mixtures", norm, 32, seed=0, weight_decay=0.0),
        factory.curve(70.0, factory.EPOCHS),
    )
    runs_module.write_measurements(
        run_dir,
        "mixing.csv",
        [
            {"epoch": epoch, "layer": "layer", "mixing_weight": 0.1}
            for epoch in range(1, factory.EPOCHS + 1)
        ],
    )
    table = understanding.mixing_weight_table(results.load_runs(root))
    row = table[(table["batch size"] == 32) & (table["mixture"] == understanding.label(norm))].iloc[
        0
    ]
    assert row["n"] == 0 and all(
        math.isnan(value) for column, value in row.items() if column.startswith("s, ")
    )
    assert "at batch 32: not averaged: its runs differ in weight_decay" in table.attrs["caption"]
    other = table[
        (table["batch size"] == 2) & (table["mixture"] == understanding.label(norm))
    ].iloc[0]
    assert other["n"] == 2


def test_runs_that_differ_only_in_the_seed_are_averaged(tmp_path):
    for seed in (0, 1):
        factory.write_run(
            tmp_path,
            factory.make_config("norm_comparison", "group", 32, seed=seed),
            factory.curve(60.0 + seed, factory.EPOCHS),
        )
    runs = results.load_runs(tmp_path)
    assert results.differing_settings(runs) == {}
    assert results.run_cell(runs, norm="group").n == 2
