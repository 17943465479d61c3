"""utils.plots: every figure is written, titled with dataset and profile, and shows run status."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from tests import results_factory as factory  # noqa: E402
from tests.checks import assert_png
from utils import plots, results  # noqa: E402
from utils import runs as plots_runs  # noqa: E402

DATASET = "tiny-imagenet-200"
PROFILE = "cpu"


@pytest.fixture(autouse=True)
def fast_figures(monkeypatch):
    # A low resolution keeps the suite fast; the drawing code is the same at any dpi.
    monkeypatch.setattr(plots, "DPI", 40)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return factory.make_results(
        tmp_path_factory.mktemp("results"), dataset=DATASET, profile=PROFILE
    )


@pytest.fixture(scope="module")
def frames(results_dir):
    runs = results.load_runs(results_dir)
    return runs, results.load_histories(runs=runs)


# Final val errors by seed of the seeded folder: several seeds in some cells, one in others.
SEEDED_COMPARISON = {"batch": (60.0, 61.0, 62.5), "instance": (66.0, 68.0), "group": (61.0,)}
SEEDED_SWEEP = {
    "batch": {32: (60.0, 61.0, 62.5), 2: (80.0, 84.0, 83.0)},
    "layer": {32: (63.0, 64.0), 2: (63.5,)},
    "instance": {32: (66.0, 68.0, 67.0)},
    "group": {32: (61.0, 61.4, 62.0), 2: (61.5, 62.5)},
}


def write_seeds(results_dir, experiment, norm, batch_size, finals, **fields):
    """One complete run per seed 0, 1, ..., converging towards `finals[seed]`."""
    for seed, final in enumerate(finals):
        config = factory.make_config(
            experiment, norm, batch_size, seed=seed, dataset=DATASET, profile=PROFILE, **fields
        )
        factory.write_run(results_dir, config, factory.curve(final, factory.EPOCHS))


def seed_numbers(finals):
    """The per-seed numbers the figures summarise: the median of the last 5 epochs of each curve."""
    return np.array([np.median(factory.curve(final, factory.EPOCHS)[-5:]) for final in finals])


@pytest.fixture(scope="module")
def seeded_dir(tmp_path_factory):
    """A folder with 1 to 3 seeds per cell, and a diverged third seed of IN in the comparison."""
    folder = tmp_path_factory.mktemp("seeded")
    for norm, finals in SEEDED_COMPARISON.items():
        write_seeds(folder, "norm_comparison", norm, 32, finals)
    factory.write_run(
        folder,
        factory.make_config(
            "norm_comparison", "instance", 32, seed=2, dataset=DATASET, profile=PROFILE
        ),
        [90.0, 85.0, 84.0],
        status="diverged",
    )
    for norm, by_size in SEEDED_SWEEP.items():
        for batch_size, finals in by_size.items():
            write_seeds(folder, "batch_size_sweep", norm, batch_size, finals)
    return folder


# Recipe sweep: val error by base rate for the sweep's schedule; None: the run diverges,
# "flat": the run stays at chance (collapses without diverging).
RECIPE_FINALS = {
    "batch": {0.001: 70.0, 0.003: 64.0, 0.01: 62.0, 0.03: None},
    "layer": {0.001: 75.0, 0.003: 70.0, 0.01: 68.0, 0.03: 69.0},
    "instance": {0.001: 80.0, 0.003: 76.0, 0.01: "flat", 0.03: 84.0},
    "group": {0.001: 72.0, 0.003: 66.0, 0.01: 65.0, 0.03: 67.0},
}
PAPER_SCHEDULE_FINALS = {"batch": 63.0, "layer": 71.0, "instance": 77.0, "group": 67.0}


def write_recipe_sweep(results_dir, finals=RECIPE_FINALS, paper_finals=PAPER_SCHEDULE_FINALS):
    """The recipe sweep's runs (seed 0, batch 32) and those of the paper's schedule at 0.003."""
    for norm, by_rate in finals.items():
        for rate, final in by_rate.items():
            config = factory.make_config(
                "recipe_sweep",
                norm,
                32,
                base_learning_rate=rate,
                lr_decay_fractions=(0.5, 0.75),
                dataset=DATASET,
                profile=PROFILE,
            )
            if final is None:
                factory.write_run(results_dir, config, [95.0, 97.0, 99.0], status="diverged")
            elif final == "flat":
                factory.write_run(results_dir, config, [99.0] * factory.EPOCHS)
            else:
                factory.write_run(results_dir, config, factory.curve(final, factory.EPOCHS))
    for norm, final in paper_finals.items():
        config = factory.make_config(
            "recipe_sweep", norm, 32, base_learning_rate=0.003, dataset=DATASET, profile=PROFILE
        )
        factory.write_run(results_dir, config, factory.curve(final, factory.EPOCHS))
    return results_dir


def assert_titled(figure):
    title = figure._suptitle.get_text()
    assert DATASET in title and PROFILE in title, title


def data_axes(figure):
    return [axis for axis in figure.axes if axis.has_data()]


def assert_labelled(figure, x_unit, y_unit, panels=2):
    axes = data_axes(figure)
    assert len(axes) == panels
    for axis in axes:
        assert x_unit in axis.get_xlabel()
        assert y_unit in axis.get_ylabel()
        assert axis.get_title()
        assert axis.get_legend() is not None


def legend_entries(axis):
    return [text.get_text() for text in axis.get_legend().get_texts()]


def legend_text(axis):
    """The legend's title and entries as one text."""
    return "\n".join([axis.get_legend().get_title().get_text(), *legend_entries(axis)])


def bands(axis):
    """The ±1 sd bands (fill_between) drawn on `axis`, as {colour: band}."""
    return {
        matplotlib.colors.to_hex(band.get_facecolor()[0]): band
        for band in axis.collections
        if isinstance(band, PolyCollection)
    }


def band_at(band, epoch):
    """(low, high) of a band at one epoch."""
    vertices = band.get_paths()[0].vertices
    heights = vertices[np.isclose(vertices[:, 0], epoch), 1]
    return heights.min(), heights.max()


def figure_text(figure):
    return (
        "\n".join(text.get_text() for axis in figure.axes for text in axis.texts)
        + "\n"
        + "\n".join(text.get_text() for text in figure.texts)
    )


def test_norm_comparison(results_dir, tmp_path):
    figure = plots.plot_norm_comparison(results_dir, figures_dir=tmp_path)
    assert_png(tmp_path / "norm_comparison.png")
    assert_titled(figure)
    assert_labelled(figure, "epoch", "error (%)")
    train_axis, val_axis = figure.axes
    assert "LN: n/a [missing]" in legend_text(train_axis)
    assert "paper 24.1%" in legend_text(val_axis) and "sd" in legend_text(val_axis)
    colors = {matplotlib.colors.to_hex(line.get_color()) for line in val_axis.get_lines()}
    assert colors == {plots.NORM_COLORS[norm] for norm in ("batch", "instance", "group")}
    # One seed per cell: one line each, as before the study had seeds, and no band.
    assert len(val_axis.get_lines()) == 3 and not bands(val_axis) and not bands(train_axis)
    bn_number = seed_numbers([factory.NORM_COMPARISON_FINAL["batch"]])[0]
    assert legend_entries(val_axis)[0] == f"BN: ours {bn_number:.1f}% (n=1), paper 23.6%"


def test_norm_comparison_draws_the_sd_band_only_with_two_seeds(seeded_dir, tmp_path):
    figure = plots.plot_norm_comparison(seeded_dir, figures_dir=tmp_path)
    assert_png(tmp_path / "norm_comparison.png")
    train_axis, val_axis = figure.axes
    for axis in (train_axis, val_axis):
        # BN has 3 seeds and IN 2 complete ones: a band each; GN has one seed: none.
        assert set(bands(axis)) == {plots.NORM_COLORS["batch"], plots.NORM_COLORS["instance"]}
    last_epoch = factory.EPOCHS
    final_errors = np.array(
        [factory.curve(final, last_epoch)[-1] for final in SEEDED_COMPARISON["batch"]]
    )
    low, high = band_at(bands(val_axis)[plots.NORM_COLORS["batch"]], last_epoch)
    spread = np.std(final_errors, ddof=1)
    assert low == pytest.approx(final_errors.mean() - spread)
    assert high == pytest.approx(final_errors.mean() + spread)
    numbers = seed_numbers(SEEDED_COMPARISON["batch"])
    legend = legend_text(val_axis)
    assert (
        f"BN: ours {numbers.mean():.1f} ± {np.std(numbers, ddof=1):.1f}% (n=3), paper 23.6%"
        in legend
    )
    assert (
        f"GN: ours {seed_numbers(SEEDED_COMPARISON['group'])[0]:.1f}% (n=1), paper 24.1%" in legend
    )
    assert "also in_bs32_seed2: diverged at epoch 4" in legend
    # The diverged seed is left out of the mean and drawn on its own, ending in an X.
    crosses = [line for line in val_axis.get_lines() if line.get_marker() == "X"]
    assert [matplotlib.colors.to_hex(line.get_color()) for line in crosses] == [
        plots.NORM_COLORS["instance"]
    ]


def test_batch_size_curves_show_partial_missing_and_diverged(frames, tmp_path):
    runs, histories = frames
    figure = plots.plot_batch_size_curves(runs, histories=histories, figures_dir=tmp_path)
    assert_png(tmp_path / "batch_size_curves.png")
    assert_titled(figure)
    assert_labelled(figure, "epoch", "error (%)")  # this folder sweeps BN and GN only
    bn_axis, ln_axis, in_axis, gn_axis = figure.axes
    assert [axis.get_title() for axis in figure.axes] == [
        "Batch Norm (BN)",
        "Layer Norm (LN)",
        "Instance Norm (IN)",
        "Group Norm (GN)",
    ]
    assert all(
        bn_axis.get_shared_y_axes().joined(bn_axis, axis) for axis in (ln_axis, in_axis, gn_axis)
    )
    assert "diverged at epoch 4" in legend_text(bn_axis)
    assert "paper 34.7%" in legend_text(bn_axis)
    gn_legend = legend_text(gn_axis)
    assert (
        "partial (3/10 epochs)" in gn_legend
        and "batch 4: ours n/a, paper 24.2% [missing]" in gn_legend
    )
    # The paper has no LN or IN by batch size.
    assert "batch 2: ours n/a [missing]" in legend_text(ln_axis) and "paper" not in legend_text(
        in_axis
    )
    assert not any(bands(axis) for axis in figure.axes)


def test_batch_size_curves_draw_the_sd_band_only_with_two_seeds(seeded_dir, tmp_path):
    figure = plots.plot_batch_size_curves(seeded_dir, figures_dir=tmp_path)
    for axis, norm in zip(figure.axes, ("batch", "layer", "instance", "group")):
        with_spread = [size for size, finals in SEEDED_SWEEP[norm].items() if len(finals) >= 2]
        colors = {matplotlib.colors.to_hex(plots.BATCH_SIZE_COLORS[size]) for size in with_spread}
        assert set(bands(axis)) == colors
        assert len(axis.get_lines()) == len(SEEDED_SWEEP[norm])
    assert "(n=3)" in legend_text(figure.axes[0]) and "sd" in legend_text(figure.axes[0])


def test_batch_size_sensitivity_axis_and_paper_panel(results_dir, tmp_path):
    figure = plots.plot_batch_size_sensitivity(results_dir, figures_dir=tmp_path)
    assert_png(tmp_path / "batch_size_sensitivity.png")
    assert_titled(figure)
    assert_labelled(figure, "batch size", "error (%)")
    ours_axis, paper_axis = figure.axes
    for axis in (ours_axis, paper_axis):
        assert list(axis.get_xticks()) == [32, 16, 8, 4, 2]
        left, right = axis.get_xlim()
        assert left > right, "batch size must decrease to the right, as in the paper"
    assert "paper" in paper_axis.get_title()
    paper_bn = paper_axis.get_lines()[0]
    assert list(paper_bn.get_ydata()) == [23.6, 23.7, 24.8, 27.3, 34.7]
    texts = " ".join(text.get_text() for text in ours_axis.texts + figure.texts)
    assert (
        "diverged at epoch 4" in texts and "missing" in texts and "partial (3/10 epochs)" in texts
    )
    assert [container.get_label() for container in ours_axis.containers] == ["BN", "LN", "IN", "GN"]
    assert "±1 sd over seeds, n=1" in legend_text(ours_axis)


def test_batch_size_sensitivity_names_only_the_models_it_plots(tmp_path):
    write_seeds(tmp_path, results.BATCH_SIZE_SWEEP, "batch", 32, (60.0,))
    write_seeds(tmp_path, "depth_grid", "batch", 32, (50.0,), model="resnet10")
    figure = plots.plot_batch_size_sensitivity(tmp_path, figures_dir=tmp_path)
    title = figure.axes[0].get_title()
    assert "small_cnn" in title and "resnet10" not in title


def test_batch_size_sensitivity_error_bars_are_the_seed_sd(seeded_dir, tmp_path):
    figure = plots.plot_batch_size_sensitivity(seeded_dir, figures_dir=tmp_path)
    ours_axis = figure.axes[0]
    bars = {container.get_label(): container for container in ours_axis.containers}
    assert "±1 sd over seeds, n=1–3" in legend_text(ours_axis)
    for norm, by_size in SEEDED_SWEEP.items():
        data_line, _, (bar_lines,) = bars[plots.paper.NORM_LABELS[norm]].lines
        segments = dict(zip(plots.paper.BATCH_SIZES, bar_lines.get_segments()))
        for batch_size, finals in by_size.items():
            numbers = seed_numbers(finals)
            point = dict(zip(plots.paper.BATCH_SIZES, data_line.get_ydata()))[batch_size]
            assert point == pytest.approx(numbers.mean())
            if len(finals) < 2:
                assert len(segments[batch_size]) == 0, "one seed has no spread to draw"
                continue
            (_, low), (_, high) = segments[batch_size]
            assert (high - low) / 2 == pytest.approx(np.std(numbers, ddof=1))
            assert (high + low) / 2 == pytest.approx(numbers.mean())


def test_recipe_sweep_marks_collapsed_runs_and_the_chosen_rate(tmp_path):
    results_dir = write_recipe_sweep(tmp_path / "results")
    figure = plots.plot_recipe_sweep(results_dir, figures_dir=tmp_path / "figures")
    assert_png(tmp_path / "figures" / "recipe_sweep.png")
    assert_titled(figure)
    assert_labelled(figure, "learning rate", "error (%)", panels=1)
    (axis,) = figure.axes
    assert axis.get_xscale() == "log"
    assert list(axis.get_xticks()) == pytest.approx([0.001, 0.003, 0.01, 0.03])
    # BN collapses (diverges) at 0.03 and IN (stuck at chance) at 0.01: of the others 0.003
    # has the lowest mean, although 0.01 is lower for BN, LN and GN.
    chosen = [line for line in axis.get_lines() if line.get_label().startswith("chosen")]
    assert len(chosen) == 1 and list(chosen[0].get_xdata()) == [0.003, 0.003]
    assert "chosen: 0.003" in legend_text(axis)
    hollow = [line for line in axis.get_lines() if line.get_markerfacecolor() == "white"]
    assert {
        (matplotlib.colors.to_hex(line.get_color()), float(line.get_xdata()[0])) for line in hollow
    } == {(plots.NORM_COLORS["instance"], 0.01), (plots.NORM_COLORS["batch"], 0.03)}
    assert "hollow: collapsed" in legend_text(axis) and "BN: diverged" in figure_text(figure)
    assert "points of chance (BN at 0.03; IN at 0.01)" in figure_text(figure)
    crosses = [
        line
        for line in axis.get_lines()
        if line.get_marker() == "x" and line.get_xdata()[0] == pytest.approx(0.003, rel=0.15)
    ]
    assert sorted(float(line.get_ydata()[0]) for line in crosses) == pytest.approx(
        sorted(seed_numbers([final])[0] for final in PAPER_SCHEDULE_FINALS.values())
    )
    assert "÷10 at 30%, 60%, 90%" in legend_text(axis) and "÷10 at 50%, 75%" in axis.get_title()


def test_recipe_sweep_without_a_chosen_rate_while_runs_are_unfinished(tmp_path):
    # A run still training at a rate that is still a candidate (0.003: nothing collapsed).
    unfinished = {norm: dict(by_rate) for norm, by_rate in RECIPE_FINALS.items()}
    del unfinished["group"][0.003]
    results_dir = write_recipe_sweep(tmp_path / "results", unfinished, {})
    partial = factory.make_config(
        "recipe_sweep",
        "group",
        32,
        base_learning_rate=0.003,
        lr_decay_fractions=(0.5, 0.75),
        dataset=DATASET,
        profile=PROFILE,
    )
    factory.write_run(
        results_dir, partial, factory.curve(67.0, factory.EPOCHS)[:3], status="running"
    )
    figure = plots.plot_recipe_sweep(results_dir, figures_dir=tmp_path / "figures")
    (axis,) = figure.axes
    assert not any(line.get_label().startswith("chosen") for line in axis.get_lines())
    text = figure_text(figure)
    assert "no rate chosen yet" in text and "GN at 0.003: partial (3/10 epochs)" in text
    assert "÷10 at 30%" not in legend_text(axis)


def test_figures_work_without_any_runs(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    figures = [
        plot(empty, figures_dir=tmp_path / "figures", dataset=DATASET, profile=PROFILE)
        for plot in (
            plots.plot_norm_comparison,
            plots.plot_batch_size_curves,
            plots.plot_batch_size_sensitivity,
            plots.plot_recipe_sweep,
        )
    ]
    for figure in figures:
        assert_titled(figure)
        assert not any(bands(axis) for axis in figure.axes)
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4
    assert "BN: n/a [missing]" in legend_text(figures[0].axes[0])
    assert "batch 2: ours n/a, paper 24.1% [missing]" in legend_text(figures[1].axes[3])
    assert "GN batch 4: missing" in figures[2].texts[0].get_text()
    assert "±1 sd over seeds, n=0" in legend_text(figures[2].axes[0])
    recipe_text = figure_text(figures[3])
    assert "no rate chosen yet" in recipe_text and "no runs of the recipe sweep yet" in recipe_text


def test_sample_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    labels = np.arange(10) % 3
    class_names = [
        ("n01443537", "goldfish, Carassius auratus"),
        ("n01629819", "salamander"),
        ("n0", "frog"),
    ]
    figure = plots.plot_sample_images(
        images,
        labels,
        class_names,
        figures_dir=tmp_path,
        columns=5,
        dataset=DATASET,
        profile=PROFILE,
    )
    assert_png(tmp_path / "sample_images.png")
    assert_titled(figure)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles[:3] == ["0: goldfish", "1: salamander", "2: frog"]
    assert len(titles) == 10


def test_sample_images_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plots.plot_sample_images(np.zeros((2, 8, 8)), [0, 1], figures_dir=tmp_path)
    with pytest.raises(ValueError, match="labels"):
        plots.plot_sample_images(np.zeros((2, 8, 8, 3)), [0], figures_dir=tmp_path)


def test_normalization_axes(tmp_path):
    figure = plots.plot_normalization_axes(figures_dir=tmp_path, dataset=DATASET, profile=PROFILE)
    assert_png(tmp_path / "normalization_axes.png")
    assert_titled(figure)
    titles = [axis.get_title() for axis in figure.axes]
    assert [title.split("\n")[0] for title in titles] == [
        "Batch Norm",
        "Layer Norm",
        "Instance Norm",
        "Group Norm",
    ]
    shaded = [
        sum(patch.get_facecolor() != matplotlib.colors.to_rgba("white") for patch in axis.patches)
        for axis in figure.axes
    ]
    # BN shades a whole channel slice, LN a whole sample, IN one (sample, channel), GN a group.
    assert shaded[0] > shaded[3] > shaded[2] and shaded[1] > shaded[3]
    with pytest.raises(ValueError, match="divide"):
        plots.plot_normalization_axes(figures_dir=tmp_path, groups=4, channels=6)


# Per-seed factors of the landscape quantities, so far apart that the mean minus one sd is
# below zero: an arithmetic band would fall off a log axis.
LANDSCAPE_SEED_SCALES = (0.01, 1.0, 30.0)


def write_spread_landscape(results_dir, batch_size=32):
    """Landscape runs of BN, GN and no normalization whose quantities differ by
    `LANDSCAPE_SEED_SCALES` from seed to seed."""
    for norm in factory.LANDSCAPE_FACTOR:
        for seed, scale in enumerate(LANDSCAPE_SEED_SCALES):
            config = factory.make_config(
                "landscape",
                norm,
                batch_size,
                seed=seed,
                dataset=DATASET,
                profile=PROFILE,
                landscape_probes=factory.PROBES_PER_EPOCH,
            )
            run_dir = factory.write_run(results_dir, config, factory.curve(61.0, factory.EPOCHS))
            steps = config.classes * config.images_per_class // batch_size
            rows = [
                dict(
                    row,
                    loss=3.0 + scale * (row["loss"] - 3.0),
                    gradient_norm=scale * row["gradient_norm"],
                    gradient_distance=scale * row["gradient_distance"],
                )
                for row in factory.landscape_rows(norm, 0, factory.EPOCHS, steps)
            ]
            plots_runs.write_measurements(run_dir, "landscape.csv", rows)
    return results_dir


def test_landscape_bands_stay_positive_on_the_log_axes(tmp_path):
    from utils.experiments.understanding_gn import figures as understanding_plots

    scales = np.array(LANDSCAPE_SEED_SCALES)
    assert scales.mean() - scales.std(ddof=1) < 0, "the seeds must spread wider than their mean"
    results_dir = write_spread_landscape(tmp_path / "results")
    figure = understanding_plots.plot_landscape(results_dir, figures_dir=tmp_path / "figures")
    assert_png(tmp_path / "figures" / "landscape.png")
    drawn = [axis for axis in figure.axes if axis.lines]
    assert len(drawn) == 4  # batch 32 only: the batch-2 row has no runs
    for axis in figure.axes:
        assert axis.get_yscale() == "log"
        for band in bands(axis).values():
            heights = band.get_paths()[0].vertices[:, 1]
            assert np.all(np.isfinite(heights)) and heights.min() > 0
    # The gradient norm of every probe is the seed's scale: the line is their geometric
    # mean, the band that ×/÷ exp(sd of the logs).
    (gradient_axis,) = [
        axis for axis in figure.axes if axis.get_title() == "gradient norm (l2), batch 32"
    ]
    centre = np.exp(np.log(scales).mean())
    factor = np.exp(np.log(scales).std(ddof=1))
    line = gradient_axis.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), centre)
    low, high = band_at(bands(gradient_axis)[plots.NORM_COLORS["batch"]], line.get_xdata()[0])
    assert low == pytest.approx(centre / factor) and high == pytest.approx(centre * factor)
    assert "geometric" in figure.axes[0].get_ylabel() and "geometric sd" in figure_text(figure)


@pytest.fixture(scope="module")
def ablation_runs(tmp_path_factory):
    return results.load_runs(factory.make_ablation_results(tmp_path_factory.mktemp("ablations")))


def test_group_ablation_gives_g_and_channels_per_group_their_own_axes(ablation_runs, tmp_path):
    from utils.experiments.beyond_the_paper import figures as ablation_plots
    from utils.experiments.beyond_the_paper.group_ablation import SIZES

    figure = ablation_plots.plot_group_ablation(ablation_runs, figures_dir=tmp_path)
    ours_axis, paper_axis = figure.axes
    for axis, (group_series, channel_series) in (
        (ours_axis, ("G", "C/G")),
        (paper_axis, ("G (paper)", "C/G (paper)")),
    ):
        assert axis.get_xlabel().startswith("groups G")
        (top,) = axis.child_axes
        assert top.get_xlabel().startswith("channels per group C/G")
        left, right = axis.get_xlim()
        assert left < right
        lines = {line.get_label(): line for line in axis.get_lines()}
        lines.update({container.get_label(): container.lines[0] for container in axis.containers})

        def display_x(panel, positions):
            """Where on the figure (pixels from the left) the x values of `panel` fall."""
            positions = np.asarray(positions, dtype=float)
            return panel.transData.transform(np.column_stack([positions, np.ones(len(positions))]))[
                :, 0
            ]

        groups = dict(zip(SIZES, display_x(axis, lines[group_series].get_xdata())))
        channels = dict(zip(SIZES, display_x(axis, lines[channel_series].get_xdata())))
        # Both run from LN-like on the left (G = 1, C/G = 64) to IN-like on the right.
        assert sorted(groups, key=groups.get) == sorted(SIZES)
        assert sorted(channels, key=channels.get) == sorted(SIZES, reverse=True)
        # Each series sits at the tick of its own axis: G at the bottom, C/G at the top.
        bottom_values = [float(label.get_text()) for label in axis.get_xticklabels()]
        bottom = dict(zip(bottom_values, display_x(axis, axis.get_xticks())))
        top_values = [float(label.get_text()) for label in top.get_xticklabels()]
        top_ticks = dict(zip(top_values, display_x(top, top.get_xticks())))
        assert sorted(bottom) == sorted(top_ticks) == sorted(SIZES)
        shift = (
            0.1 * figure.dpi
        )  # our two series sit a few pixels apart, so as not to hide each other
        for size in SIZES:
            assert groups[size] == pytest.approx(bottom[size], abs=shift)
            assert channels[size] == pytest.approx(top_ticks[size], abs=shift)


def test_the_batch_size_panels_span_as_many_points_as_each_other(results_dir, tmp_path):
    figure = plots.plot_batch_size_sensitivity(results_dir, figures_dir=tmp_path)
    ours_axis, paper_axis = figure.axes[:2]
    (ours_low, ours_high), (paper_low, paper_high) = ours_axis.get_ylim(), paper_axis.get_ylim()
    assert paper_high - paper_low == pytest.approx(ours_high - ours_low)
    assert f"y axis: {ours_high - ours_low:.1f} points, as in ours" in paper_axis.get_title()


def test_paper_panels_span_as_many_points_as_ours(ablation_runs, tmp_path):
    from utils.experiments.beyond_the_paper import figures as ablation_plots

    for plot in (
        ablation_plots.plot_group_ablation,
        ablation_plots.plot_batch_renorm,
        ablation_plots.plot_weight_standardization,
    ):
        figure = plot(ablation_runs, figures_dir=tmp_path)
        ours_axis, paper_axis = figure.axes[:2]
        ours_low, ours_high = ours_axis.get_ylim()
        paper_low, paper_high = paper_axis.get_ylim()
        assert paper_high - paper_low == pytest.approx(ours_high - ours_low)
        published = np.concatenate([line.get_ydata() for line in paper_axis.get_lines()])
        # Centred on the paper's own numbers, and all of them inside the panel.
        assert (paper_low + paper_high) / 2 == pytest.approx(
            (published.min() + published.max()) / 2
        )
        assert paper_low < published.min() and published.max() < paper_high
        ours = np.concatenate(
            [container.lines[0].get_ydata() for container in ours_axis.containers]
        )
        ours = ours[np.isfinite(ours)]
        assert ours_low < ours.min() and ours.max() < ours_high
        assert f"y axis: {ours_high - ours_low:.1f} points, as in ours" in paper_axis.get_title()
        # Every published number is written beside its point, none on top of another.
        labels = [text.get_position()[1] for text in paper_axis.texts]
        assert len(labels) == len(paper_axis.texts) and len(set(np.round(labels, 6))) == len(labels)


def test_recipe_sweep_keeps_every_collapsed_point_in_sight(tmp_path):
    # At 0.03 BN diverges and LN, IN and GN all stay at chance, ending at the same error.
    finals = {norm: dict(by_rate) for norm, by_rate in RECIPE_FINALS.items()}
    for norm in ("layer", "instance", "group"):
        finals[norm][0.03] = "flat"
    results_dir = write_recipe_sweep(tmp_path / "results", finals)
    figure = plots.plot_recipe_sweep(results_dir, figures_dir=tmp_path / "figures")
    (axis,) = figure.axes
    hollow = [line for line in axis.get_lines() if line.get_markerfacecolor() == "white"]
    places = [(float(line.get_xdata()[0]), float(line.get_ydata()[0])) for line in hollow]
    # IN at 0.01, BN's diverged mark at 0.03, and LN, IN, GN at 0.03.
    assert len(places) == 5 and len(set(places)) == 5
    at_chance = {
        matplotlib.colors.to_hex(line.get_color()): (
            float(line.get_xdata()[0]),
            float(line.get_ydata()[0]),
        )
        for line in hollow
        if line.get_xdata()[0] == pytest.approx(0.03, rel=0.2)
        and line.get_ydata()[0] == pytest.approx(99.0)
    }
    assert set(at_chance) == {plots.NORM_COLORS[norm] for norm in ("layer", "instance", "group")}
    # Each normalization's line runs through its own collapsed point.
    for norm in ("layer", "instance", "group"):
        (line,) = [
            line
            for line in axis.get_lines()
            if line.get_label() == plots.NORM_NAMES[norm] + f" ({plots.paper.NORM_LABELS[norm]})"
        ]
        assert at_chance[plots.NORM_COLORS[norm]] in set(zip(line.get_xdata(), line.get_ydata()))
    assert "spread sideways" in legend_text(axis)


def test_distortion_draws_a_chance_line(tmp_path):
    from utils.experiments.understanding_gn import figures as understanding_plots

    results_dir = tmp_path / "results"
    for (norm, condition), finals in factory.DISTORTION_FINAL.items():
        for seed, final in enumerate(finals):
            config = factory.make_config(
                "distortion",
                norm,
                32,
                seed=seed,
                dataset=DATASET,
                profile=PROFILE,
                **factory.DISTORTION_FIELDS[condition],
            )
            factory.write_run(results_dir, config, factory.curve(final, factory.EPOCHS))
    figure = understanding_plots.plot_distortion(results_dir, figures_dir=tmp_path / "figures")
    (axis,) = figure.axes
    chance = 100.0 * (1 - 1 / factory.CLASSES)
    (line,) = [line for line in axis.get_lines() if line.get_label().startswith("chance")]
    assert list(line.get_ydata()) == [chance, chance] and line.get_linestyle() == "--"
    assert axis.get_ylim()[1] >= chance
    assert "chance (90.0%)" in legend_entries(axis)
