"""utils.plots: every figure is written, titled with dataset and profile, and shows run status."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests import results_factory as factory  # noqa: E402
from utils import plots, results  # noqa: E402

DATASET = "tiny-imagenet-200"
PROFILE = "cpu"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def fast_figures(monkeypatch):
    # A low resolution keeps the suite fast; the drawing code is the same at any dpi.
    monkeypatch.setattr(plots, "DPI", 40)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return factory.make_results(tmp_path_factory.mktemp("results"), dataset=DATASET, profile=PROFILE)


@pytest.fixture(scope="module")
def frames(results_dir):
    runs = results.load_runs(results_dir)
    return runs, results.load_histories(runs=runs)


def assert_png(path):
    assert path.exists(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 2_000


def assert_titled(figure):
    title = figure._suptitle.get_text()
    assert DATASET in title and PROFILE in title, title


def data_axes(figure):
    return [axis for axis in figure.axes if axis.has_data()]


def assert_labelled(figure, x_unit, y_unit):
    axes = data_axes(figure)
    assert len(axes) == 2
    for axis in axes:
        assert x_unit in axis.get_xlabel()
        assert y_unit in axis.get_ylabel()
        assert axis.get_title()
        assert axis.get_legend() is not None


def legend_text(axis):
    return "\n".join(text.get_text() for text in axis.get_legend().get_texts())


def test_norm_comparison(results_dir, tmp_path):
    figure = plots.plot_norm_comparison(results_dir, figures_dir=tmp_path)
    assert_png(tmp_path / "norm_comparison.png")
    assert_titled(figure)
    assert_labelled(figure, "epoch", "error (%)")
    train_axis, val_axis = figure.axes
    assert "LN: n/a [missing]" in legend_text(train_axis)
    assert "paper 24.1%" in legend_text(val_axis)
    colors = {matplotlib.colors.to_hex(line.get_color()) for line in val_axis.get_lines()}
    assert colors == {plots.NORM_COLORS[norm] for norm in ("batch", "instance", "group")}


def test_batch_size_curves_show_partial_missing_and_diverged(frames, tmp_path):
    runs, histories = frames
    figure = plots.plot_batch_size_curves(runs, histories=histories, figures_dir=tmp_path)
    assert_png(tmp_path / "batch_size_curves.png")
    assert_titled(figure)
    assert_labelled(figure, "epoch", "error (%)")
    bn_axis, gn_axis = figure.axes
    assert bn_axis.get_shared_y_axes().joined(bn_axis, gn_axis)
    assert "diverged at epoch 4" in legend_text(bn_axis)
    assert "paper 34.7%" in legend_text(bn_axis)
    gn_legend = legend_text(gn_axis)
    assert "partial (3/10 epochs)" in gn_legend and "batch 4: ours n/a, paper 24.2% [missing]" in gn_legend


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
    assert "diverged at epoch 4" in texts and "missing" in texts and "partial (3/10 epochs)" in texts


def test_figures_work_without_any_runs(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    figures = [plot(empty, figures_dir=tmp_path / "figures", dataset=DATASET, profile=PROFILE)
               for plot in (plots.plot_norm_comparison, plots.plot_batch_size_curves,
                            plots.plot_batch_size_sensitivity)]
    for figure in figures:
        assert_titled(figure)
    assert len(list((tmp_path / "figures").glob("*.png"))) == 3
    assert "BN: n/a [missing]" in legend_text(figures[0].axes[0])
    assert "batch 2: ours n/a, paper 24.1% [missing]" in legend_text(figures[1].axes[1])
    assert "GN batch 4: missing" in figures[2].texts[0].get_text()


def test_sample_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    labels = np.arange(10) % 3
    class_names = [("n01443537", "goldfish, Carassius auratus"), ("n01629819", "salamander"), ("n0", "frog")]
    figure = plots.plot_sample_images(images, labels, class_names, figures_dir=tmp_path, columns=5,
                                      dataset=DATASET, profile=PROFILE)
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
    assert [title.split("\n")[0] for title in titles] == ["Batch Norm", "Layer Norm", "Instance Norm", "Group Norm"]
    shaded = [sum(patch.get_facecolor() != matplotlib.colors.to_rgba("white") for patch in axis.patches)
              for axis in figure.axes]
    # BN shades a whole channel slice, LN a whole sample, IN one (sample, channel), GN a group.
    assert shaded[0] > shaded[3] > shaded[2] and shaded[1] > shaded[3]
    with pytest.raises(ValueError, match="divide"):
        plots.plot_normalization_axes(figures_dir=tmp_path, groups=4, channels=6)
