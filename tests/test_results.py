"""utils.results tables on a handmade results folder, and utils.paper data sanity."""

import math

import numpy as np
import pandas as pd
import pytest

from tests import results_factory as factory
from utils import paper, results


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return factory.make_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def runs(results_dir):
    return results.load_runs(results_dir)


def run_row(runs, experiment, run_name):
    rows = runs[(runs["experiment"] == experiment) & (runs["run_name"] == run_name)]
    assert len(rows) == 1, f"expected one {experiment}/{run_name}, found {len(rows)}"
    return rows.iloc[0]


# ---------------------------------------------------------------- load_runs


def test_load_runs_finds_every_run_folder(runs):
    assert len(runs) == 12
    assert set(runs["experiment"]) == {"norm_comparison", "batch_size_sweep"}
    assert set(runs["norm"]) == {"batch", "instance", "group"}
    assert list(runs.columns) == list(results.RUN_COLUMNS)
    assert set(runs["status"]) == {"complete", "partial", "diverged"}


def test_median_is_the_median_of_the_last_five_epochs(runs):
    row = run_row(runs, "norm_comparison", "gn_g32_bs32_seed0")
    assert row["val_error_median5"] == pytest.approx(factory.curve_median(61.0))
    assert row["train_error_median5"] == pytest.approx(factory.curve_median(61.0) - 5.0)
    assert row["median_epochs"] == 5
    assert row["groups"] == 32 and row["batch_size"] == 32


def test_partial_run_uses_all_of_its_fewer_than_five_epochs(runs):
    row = run_row(runs, "batch_size_sweep", "gn_g32_bs8_seed0")
    assert row["status"] == "partial"
    assert results.status_texts(runs)[row.name] == "partial (3/10 epochs)"
    assert row["median_epochs"] == 3
    assert row["val_error_median5"] == pytest.approx(float(np.median(factory.curve(62.0, 10)[:3])))


def test_diverged_run_is_labelled_with_the_epoch_that_blew_up(runs):
    # The epoch whose loss became NaN is never written to history.csv.
    row = run_row(runs, "batch_size_sweep", "bn_bs2_seed0")
    assert row["status"] == "diverged"
    assert results.status_texts(runs)[row.name] == "diverged at epoch 4"
    assert row["diverged_epoch"] == 4
    assert row["epochs_completed"] == 3
    assert row["val_error_median5"] == pytest.approx(85.0)


def test_reused_run_has_the_original_history(runs):
    original = run_row(runs, "norm_comparison", "bn_bs32_seed0")
    reused = run_row(runs, "batch_size_sweep", "bn_bs32_seed0")
    assert reused["reused_from"] == "norm_comparison/bn_bs32_seed0"
    assert pd.isna(original["reused_from"])
    assert reused["epochs_completed"] == 10
    assert reused["val_error_median5"] == original["val_error_median5"]


def test_a_folder_without_config_is_not_a_run(tmp_path):
    (tmp_path / "norm_comparison" / "stray").mkdir(parents=True)
    (tmp_path / "norm_comparison" / "stray" / "notes.txt").write_text("not a run")
    assert results.load_runs(tmp_path).empty


def test_missing_results_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        results.load_runs(tmp_path / "does-not-exist")


def test_load_histories_tags_every_epoch(results_dir, runs):
    histories = results.load_histories(results_dir)
    assert len(histories) == int(runs["epochs_completed"].sum())
    for column in (
        "experiment",
        "run_name",
        "norm",
        "batch_size",
        "epoch",
        "val_error",
        "train_error",
    ):
        assert column in histories.columns
    one = histories[histories["run_name"] == "gn_g32_bs8_seed0"]
    assert list(one["epoch"]) == [1, 2, 3]
    assert set(one["norm"]) == {"group"}


def test_canonical_norm_accepts_aliases_and_rejects_unknown_names():
    assert results.canonical_norm("GN") == "group"
    assert results.canonical_norm("instance") == "instance"
    with pytest.raises(ValueError, match="'weird'"):
        results.canonical_norm("weird")


def test_as_runs_rejects_other_types():
    with pytest.raises(TypeError, match="int"):
        results.as_runs(3)


# ---------------------------------------------------------------- tables


def test_table1_side_by_side_with_missing_run(results_dir):
    table = results.table1(results_dir).set_index("norm")
    assert list(table.index) == ["BN", "LN", "IN", "GN"]
    assert table.loc["GN", "ours val error (%)"] == pytest.approx(factory.curve_median(61.0))
    assert table.loc["GN", "ours minus BN"] == pytest.approx(
        factory.curve_median(61.0) - factory.curve_median(60.0)
    )
    assert table.loc["BN", "ours minus BN"] == 0.0
    assert table.loc["LN", "status"] == "missing"
    assert math.isnan(table.loc["LN", "ours val error (%)"])
    assert table.loc["GN", "run"] == "gn_g32_bs32_seed0"
    assert table.loc["IN", "paper val error (%)"] == 28.4
    assert table.loc["IN", "paper minus BN"] == pytest.approx(4.8)
    assert "median of the last 5" in table.attrs["caption"]


def test_table2_shows_partial_missing_and_diverged_runs(runs):
    table = results.table2(runs).set_index("batch size")
    assert list(table.index) == [32, 16, 8, 4, 2]
    assert "GN: partial (3/10 epochs)" in table.loc[8, "status"]
    assert "GN: missing" in table.loc[4, "status"]
    assert "BN: diverged at epoch 4" in table.loc[2, "status"]
    assert math.isnan(table.loc[2, "BN"])  # a diverged run has no number
    assert math.isnan(table.loc[2, "GN minus BN"])
    assert table.loc[16, "GN minus BN"] == pytest.approx(
        factory.curve_median(61.2) - factory.curve_median(61.0)
    )
    assert table.loc[2, "paper GN minus BN"] == -10.6
    assert table.loc[2, "paper BN"] == 34.7
    # LN and IN were not swept in this folder; one seed gives no sd.
    assert math.isnan(table.loc[16, "LN"]) and math.isnan(table.loc[16, "BN sd"])


def write_seeds(results_dir, norm, batch_size, finals):
    """Complete runs of one cell, one per seed, converging to the given final errors."""
    for seed, final in enumerate(finals):
        factory.write_run(
            results_dir,
            factory.make_config("batch_size_sweep", norm, batch_size, seed=seed),
            factory.curve(final, 10),
        )
    return [factory.curve_median(final) for final in finals]


def test_cells_give_mean_sd_and_the_values_of_every_seed(tmp_path):
    values = write_seeds(tmp_path, "batch", 4, [60.0, 64.0, 61.0])
    cell = results.run_cell(
        results.load_runs(tmp_path), experiment="batch_size_sweep", norm="batch", batch_size=4
    )
    assert isinstance(cell, results.Cell)
    assert cell.n == 3 and cell.seeds == (0, 1, 2)
    assert cell.values == pytest.approx(values)
    assert cell.value == pytest.approx(np.mean(values))
    assert cell.sd == pytest.approx(np.std(values, ddof=1))
    assert cell.status == "complete (3 seeds)"
    assert cell.run == "bn_bs4_seed0, bn_bs4_seed1, bn_bs4_seed2"


def test_differences_are_paired_by_seed(tmp_path):
    bn = write_seeds(tmp_path, "batch", 2, [70.0, 80.0, 75.0])
    gn = write_seeds(tmp_path, "group", 2, [65.0, 79.0, 76.0])
    table = results.table2(tmp_path).set_index("batch size")
    differences = np.array(gn) - np.array(bn)
    assert table.loc[2, "GN minus BN"] == pytest.approx(differences.mean())
    # Paired: the spread of the differences, not of either column.
    assert table.loc[2, "GN minus BN sd"] == pytest.approx(np.std(differences, ddof=1))
    assert table.loc[2, "GN sd"] == pytest.approx(np.std(gn, ddof=1))
    assert table.loc[2, "n"] == "BN: 3, LN: 0, IN: 0, GN: 3"
    text = "\n".join(results.conclusions(tmp_path))
    lower = int((differences < 0).sum())
    assert f"(GN lower in {lower} of 3 seeds)" in text
    runs = results.load_runs(tmp_path)
    difference = results.paired_difference(
        results.run_cell(runs, experiment="batch_size_sweep", norm="group", batch_size=2),
        results.run_cell(runs, experiment="batch_size_sweep", norm="batch", batch_size=2),
    )
    assert isinstance(difference, results.Difference)
    assert difference.seeds == (0, 1, 2) and difference.values == pytest.approx(differences)
    assert (difference.n, difference.negative) == (3, lower)
    assert (difference.mean, difference.sd) == pytest.approx(
        (differences.mean(), np.std(differences, ddof=1))
    )


def test_seed_table_lists_every_seed(tmp_path):
    values = write_seeds(tmp_path, "group", 8, [60.0, 62.0])
    table = results.seed_table(tmp_path, experiments=("batch_size_sweep",))
    assert list(table.columns) == [0, 1]
    assert table.loc[("batch_size_sweep", "group", 8)].tolist() == pytest.approx(values)


def test_training_time_counts_a_copied_run_once(runs):
    # Complete: the comparison's BN, IN, GN; the sweep's BN at 16, 8, 4 and GN at 16, 2.
    # The sweep's batch-32 runs are copies of the comparison's; partial and diverged runs do not count.
    time = results.training_time(runs)
    assert list(time.index) == [0]
    assert time.loc[0, "trainings"] == 8
    assert time.loc[0, "hours"] == pytest.approx(8 * factory.EPOCHS * factory.EPOCH_SECONDS / 3600)


def test_training_time_counts_a_copy_whose_source_is_elsewhere(runs):
    sweep = runs[runs["experiment"] == "batch_size_sweep"]
    assert results.training_time(sweep).loc[0, "trainings"] == 7


def test_training_time_is_by_seed(tmp_path):
    write_seeds(tmp_path, "group", 8, [60.0, 62.0, 61.0])
    write_seeds(tmp_path, "batch", 8, [60.0, 62.0])
    time = results.training_time(tmp_path)
    assert time["trainings"].to_dict() == {0: 2, 1: 2, 2: 1}


def test_learning_before_decays_reads_the_cuts_and_the_changes_before_them(tmp_path):
    # The factory's runs keep the default schedule: the rate is cut after epochs 3, 6 and 9 of 10.
    falling = factory.curve(60.0, factory.EPOCHS)
    stalled = list(falling)
    stalled[3:6] = [stalled[3]] * 3  # flat over epochs 4 to 6
    for seed, train_errors in enumerate([falling, stalled]):
        config = factory.make_config("batch_size_sweep", "group", 8, seed=seed)
        factory.write_run(
            tmp_path, config, [value + 5.0 for value in train_errors], train_errors=train_errors
        )
    table = results.learning_before_decays(tmp_path)
    assert list(table.index) == [3, 6, 9]
    assert table["runs"].tolist() == [2, 2, 2]
    assert table["falling"].tolist() == [2, 1, 2]
    drop_before_6 = falling[5] - falling[3]  # epoch 6 minus epoch 4
    assert table.loc[6, "change"] == pytest.approx(drop_before_6 / 2)
    assert table.loc[3, "change"] == pytest.approx(falling[2] - falling[0])
    assert table.loc[6, "change_sd"] == pytest.approx(np.std([drop_before_6, 0.0], ddof=1))


def test_learning_before_decays_counts_a_copied_run_once(runs):
    assert results.learning_before_decays(runs)["runs"].tolist() == [8, 8, 8]


def test_a_copy_in_an_experiment_that_sorts_first_does_not_take_the_training(results_dir, tmp_path):
    # batch_renorm/ sorts before batch_size_sweep/: the training must stay the sweep's.
    import dataclasses
    import shutil

    from utils import runs as runs_module

    shutil.copytree(results_dir, tmp_path, dirs_exist_ok=True)
    source = factory.make_config("batch_size_sweep", "batch", 16)
    copy = dataclasses.replace(source, experiment="batch_renorm")
    runs_module.copy_finished_run(copy, tmp_path / "batch_size_sweep" / source.run_name, tmp_path)
    study = ("norm_comparison", "batch_size_sweep")
    before = results.distinct_trainings(results_dir, study)
    after = results.distinct_trainings(tmp_path, study)
    assert list(after["training"]) == list(before["training"])
    assert list(after["experiment"]) == list(before["experiment"])
    assert results.learning_before_decays(tmp_path)["runs"].tolist() == [8, 8, 8]


def test_conclusions_count_the_seeds_where_gn_is_below_bn_at_each_batch(tmp_path):
    write_seeds(tmp_path, "batch", 32, [60.0, 61.0, 62.0])
    write_seeds(tmp_path, "group", 32, [61.0, 60.5, 63.0])  # below BN in seed 1 only
    write_seeds(tmp_path, "batch", 2, [70.0, 71.0, 72.0])
    write_seeds(tmp_path, "group", 2, [65.0, 66.0, 73.0])  # below BN in seeds 0 and 1
    line = next(
        line
        for line in results.conclusions(tmp_path)
        if line.startswith("GN's val error below BN's")
    )
    assert "1 of 3 seeds at batch 32" in line and "2 of 3 seeds at batch 2" in line
    assert "0 of 0 seeds at batch 8" in line


def test_drop_counts_the_seeds_where_the_small_batch_is_worse(tmp_path):
    at_32 = write_seeds(tmp_path, "batch", 32, [60.0, 60.0, 60.0])
    at_2 = write_seeds(tmp_path, "batch", 2, [70.0, 58.0, 66.0])
    drop = results.batch_size_drop(tmp_path).loc["BN"]
    increases = np.array(at_2) - np.array(at_32)
    assert drop["n"] == 3 and drop["higher_at_small"] == int((increases > 0).sum()) == 2
    assert drop["ours_increase"] == pytest.approx(increases.mean())
    assert drop["ours_increase_sd"] == pytest.approx(np.std(increases, ddof=1))


def test_markdown_shows_mean_and_sd_together(tmp_path):
    values = write_seeds(tmp_path, "batch", 32, [60.0, 64.0])
    text = results.to_markdown(results.table2(tmp_path))
    assert f"| {np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} |" in text
    assert "BN sd" not in text.split("\n")[0]


def test_markdown_export(results_dir):
    text = results.to_markdown(results.table2(results_dir))
    lines = text.split("\n")
    assert lines[0].startswith("| batch size | BN | LN | IN | GN | GN minus BN | n |")
    assert lines[1].startswith("|---:|")
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + 5
    assert (
        "GN: missing" in text and "diverged at epoch 4" in text and "partial (3/10 epochs)" in text
    )
    assert "| 2 | – |" in text  # NaN shows as a dash, not "nan"
    assert "nan" not in text.lower().replace("nats", "")
    assert text.endswith(results.table2(results_dir).attrs["caption"])


def test_a_table_is_rounded_once_the_same_way_everywhere():
    # 90.55 is stored as 90.5499...: pandas's round gives 90.6, the markdown 90.5.
    frame = pd.DataFrame(
        {"norm": ["IN", "BN"], "val": [90.55, 72.65], "val sd": [0.25, float("nan")]}
    )
    shown = results.formatted(frame)
    assert shown["val"].tolist() == [f"{90.55:.1f} ± {0.25:.1f}", f"{72.65:.1f}"]
    markdown_rows = results.to_markdown(frame).splitlines()[2:]
    assert markdown_rows == [f"| {row.norm} | {row.val} |" for row in shown.itertuples()]


def test_markdown_escapes_pipes_and_formats_decimals():
    frame = pd.DataFrame({"name": ["a|b"], "value": [1.23456]})
    text = results.to_markdown(frame, decimals=2, caption=False)
    assert text == "| name | value |\n|:---|---:|\n| a\\|b | 1.23 |"


def test_report_table_compares_losses(runs):
    table = results.report_table(runs)
    assert len(table) == 14
    row = table[(table["experiment"] == "norm_comparison") & (table["norm"] == "GN")].iloc[0]
    assert row["report val loss"] == 3.238
    gn_row = run_row(runs, "norm_comparison", "gn_g32_bs32_seed0")
    assert row["ours val loss"] == pytest.approx(gn_row["val_loss_median5"])
    assert "loss" in table.attrs["caption"]


def test_batch_size_drop_ours_and_paper(runs):
    drop = results.batch_size_drop(runs)
    assert drop.loc["GN", "ours_increase"] == pytest.approx(
        factory.curve_median(61.5) - factory.curve_median(61.0)
    )
    assert math.isnan(drop.loc["BN", "ours_increase"])
    assert drop.loc["BN", "status_small"] == "diverged at epoch 4"
    assert drop.loc["BN", "paper_increase"] == pytest.approx(11.1)
    assert drop.loc["GN", "paper_increase"] == pytest.approx(0.0)


def test_conclusions_name_the_numbers_and_the_gaps(runs):
    text = "\n".join(results.conclusions(runs))
    gap = factory.curve_median(61.0) - factory.curve_median(60.0)
    assert f"ours {gap:+.1f} points (GN higher in 1 of 1 seed), paper +0.5" in text
    assert "LN: missing" in text
    assert "diverged at epoch 4" in text
    assert "paper +11.1" in text


# ---------------------------------------------------------------- paper data


def test_paper_table2_difference_row_matches_its_columns():
    for batch_size in paper.BATCH_SIZES:
        difference = paper.TABLE2["group"][batch_size] - paper.TABLE2["batch"][batch_size]
        assert difference == pytest.approx(paper.TABLE2_GN_MINUS_BN[batch_size], abs=0.051)


def test_paper_tables_agree_with_each_other():
    for norm in paper.TABLE1_NORMS:
        assert paper.TABLE1[norm] - paper.TABLE1["batch"] == pytest.approx(
            paper.TABLE1_DIFFERENCE_TO_BN[norm], abs=0.051
        )
    assert paper.TABLE1["batch"] == paper.TABLE2["batch"][32]
    assert paper.TABLE1["group"] == paper.TABLE2["group"][32] == paper.TABLE3_GROUPS[32]
    assert paper.TABLE3_GROUPS[1] == paper.TABLE1["layer"]
    assert paper.TABLE3_CHANNELS_PER_GROUP[1] == paper.TABLE1["instance"]
    assert paper.BATCH_RENORM_AT_4["batch"] == paper.TABLE2["batch"][4]
    assert paper.BATCH_RENORM_AT_4["group"] == paper.TABLE2["group"][4]
    assert paper.WEIGHT_STANDARDIZATION["group"] == paper.TABLE1["group"]
    assert paper.WEIGHT_STANDARDIZATION["batch"] == paper.TABLE1["batch"]


def test_report_records_state_their_unit():
    assert "error" in paper.PAPER_UNIT and "median of the last 5" in paper.PAPER_UNIT
    report = pd.DataFrame(paper.report_records())
    assert len(report) == 4 + 10
    assert set(report["unit"]) == {paper.REPORT_UNIT}
    assert "loss" in paper.REPORT_UNIT
    assert (report["value"] < 5).all()  # losses in nats, not percentages


def test_seeds_text_counts_in_words():
    assert results.seeds_text(1) == "1 seed"
    assert results.seeds_text(3) == "3 seeds"
    assert results.seeds_text(0, 1) == "0 of 1 seed"
    assert results.seeds_text(2, 3) == "2 of 3 seeds"


def test_batch_size_drop_table_names_its_columns_and_counts_the_seeds(tmp_path):
    at_32 = write_seeds(tmp_path, "batch", 32, [60.0, 60.0, 60.0])
    at_2 = write_seeds(tmp_path, "batch", 2, [70.0, 58.0, 66.0])
    changes = np.array(at_2) - np.array(at_32)
    table = results.batch_size_drop_table(tmp_path).set_index("norm")
    assert table.loc["BN", "change"] == pytest.approx(changes.mean())
    assert table.loc["BN", "change sd"] == pytest.approx(changes.std(ddof=1))
    assert table.loc["BN", "higher at 2"] == "2 of 3"
    assert table.loc["BN", "paper's change"] == pytest.approx(
        paper.TABLE2["batch"][2] - paper.TABLE2["batch"][32]
    )
    assert "| BN |" in results.to_markdown(table.reset_index())
