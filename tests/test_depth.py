"""The depth experiment: its sweep, the grid its rule adds, its tables, findings and
figures, on handmade run folders (no training)."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from tests import results_factory as factory  # noqa: E402
from tests.checks import assert_png  # noqa: E402
from tests.test_plots import legend_text  # noqa: E402
from utils.experiments.depth import analysis as depth  # noqa: E402
from utils.experiments.depth import figures as depth_plots  # noqa: E402
from utils import plots  # noqa: E402
from utils import results  # noqa: E402
from utils.experiments import depth as depth_experiment  # noqa: E402
from utils.profiles import profile_configs  # noqa: E402

SEEDS = (0, 1, 2)
PROFILE = "cpu"
EPOCHS = depth_experiment.EPOCHS
# Final val error (%) of the sweep, seed 0: BN best at 0.1, GN at 0.03 (inside the rates).
SWEEP = {
    "BN": {0.01: 60.0, 0.03: 55.0, 0.1: 50.0, 0.3: 58.0},
    "GN": {0.01: 57.0, 0.03: 52.0, 0.1: 54.0, 0.3: 70.0},
}
RATES = {"BN": 0.1, "GN": 0.03}
OFFSETS = {0: 0.0, 1: 1.0, 2: -0.5}


def write_sweep(results_dir):
    for method, finals in SWEEP.items():
        for rate, final in finals.items():
            config = factory.make_config(
                depth_experiment.DEPTH_SWEEP,
                seed=0,
                profile=PROFILE,
                epochs=EPOCHS,
                **depth_experiment.RULE.run_fields(method, rate),
            )
            factory.write_run(results_dir, config, factory.curve(final, EPOCHS))


def write_grid_run(
    results_dir, norm, batch_size, seed, final, *, train, groups=None, experiment=None, **fields
):
    """One run of the depth grid (or, with `experiment`, of the small CNN's study)."""
    if experiment is None:
        rate = RATES["BN" if norm == "batch" else "GN"]
        fields = dict(
            fields,
            experiment=depth_experiment.DEPTH,
            model="resnet10",
            epochs=EPOCHS,
            base_learning_rate=rate,
            lr_decay_fractions=depth_experiment.DECAY_FRACTIONS,
        )
    else:
        fields = dict(fields, experiment=experiment, epochs=factory.EPOCHS)
    if groups is not None:
        fields["groups"] = groups
    config = factory.make_config(
        fields.pop("experiment"), norm, batch_size, seed=seed, profile=PROFILE, **fields
    )
    factory.write_run(
        results_dir,
        config,
        factory.curve(final, config.epochs),
        train_errors=factory.curve(train, config.epochs),
    )


@pytest.fixture
def folder(tmp_path):
    """The depth grid (GN's training error below BN's, BN worse at batch 2) and the
    small CNN's study beside it (GN's training error above BN's)."""
    write_sweep(tmp_path)
    for seed in SEEDS:
        offset = OFFSETS[seed]
        for batch_size, bn_rise in ((32, 0.0), (8, 1.0), (2, 8.0)):
            write_grid_run(
                tmp_path, "batch", batch_size, seed, 50.0 + bn_rise + offset, train=40.0 + bn_rise
            )
            write_grid_run(tmp_path, "group", batch_size, seed, 51.0 + offset, train=35.0)
            write_grid_run(
                tmp_path,
                "batch",
                batch_size,
                seed,
                75.0 + 2 * bn_rise + offset,
                train=74.0,
                experiment="batch_size_sweep",
            )
            write_grid_run(
                tmp_path,
                "group",
                batch_size,
                seed,
                78.0 + offset,
                train=77.0,
                experiment="batch_size_sweep",
            )
            if batch_size in (32, 2):
                # The small CNN at its own rates for 30 epochs: BN rises by 16, GN's training error is above.
                write_grid_run(
                    tmp_path,
                    "batch",
                    batch_size,
                    seed,
                    70.0 + 2 * bn_rise + offset,
                    train=55.0,
                    experiment="long_training",
                )
                write_grid_run(
                    tmp_path,
                    "group",
                    batch_size,
                    seed,
                    74.0 + offset,
                    train=60.0,
                    experiment="long_training",
                )
        for norm, final in (("layer", 55.0), ("instance", 65.0)):
            write_grid_run(tmp_path, norm, 32, seed, final + offset, train=final - 10)
        write_grid_run(
            tmp_path, "group", 32, seed, 90.0, train=90.0, groups=8
        )  # far off: never averaged in
        for groups, final in ((32, 78.0), (8, 79.0), (64, 77.0)):  # the small CNN's group ablation
            write_grid_run(
                tmp_path,
                "group",
                32,
                seed,
                final + offset,
                train=final,
                groups=groups,
                experiment="group_ablation",
            )
    return tmp_path


def test_the_sweep_is_resnet10_at_batch_32_seed_0():
    configs = profile_configs("cpu", depth_experiment.DEPTH_SWEEP)
    assert len(configs) == len(depth_experiment.METHODS) * len(depth_experiment.LEARNING_RATES)
    assert {c.norm for c in configs} == {"batch", "group", "layer", "instance"}
    assert {(c.model, c.batch_size, c.seed, c.epochs) for c in configs} == {
        ("resnet10", 32, 0, EPOCHS)
    }
    assert {c.base_learning_rate for c in configs} == set(depth_experiment.LEARNING_RATES)
    assert profile_configs("cpu", "depth_grid") == []


def test_the_grid_joins_once_the_rates_are_chosen(tmp_path):
    write_sweep(tmp_path)
    configs = profile_configs("cpu", depth_experiment.DEPTH, results_dir=tmp_path)
    planned = {(c.norm, c.groups, c.batch_size) for c in configs}
    assert planned == {
        ("batch", None, 32),
        ("batch", None, 8),
        ("batch", None, 2),
        ("group", 32, 32),
        ("group", 32, 8),
        ("group", 32, 2),
        ("layer", None, 32),
        ("instance", None, 32),
        ("group", 8, 32),
        ("group", 64, 32),
    }
    assert {c.seed for c in configs} == set(SEEDS) and {c.model for c in configs} == {"resnet10"}
    # ResNet-10 trains faster without XLA at every batch size, batch 2 included (measured).
    assert not any(c.jit_compile for c in configs) and {c.epochs for c in configs} == {EPOCHS}
    rates = {(c.norm, c.groups): c.base_learning_rate for c in configs}
    assert rates[("batch", None)] == 0.1
    assert (
        rates[("group", 32)]
        == rates[("layer", None)]
        == rates[("instance", None)]
        == rates[("group", 8)]
        == 0.03
    )
    # The sweep's seed-0 run at the chosen rate is reused, not trained again.
    names = {c.run_name for c in configs}
    assert "bn_bs32_lr0.1_decay50-75_seed0" in names


def test_ln_and_in_take_their_own_rates_once_the_sweep_chooses_them(tmp_path):
    write_sweep(tmp_path)
    # LN's sweep: best at 0.1 (inside the rates); IN's is not finished.
    for rate, final in {0.01: 60.0, 0.03: 56.0, 0.1: 53.0, 0.3: 59.0}.items():
        config = factory.make_config(
            depth_experiment.DEPTH_SWEEP,
            seed=0,
            profile=PROFILE,
            epochs=EPOCHS,
            **depth_experiment.RULE.run_fields("LN", rate),
        )
        factory.write_run(tmp_path, config, factory.curve(final, EPOCHS))
    config = factory.make_config(
        depth_experiment.DEPTH_SWEEP,
        seed=0,
        profile=PROFILE,
        epochs=EPOCHS,
        **depth_experiment.RULE.run_fields("IN", 0.1),
    )
    factory.write_run(tmp_path, config, factory.curve(60.0, EPOCHS))
    rates = {
        c.norm: c.base_learning_rate
        for c in profile_configs("cpu", depth_experiment.DEPTH, results_dir=tmp_path)
        if c.groups in (None, 32)
    }
    # LN at its own rate; IN at GN's until its own is chosen.
    assert rates == {"batch": 0.1, "group": 0.03, "layer": 0.1, "instance": 0.03}


def test_the_rate_table_reads_the_one_seed_sweep(tmp_path):
    write_sweep(tmp_path)
    # A profile run of another experiment: the profile has three seeds, the sweep one.
    write_grid_run(tmp_path, "batch", 32, 2, 75.0, train=74.0, experiment="batch_size_sweep")
    table = depth_experiment.rate_table(tmp_path).set_index("method")
    assert table.loc["BN", "chosen rate"] == "0.1" and table.loc["GN", "chosen rate"] == "0.03"
    # One seed: its value alone, neither "1 of 3 seeds" nor a spread of nan.
    assert table.loc["BN", "0.1"] == f"{factory.curve_median(50.0, EPOCHS):.1f}"
    assert table.loc["GN", "0.3"] == f"{factory.curve_median(70.0, EPOCHS):.1f}"


def test_the_rate_table_marks_a_half_trained_sweep(tmp_path):
    config = factory.make_config(
        depth_experiment.DEPTH_SWEEP,
        seed=0,
        profile=PROFILE,
        epochs=EPOCHS,
        **depth_experiment.RULE.run_fields("BN", 0.03),
    )
    factory.write_run(tmp_path, config, factory.curve(55.0, EPOCHS))
    table = depth_experiment.rate_table(tmp_path).set_index("method")
    assert table.loc["BN", "0.03"] == f"{factory.curve_median(55.0, EPOCHS):.1f}"
    assert table.loc["BN", "chosen rate"] == "not yet"


def test_table1_sets_resnet10_beside_the_small_cnn(folder):
    table = depth.table1(folder).set_index("norm")
    expected = factory.curve_median
    assert table.loc["GN", "minus BN"] == pytest.approx(
        expected(51.0, EPOCHS) - expected(50.0, EPOCHS), abs=0.01
    )
    assert table.loc["GN", "train minus BN"] < 0
    assert table.loc["GN", "small CNN minus BN"] == pytest.approx(
        expected(78.0) - expected(75.0), abs=0.01
    )
    assert table.loc["GN", "n"] == 3 and table.loc["GN", "paper minus BN"] == pytest.approx(0.5)
    # G = 8's runs are their own row, never GN's.
    assert table.loc["GN, G = 8", "ResNet-10 val error"] == pytest.approx(
        expected(90.0, EPOCHS), abs=0.01
    )
    assert table.loc["GN, G = 64", "status"] == "missing"
    # The small CNN's other group counts are its group ablation's.
    assert table.loc["GN, G = 8", "small CNN minus BN"] == pytest.approx(
        expected(79.0) - expected(75.0), abs=0.01
    )


def test_table2_and_the_findings_answer_the_questions(folder):
    table = depth.table2(folder).set_index("batch size")
    assert table.loc[32, "GN train minus BN train lower in"] == "3/3"
    assert table.loc[2, "GN minus BN lower in"] == "3/3"
    lines = depth.conclusions(folder)
    assert lines[0].startswith("Batch 32, GN minus BN training error: ResNet-10 -")
    assert "(GN lower in 3 of 3 seeds)" in lines[0] and "small CNN +" in lines[0]
    bn_line = next(line for line in lines if line.startswith("BN from batch 32 to 2"))
    deep = factory.curve_median(58.0, EPOCHS) - factory.curve_median(50.0, EPOCHS)
    shallow = factory.curve_median(91.0) - factory.curve_median(75.0)
    longer = factory.curve_median(86.0) - factory.curve_median(70.0)
    assert (
        f"ResNet-10 {deep:+.1f}" in bn_line
        and f"small CNN {shallow:+.1f}" in bn_line
        and "paper +11.1" in bn_line
    )
    assert f"at its own rates for 30 epochs {longer:+.1f} ± 0.0;" in bn_line
    train_gap = factory.curve_median(60.0) - factory.curve_median(55.0)
    assert (
        f"at its own rates for 30 epochs {train_gap:+.1f} ± 0.0 (GN lower in 0 of 3 seeds)"
        in lines[0]
    )
    g64 = next(line for line in lines if "G = 64 minus G = 32" in line)
    small_g64 = factory.curve_median(77.0) - factory.curve_median(78.0)
    assert (
        "ResNet-10 n/a" in g64
        and f"small CNN {small_g64:+.1f} ± 0.0 (G = 64 lower in 3 of 3 seeds)" in g64
    )


def test_the_figures_draw_resnet10_without_the_other_group_counts(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "DPI", 40)  # fast; the drawing code is the same at any dpi
    runs = results.load_runs(folder)
    figure = depth_plots.plot_depth_comparison(runs, figures_dir=tmp_path)
    assert_png(tmp_path / "depth_comparison.png")
    gn = f"{factory.curve_median(51.0 + sum(OFFSETS.values()) / 3, EPOCHS):.1f}"
    assert f"GN: ours {gn}" in legend_text(figure.axes[1])
    depth_plots.plot_depth_batch_sizes(runs, figures_dir=tmp_path)
    assert_png(tmp_path / "depth_batch_sizes.png")


def test_the_last_finding_says_how_much_the_error_still_moved_at_the_lowest_rate(folder):
    # The schedule cuts the rate at 50% and 75% of the 15 epochs: the lowest rate starts
    # with epoch 12 (index 11), and the change runs from there to the last epoch.
    first_at_lowest = round(depth_experiment.DECAY_FRACTIONS[-1] * EPOCHS)
    bn_val = [factory.curve(50.0 + OFFSETS[seed], EPOCHS) for seed in SEEDS]
    bn_changes = [curve[-1] - curve[first_at_lowest] for curve in bn_val]
    change = depth.final_rate_change(results.load_runs(folder), "batch", 32)
    assert change.seeds == SEEDS
    assert change.values == pytest.approx(bn_changes, abs=1e-3)
    train_curve = factory.curve(35.0, EPOCHS)
    gn_train = depth.final_rate_change(results.load_runs(folder), "group", 32, "train_error")
    assert gn_train.values == pytest.approx(
        [train_curve[-1] - train_curve[first_at_lowest]] * 3, abs=1e-3
    )
    line = depth.conclusions(folder)[-1]
    mean = sum(bn_changes) / len(bn_changes)
    assert line.startswith("Batch 32, change from the first epoch at the lowest rate to the last")
    assert f"BN validation {mean:+.1f} ± " in line and "(falling in 3 of 3 seeds)" in line
    assert "GN validation" in line and "n/a" not in line


def test_the_lowest_rate_finding_reads_n_a_without_runs(tmp_path):
    write_sweep(tmp_path)
    assert "BN n/a; GN n/a" in depth.conclusions(tmp_path)[-1]
