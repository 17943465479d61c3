"""utils.experiments.beyond_the_paper.analysis tables and findings on handmade results folders of the three experiments."""

import math

import numpy as np
import pytest

from tests import results_factory as factory
from utils.experiments.beyond_the_paper import analysis as ablations
from utils import paper
from utils import results


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return factory.make_ablation_results(tmp_path_factory.mktemp("ablations"))


@pytest.fixture(scope="module")
def runs(results_dir):
    return results.load_runs(results_dir)


def mean_sd(values):
    return float(np.mean(values)), float(np.std(values, ddof=1))


def test_run_names_and_columns_carry_the_new_settings(runs):
    names = set(runs["run_name"])
    assert {
        "gn_cpg16_bs32_seed0",
        "gn_g64_bs32_seed1",
        "brn_bs4_seed0",
        "gn_g32_ws_bs2_seed1",
        "bn_ws_bs8_seed0",
    } <= names
    row = runs[runs["run_name"] == "gn_cpg16_bs32_seed0"].iloc[0]
    assert row["channels_per_group"] == 16 and row["groups"] is results.pd.NA
    assert runs[runs["run_name"] == "bn_ws_bs8_seed0"].iloc[0]["weight_standardization"]


def test_table3_has_both_halves_with_paired_differences_and_the_papers_numbers(runs):
    table = ablations.table3(runs).set_index("size")
    assert list(table.index) == [64, 32, 16, 8, 4, 2, 1]
    for (setting, size), finals in factory.ABLATION_FINAL.items():
        label = {"groups": "G", "channels_per_group": "C/G"}[setting]
        mean, sd = mean_sd([factory.curve_median(final) for final in finals])
        assert table.loc[size, f"{label}: ours"] == pytest.approx(mean)
        assert table.loc[size, f"{label}: ours sd"] == pytest.approx(sd)
    # G = 1 is LN: its difference to G = 32 is paired by seed.
    ln, gn = factory.ABLATION_FINAL[("groups", 1)], factory.ABLATION_FINAL[("groups", 32)]
    differences = [factory.curve_median(a) - factory.curve_median(b) for a, b in zip(ln, gn)]
    assert table.loc[1, "G: minus G = 32"] == pytest.approx(np.mean(differences))
    assert table.loc[1, "G: minus G = 32 sd"] == pytest.approx(np.std(differences, ddof=1))
    assert table.loc[1, "G: paper"] == paper.TABLE1["layer"]
    assert table.loc[1, "C/G: paper"] == paper.TABLE1["instance"]
    assert table.loc[16, "C/G: minus C/G = 16"] == pytest.approx(0.0)
    assert table.loc[64, "C/G: groups per layer"] == "1, 4"
    assert table.loc[1, "C/G: groups per layer"] == "64, 256"
    # The missing cell is labelled, not dropped, and its seeds are counted apart.
    assert math.isnan(table.loc[2, "C/G: ours"])
    assert "C/G = 2: missing" in table.loc[2, "status"]
    assert table.loc[2, "n"] == "G = 2: 2, C/G = 2: 0"
    assert table.loc[32, "status"] == "complete" and table.loc[32, "n"] == "2"
    assert "G = 1 is LN" in table.attrs["caption"]


def test_table3_markdown_shows_mean_and_sd(runs):
    text = results.to_markdown(ablations.table3(runs))
    mean, sd = mean_sd(
        [factory.curve_median(final) for final in factory.ABLATION_FINAL[("groups", 32)]]
    )
    assert f"{mean:.1f} ± {sd:.1f}" in text
    assert "| size |" in text.splitlines()[0]


def test_batch_renorm_table_pairs_by_seed_and_shows_the_paper_at_4(runs):
    table = ablations.batch_renorm_table(runs).set_index("batch size")
    assert list(table.index) == [32, 8, 4, 2]
    for label, norm in (("BN", "batch"), ("BRN", "batch_renorm"), ("GN", "group")):
        mean, _ = mean_sd([factory.curve_median(final) for final in factory.RENORM_FINAL[norm][4]])
        assert table.loc[4, label] == pytest.approx(mean)
    differences = [
        factory.curve_median(a) - factory.curve_median(b)
        for a, b in zip(factory.RENORM_FINAL["batch_renorm"][2], factory.RENORM_FINAL["batch"][2])
    ]
    assert table.loc[2, "BRN minus BN"] == pytest.approx(np.mean(differences))
    assert table.loc[2, "BRN minus BN sd"] == pytest.approx(np.std(differences, ddof=1))
    assert table.loc[4, "paper BRN"] == paper.BATCH_RENORM_AT_4["batch_renorm"]
    assert math.isnan(table.loc[32, "paper BRN"])
    assert (table["status"] == "complete").all()


def test_weight_standardization_table_compares_gn_ws_with_bn_at_the_same_batch(runs):
    table = ablations.weight_standardization_table(runs).set_index("batch size")
    assert list(table.index) == [32, 8, 2]
    gn_ws, bn = factory.WS_FINAL[("group", True)][8], factory.WS_FINAL[("batch", False)][8]
    assert table.loc[8, "GN+WS minus BN"] == pytest.approx(
        np.mean([factory.curve_median(a) - factory.curve_median(b) for a, b in zip(gn_ws, bn)])
    )
    assert table.loc[32, "Qiao et al. GN+WS"] == paper.WEIGHT_STANDARDIZATION["group+ws"]
    assert math.isnan(table.loc[2, "paper GN"])
    # The runs without WS are the batch-renorm experiment's copies: same numbers.
    assert table.loc[2, "BN"] == pytest.approx(
        np.mean([factory.curve_median(final) for final in factory.RENORM_FINAL["batch"][2]])
    )


def test_conclusions_count_the_seeds_each_direction_holds_in(runs):
    lines = ablations.conclusions(runs)
    text = "\n".join(lines)
    # IN minus C/G = 16: IN higher in both seeds.
    assert "C/G = 1 (IN) minus C/G = 16" in text and "IN lower in 0 of 2 seeds" in text
    # BRN at 4 is lower than BN in both seeds; the paper's difference follows.
    at_4 = next(line for line in lines if line.startswith("Batch 4:"))
    assert "BRN lower in 2 of 2 seeds" in at_4 and "paper at 4: BRN minus BN -1.0" in at_4
    # Over G in {64..2} the means span max - min.
    proper = {
        size: np.mean([factory.curve_median(f) for f in factory.ABLATION_FINAL[("groups", size)]])
        for size in (64, 32, 16, 8, 4, 2)
    }
    assert (
        f"spans {max(proper.values()) - min(proper.values()):.1f} points, lowest at G = 32" in text
    )
    # A cell with missing runs gives n/a, not a number.
    assert any("GN by C/G" in line for line in lines)
    # Every batch size of both experiments has its line: BRN at 32, 8, 4, 2; WS at 32, 8, 2.
    assert [line.split(":")[0] for line in lines if "BRN minus BN" in line] == [
        "Batch 32",
        "Batch 8",
        "Batch 4",
        "Batch 2",
    ]
    assert [line.split(":")[0] for line in lines if "WS changes GN" in line] == [
        "Batch 32",
        "Batch 8",
        "Batch 2",
    ]
    at_8 = next(line for line in lines if line.startswith("Batch 8: WS"))
    gn_ws, gn = factory.WS_FINAL[("group", True)][8], factory.WS_FINAL[("group", False)][8]
    gain = np.mean([factory.curve_median(a) - factory.curve_median(b) for a, b in zip(gn_ws, gn)])
    assert f"WS changes GN by {gain:+.1f}" in at_8


def test_conclusions_of_an_empty_folder_say_n_a(tmp_path):
    lines = ablations.conclusions(results.load_runs(tmp_path))
    assert lines and all("n/a" in line for line in lines[:-1])


def test_unknown_setting_is_refused(runs):
    with pytest.raises(ValueError, match="setting='group'"):
        ablations.group_ablation_cell(runs, "group", 4)


# ---------------------------------------------------------------- figures


def points(axis, label):
    """(x, y) of the series labelled `label` in `axis` (error bars or a plain line)."""
    labelled = {container.get_label(): container.lines[0] for container in axis.containers}
    labelled.update({line.get_label(): line for line in axis.get_lines()})
    line = labelled[label]
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def test_group_ablation_figure_draws_both_halves_and_the_paper(runs, tmp_path):
    from utils.experiments.beyond_the_paper import figures as ablation_plots

    figure = ablation_plots.plot_group_ablation(runs, figures_dir=tmp_path)
    assert (tmp_path / "group_ablation.png").stat().st_size > 10_000
    ours, published = figure.axes[:2]
    _, values = points(ours, "G")
    expected = [
        np.mean([factory.curve_median(f) for f in factory.ABLATION_FINAL[("groups", size)]])
        for size in (64, 32, 16, 8, 4, 2, 1)
    ]
    np.testing.assert_allclose(values, expected)
    _, values = points(ours, "C/G")
    assert np.isnan(values[5])  # C/G = 2 is missing ...
    assert any(
        "not complete: C/G = 2: missing" in text.get_text() for text in figure.texts
    )  # ... and named
    _, paper_values = points(published, "G (paper)")
    assert list(paper_values) == [paper.TABLE3_GROUPS[size] for size in (64, 32, 16, 8, 4, 2, 1)]


def test_batch_renorm_and_weight_standardization_figures(runs, tmp_path):
    from utils.experiments.beyond_the_paper import figures as ablation_plots

    figure = ablation_plots.plot_batch_renorm(runs, figures_dir=tmp_path)
    _, values = points(figure.axes[0], "BRN")
    np.testing.assert_allclose(
        values,
        [
            np.mean([factory.curve_median(f) for f in factory.RENORM_FINAL["batch_renorm"][b]])
            for b in (32, 8, 4, 2)
        ],
    )
    assert list(points(figure.axes[1], "BRN (published)")[1]) == [
        paper.BATCH_RENORM_AT_4["batch_renorm"]
    ]
    figure = ablation_plots.plot_weight_standardization(runs, figures_dir=tmp_path)
    assert [container.get_label() for container in figure.axes[0].containers] == [
        "BN",
        "BN+WS",
        "GN",
        "GN+WS",
    ]
    assert {path.name for path in tmp_path.iterdir()} == {
        "batch_renorm.png",
        "weight_standardization.png",
    }
