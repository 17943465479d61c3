"""utils.experiments.fair_comparison.figures: the long training's figures on a handmade results folder."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from tests import results_factory as factory  # noqa: E402
from tests.checks import assert_png  # noqa: E402
from tests.test_plots import DATASET, PROFILE, assert_titled, band_at, bands, legend_text  # noqa: E402
from utils import experiments, plots, results  # noqa: E402
from utils.experiments.fair_comparison import figures as fair_plots  # noqa: E402
from utils.experiment import load_function  # noqa: E402

STUDY_EPOCHS = 10
LONG_EPOCHS = 30
LONG_SCHEDULE = (0.5, 0.75)
# Each method's own base rate in long_training.
RATES = {"batch": 0.03, "group": 0.003, "ws": 0.003, "gn_plus_bn_first": 0.01}
# Final val errors by seed: the study's runs (batch_size_sweep, 10 epochs at its rate).
STUDY_FINAL = {
    "batch": {32: (60.0, 61.0), 8: (63.0, 64.0), 2: (80.0, 82.0)},
    "group": {32: (61.0, 62.0), 8: (61.5, 62.0), 2: (62.0, 62.5)},
}
# long_training with the study's weight decay (30 epochs); GN at batch 2 is still running.
LONG_FINAL = {
    "batch": {32: (50.0, 51.0, 52.5), 8: (53.0, 54.0, 54.5), 2: (70.0, 72.0, 71.0)},
    "group": {32: (52.0, 52.5, 53.0), 8: (52.0, 53.0, 53.5)},
}
PARTIAL_EPOCHS = 12
PARTIAL_FINAL = (52.0, 53.0)
# The other methods at batch 32; without weight decay far from the others, so that a mean
# taking them in would show.
WS_FINAL = (51.0, 51.5)
MIXTURE_FINAL = (53.0, 54.0)
NO_DECAY_FINAL = {"batch": (20.0, 21.0), "group": (85.0, 86.0)}


@pytest.fixture(autouse=True)
def fast_figures(monkeypatch):
    # A low resolution keeps the tests fast; the drawing code is the same at any dpi.
    monkeypatch.setattr(plots, "DPI", 40)
    yield
    plt.close("all")


def write_long(
    root, norm, batch_size, finals, *, epochs=LONG_EPOCHS, status="complete", rate=None, **fields
):
    """One long_training run per seed 0, 1, ..., converging towards `finals[seed]`."""
    for seed, final in enumerate(finals):
        config = factory.make_config(
            "long_training",
            norm,
            batch_size,
            seed=seed,
            epochs=LONG_EPOCHS,
            dataset=DATASET,
            profile=PROFILE,
            base_learning_rate=rate or RATES[norm],
            lr_decay_fractions=LONG_SCHEDULE,
            **fields,
        )
        factory.write_run(root, config, factory.curve(final, LONG_EPOCHS)[:epochs], status=status)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_training")
    for norm, by_batch in STUDY_FINAL.items():
        for batch_size, finals in by_batch.items():
            for seed, final in enumerate(finals):
                config = factory.make_config(
                    "batch_size_sweep",
                    norm,
                    batch_size,
                    seed=seed,
                    epochs=STUDY_EPOCHS,
                    dataset=DATASET,
                    profile=PROFILE,
                )
                factory.write_run(root, config, factory.curve(final, STUDY_EPOCHS))
    for norm, by_batch in LONG_FINAL.items():
        for batch_size, finals in by_batch.items():
            write_long(root, norm, batch_size, finals)
    write_long(root, "group", 2, PARTIAL_FINAL, epochs=PARTIAL_EPOCHS, status="running")
    write_long(root, "group", 32, WS_FINAL, rate=RATES["ws"], weight_standardization=True)
    write_long(root, "gn_plus_bn_first", 32, MIXTURE_FINAL)
    for norm, finals in NO_DECAY_FINAL.items():
        write_long(root, norm, 32, finals, weight_decay=0.0)
    runs = results.load_runs(root)
    return runs, results.load_histories(runs=runs)


def mean_curve(finals, shift=0.0):
    """The epoch-by-epoch mean over seeds of the factory's curves (training: `shift` = -5)."""
    return np.mean([factory.curve(final, LONG_EPOCHS) for final in finals], axis=0) + shift


def number_text(finals, shift=0.0):
    """ "51.2 ± 1.3% (n=3)": what a legend says of runs converging towards `finals`."""
    numbers = np.array([factory.curve_median(final, LONG_EPOCHS) for final in finals]) + shift
    return f"{numbers.mean():.1f} ± {numbers.std(ddof=1):.1f}% (n={len(numbers)})"


def lines_of(axis, color):
    return [line for line in axis.get_lines() if to_hex(line.get_color()) == color]


def test_study_and_long_runs_side_by_side(frames, tmp_path):
    runs, histories = frames
    figure = fair_plots.plot_long_training(runs, histories=histories, figures_dir=tmp_path)
    assert_png(tmp_path / "long_training.png")
    assert_titled(figure)
    axes = np.array(figure.axes).reshape(3, 2)
    for (left, right), batch_size in zip(axes, (32, 8, 2)):
        assert left.get_xlim() == (0.5, STUDY_EPOCHS + 0.5) and right.get_xlim() == (
            0.5,
            LONG_EPOCHS + 0.5,
        )
        assert max(line.get_xdata().max() for line in left.get_lines()) == STUDY_EPOCHS
        assert max(line.get_xdata().max() for line in right.get_lines()) == LONG_EPOCHS
        # One y range per row, so that the two lengths compare at a glance.
        assert left.get_ylim() == right.get_ylim()
        assert (
            left.get_title()
            == f"{STUDY_EPOCHS} epochs, shared base rate (0.003), batch {batch_size}"
        )
        assert (
            right.get_title()
            == f"{LONG_EPOCHS} epochs, own base rate (BN 0.03, GN 0.003), batch {batch_size}"
        )
        assert left.get_xlabel() == "epoch" and "thin: training error" in legend_text(right)
    assert "base × b/32" in figure.texts[0].get_text()


def test_means_bands_and_numbers_of_the_long_runs(frames, tmp_path):
    runs, histories = frames
    figure = fair_plots.plot_long_training(runs, histories=histories, figures_dir=tmp_path)
    right = figure.axes[1]  # batch 32, 30 epochs
    finals = LONG_FINAL["batch"][32]
    validation, training = lines_of(right, plots.NORM_COLORS["batch"])
    np.testing.assert_allclose(validation.get_ydata(), mean_curve(finals))
    np.testing.assert_allclose(training.get_ydata(), mean_curve(finals, -5.0))
    assert training.get_linewidth() < validation.get_linewidth()
    # A band for each error of BN and GN; at the last epoch it spans mean ± sd of the seeds.
    assert len(right.collections) == 4
    last = np.array([factory.curve(final, LONG_EPOCHS)[-1] for final in finals])
    spread = last.std(ddof=1)
    spans = sorted(
        band_at(band, LONG_EPOCHS)
        for band in right.collections
        if to_hex(band.get_facecolor()[0]) == plots.NORM_COLORS["batch"]
    )
    expected = sorted((mean - spread, mean + spread) for mean in (last.mean() - 5.0, last.mean()))
    np.testing.assert_allclose(spans, expected)
    text = legend_text(right)
    assert f"BN validation: {number_text(finals)}" in text
    assert f"BN training: {number_text(finals, -5.0)}" in text
    assert f"GN validation: {number_text(LONG_FINAL['group'][32])}" in text


def test_partial_runs_are_dashed_and_named(frames, tmp_path):
    runs, histories = frames
    figure = fair_plots.plot_long_training(runs, histories=histories, figures_dir=tmp_path)
    right = figure.axes[5]  # batch 2, 30 epochs
    # The number of a partial cell is that of the epochs its runs reached.
    numbers = np.array(
        [
            np.median(factory.curve(final, LONG_EPOCHS)[:PARTIAL_EPOCHS][-5:])
            for final in PARTIAL_FINAL
        ]
    )
    status = f"partial ({PARTIAL_EPOCHS}/{LONG_EPOCHS} epochs)"
    assert (
        f"GN validation: {numbers.mean():.1f} ± {numbers.std(ddof=1):.1f}% (n=2) [{status}; {status}]"
        in legend_text(right)
    )
    gn_lines = lines_of(right, plots.NORM_COLORS["group"])
    assert gn_lines and all(line.get_linestyle() == "--" for line in gn_lines)
    assert max(line.get_xdata().max() for line in gn_lines) == PARTIAL_EPOCHS
    # The x axis still spans the 30 epochs the runs were set to train.
    assert right.get_xlim() == (0.5, LONG_EPOCHS + 0.5)


def test_others_keep_the_runs_without_weight_decay_apart(frames, tmp_path):
    runs, histories = frames
    figure = fair_plots.plot_long_training_others(runs, histories=histories, figures_dir=tmp_path)
    assert_png(tmp_path / "long_training_others.png")
    assert_titled(figure)
    train_axis, val_axis = figure.axes
    for norm, label in (("batch", "BN"), ("group", "GN")):
        (with_decay,) = lines_of(val_axis, plots.NORM_COLORS[norm])
        np.testing.assert_allclose(with_decay.get_ydata(), mean_curve(LONG_FINAL[norm][32]))
        (without,) = lines_of(val_axis, fair_plots.shade(plots.NORM_COLORS[norm], "white", 0.5))
        np.testing.assert_allclose(without.get_ydata(), mean_curve(NO_DECAY_FINAL[norm]))
        assert without.get_linestyle() == "-." and with_decay.get_linestyle() == "-"
        rate = f"{RATES[norm]:g}"
        assert f"{label} (base rate {rate}): {number_text(LONG_FINAL[norm][32])}" in legend_text(
            val_axis
        )
        assert (
            f"{label}, no weight decay (base rate {rate}): {number_text(NO_DECAY_FINAL[norm], -5.0)}"
            in legend_text(train_axis)
        )
    (ws,) = lines_of(val_axis, fair_plots.OTHERS[2][1])
    np.testing.assert_allclose(ws.get_ydata(), mean_curve(WS_FINAL))
    (mixture,) = lines_of(train_axis, plots.NORM_COLORS["gn_plus_bn_first"])
    np.testing.assert_allclose(mixture.get_ydata(), mean_curve(MIXTURE_FINAL, -5.0))
    assert f"GN+BN, BN first (base rate 0.01): {number_text(MIXTURE_FINAL)}" in legend_text(
        val_axis
    )
    assert len(set(to_hex(line.get_color()) for line in val_axis.get_lines())) == 6
    assert len(bands(val_axis)) == 6
    assert val_axis.get_xlim() == (0.5, LONG_EPOCHS + 0.5)
    assert val_axis.get_title() == f"validation error, batch 32, {LONG_EPOCHS} epochs"


def test_figures_without_any_long_runs(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    figures_dir = tmp_path / "figures"
    first = fair_plots.plot_long_training(
        empty, figures_dir=figures_dir, dataset=DATASET, profile=PROFILE
    )
    second = fair_plots.plot_long_training_others(
        empty, figures_dir=figures_dir, dataset=DATASET, profile=PROFILE
    )
    assert sorted(path.name for path in figures_dir.glob("*.png")) == [
        "long_training.png",
        "long_training_others.png",
    ]
    for figure in (first, second):
        assert_titled(figure)
        assert not any(axis.collections or axis.get_lines() for axis in figure.axes)
    assert "BN validation: n/a [missing]" in legend_text(first.axes[1])
    assert first.axes[1].get_title() == "no runs yet, own base rate, batch 32"
    assert "GN, no weight decay: n/a [missing]" in legend_text(second.axes[1])


def test_long_training_declares_both_figures():
    declared = experiments.get("long_training").figures
    assert [figure.name for figure in declared] == ["long_training", "long_training_others"]
    assert [load_function(figure.function) for figure in declared] == [
        fair_plots.plot_long_training,
        fair_plots.plot_long_training_others,
    ]
    assert all("±1 sd over seeds" in figure.caption for figure in declared)
