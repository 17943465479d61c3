"""utils.experiments.understanding_gn.analysis tables, findings and figures on a handmade results folder."""

import numpy as np
import pandas as pd
import pytest

from tests import results_factory as factory
from utils import results
from utils.experiments.understanding_gn import analysis as understanding


def median(final):
    return float(np.median(factory.curve(final, factory.EPOCHS)[-5:]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return results.load_runs(
        factory.make_understanding_results(tmp_path_factory.mktemp("understanding"))
    )


def test_probe_summary_takes_the_range_and_the_largest_changes():
    probes = pd.DataFrame(factory.landscape_rows("group", 0, epochs=1, steps_per_epoch=6))
    summary = understanding.probe_summary(probes)
    assert list(summary["step"]) == [0, 2, 4]
    factor = factory.LANDSCAPE_FACTOR["group"]
    np.testing.assert_allclose(summary["loss_range"], factor * 0.01 * (4.0 - 0.5))
    np.testing.assert_allclose(summary["gradient_change"], factor * 0.4)
    np.testing.assert_allclose(summary["beta_smoothness"], factor * 0.5)
    assert understanding.probe_summary(pd.DataFrame()).empty


def test_probe_summary_of_landscape_rows_with_several_steps():
    rows = []
    for epoch, step, losses, distances in (
        (1, 0, [2.0, 1.5, 1.7], [0.1, 0.3, 0.2]),
        (1, 4, [1.2, 1.1, 1.4], [0.05, 0.1, 0.4]),
    ):
        for eta, loss, distance in zip((0.1, 0.2, 0.4), losses, distances):
            rows.append(
                dict(
                    epoch=epoch,
                    step=step,
                    multiplier=eta / 0.1,
                    step_size=eta,
                    base_loss=losses[0] + 0.1,
                    loss=loss,
                    gradient_norm=2.0,
                    gradient_distance=distance,
                    step_length=2.0 * eta,
                )
            )
    summary = understanding.probe_summary(pd.DataFrame(rows))
    assert list(summary["step"]) == [0, 4]
    np.testing.assert_allclose(summary["loss_range"], [0.5, 0.3])
    np.testing.assert_allclose(summary["gradient_change"], [0.3, 0.4])
    np.testing.assert_allclose(summary["beta_smoothness"], [0.3 / 0.4, 0.4 / 0.8])
    np.testing.assert_allclose(summary["gradient_norm"], [2.0, 2.0])
    assert "loss_range" in understanding.probe_summary(pd.DataFrame()).columns


def test_landscape_table_averages_probes_per_run_then_over_seeds(runs):
    table = understanding.landscape_table(runs).set_index(["batch size", "norm"])
    assert list(table.index) == [
        (32, "BN"),
        (32, "GN"),
        (32, "no norm"),
        (2, "BN"),
        (2, "GN"),
        (2, "no norm"),
    ]
    factors = [factory.LANDSCAPE_FACTOR["group"] + seed / 10 for seed in factory.ABLATION_SEEDS]
    smoothness = [0.5 * factor for factor in factors]
    assert table.loc[(2, "GN"), "effective beta-smoothness, epoch 1"] == pytest.approx(
        np.mean(smoothness)
    )
    assert table.loc[(2, "GN"), "effective beta-smoothness, epoch 1 sd"] == pytest.approx(
        np.std(smoothness, ddof=1)
    )
    assert table.loc[(32, "BN"), "loss range along the gradient, all epochs"] == pytest.approx(
        np.mean([0.035 * (1.0 + seed / 10) for seed in factory.ABLATION_SEEDS])
    )
    assert (table["n"] == 2).all() and (table["status"] == "complete (2 seeds)").all()


def test_landscape_probes_carry_the_training_progress(runs):
    probes = understanding.landscape_probes(runs)
    chosen = probes[
        (probes["norm"] == "batch") & (probes["batch_size"] == 32) & (probes["seed"] == 0)
    ]
    steps_per_epoch = factory.CLASSES * factory.IMAGES_PER_CLASS // 32
    assert chosen["progress"].max() == pytest.approx(chosen["step"].max() / steps_per_epoch)
    assert len(chosen) == factory.EPOCHS * factory.PROBES_PER_EPOCH


def test_distortion_table_pairs_each_condition_with_the_recipe(runs):
    table = understanding.distortion_table(runs).set_index("norm")
    for (norm, condition), finals in factory.DISTORTION_FINAL.items():
        label = understanding.label(norm)
        assert table.loc[label, condition] == pytest.approx(np.mean([median(f) for f in finals]))
    noise = [
        median(a) - median(b)
        for a, b in zip(
            factory.DISTORTION_FINAL[("group", "noise")],
            factory.DISTORTION_FINAL[("group", "recipe")],
        )
    ]
    assert table.loc["GN", "noise minus recipe"] == pytest.approx(np.mean(noise))
    # The noisy GN runs end at a training error of 99% (chance: 90% on 10 classes).
    assert table.loc["GN", "near chance with noise"] == "2 of 2"
    assert table.loc["BN", "near chance with noise"] == "0 of 2"
    with pytest.raises(ValueError, match="condition='dropout'"):
        understanding.distortion_cell(runs, "group", "dropout")


def test_mixtures_table_and_learnt_weights(runs):
    table = understanding.mixtures_table(runs).set_index("batch size")
    first = factory.MIXTURE_FINAL["gn_plus_gn_first"][2]
    group = factory.MIXTURE_FINAL["group"][2]
    assert table.loc[2, "GN+BN, GN first"] == pytest.approx(np.mean([median(f) for f in first]))
    assert table.loc[2, "GN+BN, GN first minus GN"] == pytest.approx(
        np.mean([median(a) - median(b) for a, b in zip(first, group)])
    )
    weights = understanding.mixing_weights(runs)
    last = weights[weights["epoch"] == factory.EPOCHS]
    assert set(last["norm"]) == set(understanding.MIXTURE_NORMS)
    np.testing.assert_allclose(
        last[last["layer"] == "norm1"]["mixing_weight"], factory.FINAL_MIXING_WEIGHT["norm1"]
    )


def test_mixing_weight_table_gives_s_after_the_first_and_the_last_epoch(runs, tmp_path):
    table = understanding.mixing_weight_table(runs).set_index(["batch size", "mixture"])
    assert list(table.index.get_level_values("mixture")[:3]) == [
        "GN+BN parallel",
        "GN+BN, GN first",
        "GN+BN, BN first",
    ]
    for number, (layer, end) in enumerate(factory.FINAL_MIXING_WEIGHT.items(), start=1):
        column = f"s, layer {number}, "
        assert table.loc[(2, "GN+BN, BN first"), column + "epoch 1"] == pytest.approx(
            0.731 + (end - 0.731) / factory.EPOCHS
        )
        assert table.loc[(32, "GN+BN parallel"), column + "last epoch"] == pytest.approx(end)
        assert table.loc[(32, "GN+BN parallel"), column + "last epoch sd"] == pytest.approx(0.0)
    assert (table["n"] == len(factory.ABLATION_SEEDS)).all()
    assert "starting at 0.731 (lambda = 1)" in table.attrs["caption"]
    empty = understanding.mixing_weight_table(results.load_runs(factory.make_results(tmp_path)))
    assert len(empty) == 9 and (empty["n"] == 0).all()


def test_conclusions_state_each_claim_with_seed_counts(runs):
    text = "\n".join(understanding.conclusions(runs))
    assert (
        "GN smooths the loss landscape less than BN" in text and "GN higher in 2 of 2 seeds" in text
    )
    assert "(2 of 2 runs ended within 5 points of chance)" in text and "(0 of 2 did)" in text
    assert "weight decay 5e-5 costs GN 2.02 points and BN 0.00" in text
    assert "Batch 2, mixture minus GN: GN+BN parallel" in text


def test_conclusions_set_each_mixture_beside_bn_too(runs):
    line = next(
        line
        for line in understanding.conclusions(runs)
        if line.startswith("Claim: mixing") and "Batch 2," in line
    )
    beside_bn = line.split("Mixture minus BN: ")[1]
    for norm, name in (
        ("gn_plus_parallel", "GN+BN parallel"),
        ("gn_plus_bn_first", "GN+BN, BN first"),
    ):
        differences = [
            median(a) - median(b)
            for a, b in zip(factory.MIXTURE_FINAL[norm][2], factory.MIXTURE_FINAL["batch"][2])
        ]
        lower = sum(difference < 0 for difference in differences)
        expected = f"{name} {np.mean(differences):+.1f} ± {np.std(differences, ddof=1):.1f} (lower than BN in {lower} of 2 seeds)"
        assert expected in beside_bn


def test_conclusions_without_these_runs_say_so(tmp_path):
    lines = understanding.conclusions(results.load_runs(factory.make_results(tmp_path)))
    assert len(lines) == 7 and all("no seed has both runs yet" in line for line in lines[:2])
    assert "loss range GN n/a, BN n/a, no norm n/a" in lines[0]
    assert "(no runs yet) and n/a for BN (no runs yet)" in lines[2]
    table = understanding.distortion_table(results.load_runs(factory.make_results(tmp_path)))
    assert (table["near chance with noise"] == "no runs yet").all()


def test_mixture_panels_without_runs_say_so(tmp_path):
    from utils.experiments.understanding_gn import figures as understanding_plots

    figure = understanding_plots.plot_mixtures(
        results.load_runs(factory.make_results(tmp_path)), figures_dir=tmp_path
    )
    assert [text.get_text() for axis in figure.axes[1:] for text in axis.texts] == [
        "no complete mixture run yet"
    ] * 3


def test_figures_are_drawn_from_the_runs(runs, tmp_path):
    from utils.experiments.understanding_gn import figures as understanding_plots

    figure = understanding_plots.plot_landscape(runs, figures_dir=tmp_path)
    assert len(figure.axes) == 8 and all(axis.get_yscale() == "log" for axis in figure.axes)
    assert figure.axes[3].get_title() == "gradient norm (l2), batch 32"
    np.testing.assert_allclose(
        figure.axes[3].get_lines()[0].get_ydata(), 1.0
    )  # the factory's gradient norm
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels == ["BN (2 seeds)", "GN (2 seeds)", "no norm (2 seeds)"]
    figure = understanding_plots.plot_distortion(runs, figures_dir=tmp_path)
    heights = [patch.get_height() for patch in figure.axes[0].patches]
    assert heights[4] == pytest.approx(
        np.mean([median(f) for f in factory.DISTORTION_FINAL[("group", "noise")]])
    )
    figure = understanding_plots.plot_mixtures(runs, figures_dir=tmp_path)
    assert len(figure.axes) == 4
    final = [
        line.get_ydata()[-1] for line in figure.axes[1].get_lines() if "norm1" in line.get_label()
    ]
    np.testing.assert_allclose(final, factory.FINAL_MIXING_WEIGHT["norm1"])
    assert {path.name for path in tmp_path.iterdir()} == {
        "landscape.png",
        "distortion.png",
        "mixtures.png",
    }
