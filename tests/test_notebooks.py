"""The notebooks run top to bottom and write their figures; finished runs are read back,
not trained again; main.ipynb runs without the data when every run is finished.

The notebooks execute with nbclient in the smoke profile (synthetic data), against
temporary results, figures and data folders shared by the notebook tests, so the
engine's cache is exercised: the sweep reuses the comparison's batch-32 runs and
main.ipynb trains nothing. utils.notebook, which all notebooks share, is tested directly.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import results_factory
from tests.checks import assert_png
from utils import notebook
from utils import results as results_module
from utils.experiments import depth as depth_experiment
from utils.profiles import profile_configs
from utils.data_sources import TINY_IMAGENET_URL
from utils.synthetic import make_synthetic_tiny_imagenet

ROOT = notebook.REPOSITORY_ROOT
NOTEBOOKS = {
    "layers": ROOT / "notebooks" / "01_normalization_layers.ipynb",
    "comparison": ROOT / "notebooks" / "02_norm_comparison.ipynb",
    "sweep": ROOT / "notebooks" / "03_batch_size_sweep.ipynb",
    "beyond": ROOT / "notebooks" / "04_beyond_the_paper.ipynb",
    "understanding": ROOT / "notebooks" / "05_understanding_gn.ipynb",
    "depth": ROOT / "notebooks" / "06_depth.ipynb",
    "main": ROOT / "main.ipynb",
}
CELL_TIMEOUT = 300
# Variables a notebook reads; each test sets the ones it needs and removes the others.
NOTEBOOK_VARIABLES = (
    "GN_PROFILE",
    "GN_RESULTS_DIR",
    "GN_FIGURES_DIR",
    "GN_SYNTHETIC_DIR",
    "GN_VERBOSE",
    "GN_SEEDS",
    "GN_WORKERS",
    "GN_TRAIN",
    "TINY_IMAGENET_DIR",
)
# Any download attempt fails at once instead of waiting on the network.
NO_NETWORK = {
    name: "http://127.0.0.1:9"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")
}


@contextlib.contextmanager
def environment(**variables):
    """Sets (or, for None, removes) environment variables; the kernel inherits them."""
    saved = dict(os.environ)
    try:
        for name in NOTEBOOK_VARIABLES:
            os.environ.pop(name, None)
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = str(value)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """A "python3" kernel spec running this interpreter, put first on JUPYTER_PATH, so the
    notebooks run in this environment whatever other kernels are installed."""
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3",
                "language": "python",
            }
        )
    )
    return folder


def execute(book, folder, kernels, **variables):
    """Runs every cell of `book` in `folder`; raises CellExecutionError if a cell raises."""
    from nbclient import NotebookClient

    with environment(JUPYTER_PATH=kernels, **variables):
        client = NotebookClient(
            book,
            kernel_name="python3",
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute()
    return book


def run_notebook(name, kernels, **variables):
    """Executes one of the project's notebooks; returns all its text output."""
    import nbformat

    path = NOTEBOOKS[name]
    book = execute(nbformat.read(path, as_version=4), path.parent, kernels, **variables)
    return output_text(book)


def output_text(book):
    pieces = []
    for cell in book.cells:
        previous = None
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                # The kernel may send one printed line in two stream messages (when, depends
                # on timing): a cell's stream is read as one text.
                if previous is not None and previous.output_type == "stream":
                    pieces[-1] += output.text
                else:
                    pieces.append(output.text)
            elif "data" in output:
                # A table is shown as markdown (utils.notebook.show_table), the rest as text.
                pieces.append(output.data.get("text/markdown", output.data.get("text/plain", "")))
            previous = output
    return "\n".join(pieces)


def write_finished_runs(configs, results_dir):
    """Writes a finished run for each config, as the engine writes it (no training)."""
    for number, config in enumerate(configs):
        final = 50.0 + number % 5
        results_factory.write_run(results_dir, config, results_factory.curve(final, config.epochs))


# ----------------------------------------------------------------- the notebooks


@pytest.mark.slow
def test_a_cell_that_raises_fails_the_execution(kernels, tmp_path):
    from nbclient.exceptions import CellExecutionError
    from nbformat.v4 import new_code_cell, new_notebook

    book = new_notebook(
        cells=[
            new_code_cell("import sys\nprint(sys.executable)"),
            new_code_cell("raise ValueError('this cell fails')"),
        ]
    )
    with pytest.raises(CellExecutionError, match="this cell fails"):
        execute(book, tmp_path, kernels)
    # The kernel was this environment's interpreter.
    assert Path(book.cells[0].outputs[0].text.strip()) == Path(sys.executable)


@pytest.mark.slow
def test_layers_notebook(kernels, tmp_path):
    text = run_notebook("layers", kernels, GN_FIGURES_DIR=tmp_path)
    # The notebook asserts the values itself; here: it printed its tables and drew the figure.
    assert "max |layer - NumPy|" in text
    assert "fast kernel vs Figure 3 code" in text and "x = ops.reshape" in text
    assert "GN, G=1 vs LN" in text and "GN, G=C=4 vs IN" in text
    assert "depends on the other samples" in text
    assert (
        "same outputs: True" in text and "'groups': 4" in text
    )  # a model with the layers saved and loaded
    assert_drawn_png(tmp_path / "normalization_axes.png")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kernels):
    """02, 03, main.ipynb, 04, 05 and 06 run in that order on one results folder (smoke profile)."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("results", "figures", "synthetic")}
    variables = dict(
        GN_PROFILE="smoke",
        GN_RESULTS_DIR=folders["results"],
        GN_FIGURES_DIR=folders["figures"],
        GN_SYNTHETIC_DIR=folders["synthetic"],
    )
    texts = {
        name: run_notebook(name, kernels, **variables)
        for name in ("comparison", "sweep", "main", "beyond", "understanding", "depth")
    }
    return folders, texts


def training(config):
    """A config's training settings, as a key: equal keys train alike (one run reuses the other)."""
    return json.dumps(config.training_settings(), sort_keys=True, default=str)


def lesson_plan(experiment, earlier, **lesson_fields):
    """What a lesson notebook's grid prints and trains, from the registry: the lesson
    first trains the first config of `experiment` with `lesson_fields`, then runs the grid
    on a results folder holding the runs of the `earlier` experiments.

    Returns:
        dict(runs, ready, to_train, epochs): the grid's size, how many of its runs are
        finished or reusable, how many it trains, and how many trainings print "Epoch
        1/2" (the lesson's and the grid's new ones).
    """
    configs = profile_configs("smoke", experiment)
    lesson = next(
        c for c in configs if all(getattr(c, key) == value for key, value in lesson_fields.items())
    )
    finished = {training(c) for name in earlier for c in profile_configs("smoke", name)} | {
        training(lesson)
    }
    ready = sum(training(c) in finished for c in configs)
    new = {training(c) for c in configs} - finished
    return dict(runs=len(configs), ready=ready, to_train=len(configs) - ready, epochs=1 + len(new))


def reused_from(folders, experiment, run):
    """The run a finished run folder was copied from (None when it was trained)."""
    return json.loads((folders["results"] / experiment / run / "summary.json").read_text())[
        "reused_from"
    ]


@pytest.mark.slow
def test_comparison_notebook_trains_the_four_norms(smoke):
    folders, texts = smoke
    text = texts["comparison"]
    # The lesson trains the GN run itself, then the grid trains the three others.
    plan = lesson_plan("norm_comparison", (), norm="group")
    assert (
        f"{plan['runs']} runs; {plan['ready']} finished or reusable" in text
        and f"{plan['to_train']} to train" in text
    )
    assert text.count("Epoch 1/2") == plan["epochs"] == 4
    assert "Total params" in text  # the model summary
    # The lesson's run, trained here, keeps its model; loaded, it gives history.csv's last error.
    loaded, history = re.search(
        r"loaded model's validation error: ([\d.]+) % \(last epoch in history.csv: ([\d.]+) %", text
    ).groups()
    assert loaded == history
    assert "gn_g32_bs32_seed0" in text and "base_learning_rate" in text  # the config
    for run in ("bn_bs32_seed0", "ln_bs32_seed0", "in_bs32_seed0", "gn_g32_bs32_seed0"):
        summary = json.loads(
            (folders["results"] / "norm_comparison" / run / "summary.json").read_text()
        )
        assert summary["status"] == "complete"
        assert summary["profile"] == "smoke"
    assert "| norm | ours val error (%)" in text  # Table 1 as markdown
    assert "profile smoke" in text
    assert_drawn_png(folders["figures"] / "norm_comparison.png")


@pytest.mark.slow
def test_sweep_notebook_reuses_the_batch_32_runs(smoke):
    folders, texts = smoke
    text = texts["sweep"]
    for run in ("bn_bs32_seed0", "gn_g32_bs32_seed0"):
        assert reused_from(folders, "batch_size_sweep", run) == f"norm_comparison/{run}"
    plan = lesson_plan("batch_size_sweep", ("norm_comparison",), norm="batch", batch_size=2)
    assert (
        f"{plan['runs']} runs; {plan['ready']} finished or reusable" in text
    )  # after the lesson's own run
    assert text.count("Epoch 1/2") == plan["epochs"]
    assert "steps of 2 images per epoch" in text
    assert "| batch size | BN | LN | IN | GN | GN minus BN |" in text  # Table 2 as markdown
    assert_drawn_png(folders["figures"] / "batch_size_curves.png")
    assert_drawn_png(folders["figures"] / "batch_size_sensitivity.png")


@pytest.mark.slow
def test_main_notebook_reads_the_finished_runs(smoke):
    folders, texts = smoke
    text = texts["main"]
    # The recipe sweep is trained first (its runs at the study's settings reused), then
    # the study's 24 runs are all read back.
    sweep = folders["results"] / "recipe_sweep"
    trained = [
        run for run in sweep.iterdir() if reused_from(folders, "recipe_sweep", run.name) is None
    ]
    assert text.count("Epoch 1/2") == len(trained) and 0 < len(trained) < 20
    study = len(profile_configs("smoke", "study"))
    assert f"{len(profile_configs('smoke', 'recipe_sweep'))} runs; " in text
    assert f"{study} runs; {study} finished or reusable" in text
    assert "synthetic-tiny-imagenet: 4 classes, 64 training images" in text
    assert "At batch 32, GN minus BN val error: ours" in text  # conclusions, computed
    assert "report val loss" in text
    for name in (
        "sample_images",
        "normalization_axes",
        "norm_comparison",
        "batch_size_curves",
        "batch_size_sensitivity",
    ):
        assert_drawn_png(folders["figures"] / f"{name}.png")


@pytest.mark.slow
def test_beyond_notebook_trains_the_new_runs_and_reuses_the_study(smoke):
    folders, texts = smoke
    text = texts["beyond"]
    assert "on 64 channels: 4 groups" in text and "max |GN(G=1) - LN| = 0.0" in text
    assert "'rmin': 0.6666666666666666, 'rmax': 1.5, 'dmax': 0.5" in text
    assert "gn_g32_ws_bs2_seed0 - WeightStandardizedConv2D" in text
    plan = lesson_plan(
        "beyond_the_paper",
        ("study", "recipe_sweep"),
        norm="group",
        weight_standardization=True,
        batch_size=2,
    )
    assert (
        f"{plan['runs']} runs; {plan['ready']} finished or reusable" in text
        and f"{plan['to_train']} to train" in text
    )
    assert text.count("Epoch 1/2") == plan["epochs"]
    assert (
        reused_from(folders, "group_ablation", "ln_bs32_seed0") == "norm_comparison/ln_bs32_seed0"
    )
    assert reused_from(folders, "batch_renorm", "bn_bs2_seed0") == "batch_size_sweep/bn_bs2_seed0"
    assert "| size | G: ours |" in text and "| batch size | BN | BRN | GN |" in text
    assert "Batch 4: BRN minus BN" in text
    for name in ("group_ablation", "batch_renorm", "weight_standardization"):
        assert_drawn_png(folders["figures"] / f"{name}.png")


@pytest.mark.slow
def test_understanding_notebook_probes_distorts_and_mixes(smoke):
    folders, texts = smoke
    text = texts["understanding"]
    assert "beta-smoothness: " in text and "analytic |A g| / |g|" in text
    assert "s at the start: 0.731" in text
    plan = lesson_plan(
        "understanding_gn",
        ("study", "recipe_sweep", "beyond_the_paper"),
        norm="gn_plus_gn_first",
        batch_size=2,
    )
    assert (
        f"{plan['runs']} runs; {plan['ready']} finished or reusable" in text
        and f"{plan['to_train']} to train" in text
    )
    assert text.count("Epoch 1/2") == plan["epochs"]
    assert (
        reused_from(folders, "distortion", "gn_g32_bs32_seed0")
        == "norm_comparison/gn_g32_bs32_seed0"
    )
    assert "| norm | recipe | noise | no weight decay |" in text
    assert "Claim: GN smooths the loss landscape less than BN" in text
    probes = folders["results"] / "landscape" / "gn_g32_bs2_probes20_seed0" / "landscape.csv"
    assert probes.exists() and len(probes.read_text().splitlines()) > 20
    assert (folders["results"] / "mixtures" / "gnbn_bn_first_g32_bs8_seed0" / "mixing.csv").exists()
    for name in ("landscape", "distortion", "mixtures"):
        assert_drawn_png(folders["figures"] / f"{name}.png")


@pytest.mark.slow
def test_depth_notebook_trains_the_sweep_then_the_grid_at_the_chosen_rates(smoke):
    folders, texts = smoke
    text = texts["depth"]
    results_dir = folders["results"]
    assert "Total params" in text and 'Model: "resnet10_gn"' in text  # the model summary
    # The sweep: BN and GN at the four base rates, none reusable, all trained.
    sweep = profile_configs("smoke", "depth_sweep")
    assert f"{len(sweep)} runs; 0 finished or reusable" in text and f"{len(sweep)} to train" in text
    for config in sweep:
        run = results_dir / "depth_sweep" / config.run_name
        assert json.loads((run / "summary.json").read_text())["status"] == "complete"
        assert json.loads((run / "config.json").read_text())["model"] == "resnet10"
    # The rate table is the rule's, read from the runs, printed as markdown.
    assert "| method |" in text
    assert results_module.to_markdown(depth_experiment.rate_table(results_dir)) in text
    # On the smoke data the rule chooses a rate for BN and GN (the runs are seeded): the
    # grid's runs join it at those rates (LN and IN at their own once chosen, else at
    # GN's), the batch-32 runs at a swept rate reused from the sweep and the others trained.
    chosen = depth_experiment.RULE.chosen_rates(results_dir, (0,))
    assert {"BN", "GN"} <= set(chosen)
    grid = profile_configs("smoke", "depth_grid", results_dir=results_dir)
    swept = {training(config) for config in sweep}
    new = [config for config in grid if training(config) not in swept]
    assert len(grid) == 10 and 6 <= len(new) <= 8
    assert f"{len(grid)} runs in the grid" in text
    assert (
        f"{len(grid)} runs; {len(grid) - len(new)} finished or reusable" in text
        and f"{len(new)} to train" in text
    )
    assert text.count("Epoch 1/2") == len(sweep) + len(new)
    methods = {"batch": "BN", "group": "GN", "layer": "LN", "instance": "IN"}
    for config in grid:
        rate = chosen.get(methods[config.norm], chosen["GN"])
        assert config.base_learning_rate == rate and config.model == "resnet10"
        assert (
            json.loads((results_dir / "depth_grid" / config.run_name / "summary.json").read_text())[
                "status"
            ]
            == "complete"
        )
    reused = [config.run_name for config in grid if config not in new]
    assert {
        config.run_name
        for config in grid
        if config.batch_size == 32
        and (config.norm == "batch" or (config.norm == "group" and config.groups == 32))
    } <= set(reused)
    for run in reused:
        assert reused_from(folders, "depth_grid", run) == f"depth_sweep/{run}"
    # The results, beside the small CNN's (the study's runs, trained by the notebooks before).
    assert (
        "| norm | ResNet-10 val error |" in text and "| batch size | BN | BN train | GN |" in text
    )
    assert (
        "Batch 32, GN minus BN training error: ResNet-10 " in text
        and "the paper's Figure 4: GN lower" in text
    )
    # Every ResNet-10 and study-regime small-CNN difference has a number (the small CNN's
    # 30-epoch runs belong to the fair comparison, which no notebook here trains).
    assert "ResNet-10 n/a" not in text and "small CNN n/a" not in text
    for name in ("depth_comparison", "depth_batch_sizes"):
        assert_drawn_png(folders["figures"] / f"{name}.png")


@pytest.mark.slow
def test_notebooks_only_read_with_gn_train_0(kernels, tmp_path):
    text = run_notebook(
        "beyond",
        kernels,
        GN_PROFILE="smoke",
        GN_RESULTS_DIR=tmp_path / "results",
        GN_FIGURES_DIR=tmp_path / "figures",
        GN_SYNTHETIC_DIR=tmp_path / "synthetic",
        GN_TRAIN=0,
    )
    assert "Epoch " not in text and "not trained (GN_TRAIN=0)" in text
    assert not (tmp_path / "results").exists() or not any(
        (tmp_path / "results").glob("*/*/summary.json")
    )


@pytest.mark.slow
def test_main_notebook_without_the_data(kernels, tmp_path):
    """Real-data profile, every run finished, no copy of the data and no network: the data
    cell says how to get the data, nothing is downloaded, and the study completes."""
    results_dir, figures_dir, home = tmp_path / "results", tmp_path / "figures", tmp_path / "home"
    home.mkdir()
    recipe_sweep, study = profile_configs("cpu", "recipe_sweep"), profile_configs("cpu")
    write_finished_runs(recipe_sweep + study, results_dir)
    text = run_notebook(
        "main",
        kernels,
        GN_PROFILE="cpu",
        GN_RESULTS_DIR=results_dir,
        GN_FIGURES_DIR=figures_dir,
        HOME=home,
        KERAS_HOME=home / ".keras",
        TINY_IMAGENET_DIR=None,
        **NO_NETWORK,
    )
    assert "The data is not available" in text
    assert TINY_IMAGENET_URL in text and "TINY_IMAGENET_DIR" in text
    assert "Downloading" not in text and "Epoch " not in text
    # Every run was read back from disk; none needed the data.
    assert f"{len(recipe_sweep)} read back." in text and f"{len(study)} read back." in text
    assert "not trained" not in text
    assert not (home / ".keras" / "datasets").exists() or not any(
        (home / ".keras" / "datasets").iterdir()
    )
    assert "dataset tiny-imagenet-200, profile cpu" in text
    assert not (figures_dir / "sample_images.png").exists()
    for name in ("norm_comparison", "batch_size_curves", "batch_size_sensitivity"):
        assert_drawn_png(figures_dir / f"{name}.png")


# ------------------------------------------------------------- utils.notebook


def test_settings_default_to_folders_at_the_repository_root():
    settings = notebook.read_settings({})
    assert settings.profile == "cpu" and settings.verbose == 2
    assert settings.results_dir == ROOT / "results"
    assert settings.figures_dir == ROOT / "figures"
    assert settings.synthetic_dir == ROOT / "data"


def test_seeds_and_workers_settings_shape_the_grid():
    settings = notebook.read_settings({"GN_SEEDS": "0", "GN_WORKERS": "1"})
    assert settings.seeds == (0,) and settings.workers == 1
    configs = notebook.profile_configs(settings)
    assert {config.seed for config in configs} == {0}
    assert {config.seed for config in notebook.profile_configs(notebook.read_settings({}))} == {
        0,
        1,
        2,
    }


def test_settings_resolve_relative_paths_from_the_repository_root(tmp_path):
    settings = notebook.read_settings(
        {
            "GN_PROFILE": "smoke",
            "GN_RESULTS_DIR": "results-smoke",
            "GN_FIGURES_DIR": str(tmp_path),
            "GN_VERBOSE": "1",
        }
    )
    assert settings.profile == "smoke" and settings.verbose == 1
    assert settings.results_dir == ROOT / "results-smoke"
    assert settings.figures_dir == tmp_path


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"GN_PROFILE": "fast"}, "GN_PROFILE='fast' is not a profile"),
        ({"GN_VERBOSE": "3"}, "GN_VERBOSE='3' must be 0, 1 or 2"),
        ({"GN_SEEDS": "0,one"}, "GN_SEEDS='0,one' must be comma-separated integers"),
        ({"GN_WORKERS": "0"}, "GN_WORKERS='0' must be an integer >= 1"),
        ({"GN_TRAIN": "no"}, "GN_TRAIN=.no. must be 1"),
    ],
)
def test_settings_reject_bad_values(variables, message):
    with pytest.raises(ValueError, match=message):
        notebook.read_settings(variables)


def test_find_data_without_a_copy_says_how_to_get_it(tmp_path):
    with environment(KERAS_HOME=tmp_path / ".keras", **NO_NETWORK):
        data = notebook.find_data(notebook.read_settings({"GN_PROFILE": "cpu"}))
    assert not data.available
    assert data.dataset == "tiny-imagenet-200"
    assert "The data is not available" in data.message
    assert TINY_IMAGENET_URL in data.message and "TINY_IMAGENET_DIR" in data.message
    # A run that needs images fails at once on this path instead of downloading.
    assert data.data_dir == tmp_path / ".keras" / "datasets" / "tiny-imagenet-200"
    assert not data.data_dir.exists()


def test_find_data_with_a_missing_folder_names_it(tmp_path):
    missing = tmp_path / "nowhere"
    with environment(KERAS_HOME=tmp_path / ".keras", TINY_IMAGENET_DIR=missing):
        data = notebook.find_data(notebook.read_settings({"GN_PROFILE": "cpu"}))
    assert not data.available
    assert str(missing) in data.message and TINY_IMAGENET_URL in data.message
    assert data.data_dir == missing


def test_find_data_uses_tiny_imagenet_dir(tmp_path):
    folder = make_synthetic_tiny_imagenet(tmp_path, classes=2, images_per_class=1, val_per_class=1)
    with environment(KERAS_HOME=tmp_path / ".keras", TINY_IMAGENET_DIR=folder):
        data = notebook.find_data(notebook.read_settings({"GN_PROFILE": "cpu"}))
    assert data.available and data.data_dir == folder
    # The line the saved notebooks show names where it came from, not the machine's path.
    assert (
        data.message == "Tiny ImageNet-200 found (from TINY_IMAGENET_DIR)."
        and str(tmp_path) not in data.message
    )


def test_find_data_of_the_smoke_profile_is_the_synthetic_folder(tmp_path):
    data = notebook.find_data(
        notebook.read_settings({"GN_PROFILE": "smoke", "GN_SYNTHETIC_DIR": str(tmp_path)})
    )
    assert (
        data.available and data.dataset == "synthetic-tiny-imagenet" and data.data_dir == tmp_path
    )


def test_show_data_without_the_data_prints_and_draws_nothing(tmp_path, capsys):
    settings = notebook.read_settings({"GN_PROFILE": "cpu", "GN_FIGURES_DIR": str(tmp_path)})
    data = notebook.DataStatus(
        "tiny-imagenet-200", False, tmp_path / "nowhere", "The data is not available. Why."
    )
    assert notebook.show_data(settings, data) is None
    assert "The data is not available. Why." in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_display_path_hides_the_machines_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert notebook.display_path(ROOT / "results" / "norm_comparison") == "results/norm_comparison"
    assert notebook.display_path(ROOT / "notebooks" / ".." / "results") == "results"
    assert notebook.display_path(ROOT.parent / "shared" / "data") == "../shared/data"
    assert notebook.display_path(tmp_path / ".keras" / "datasets") == "~/.keras/datasets"
    assert notebook.display_path("/opt/elsewhere/data/tiny.tar.gz") == ".../data/tiny.tar.gz"


# Machine noise that must not be saved in a committed notebook: absolute paths of the
# machine that ran it, TensorFlow's C++ log lines, terminal escape codes.
NOISE = {
    "an absolute path": re.compile(r"(?<![\w.~])/(?:root|home|tmp|work|Users|var|opt)/"),
    "a TensorFlow C++ log line": re.compile(
        r"absl::InitializeLog|^[IWEF]\d{4} \d\d:\d\d:\d\d|\w+\.cc:\d+\]", re.M
    ),
    "a terminal escape code": re.compile("\x1b\\["),
}


def joined_lines(text):
    """A notebook's multi-line string, which its JSON may store as a list of lines."""
    return "".join(text) if isinstance(text, list) else text


# Read as JSON, not with nbformat: importing nbformat (and jsonschema) costs seconds of every
# test session, and only the slow tests execute notebooks.
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebook_outputs_are_clean(name):
    book = json.loads(NOTEBOOKS[name].read_text())
    assert book["nbformat"] == 4, (
        f"{NOTEBOOKS[name].name} is not in the notebook format 4 this test reads"
    )
    for number, cell in enumerate(book["cells"]):
        for output in cell.get("outputs", []):
            text = joined_lines(output.get("text", "")) + "".join(
                joined_lines(value)
                for key, value in output.get("data", {}).items()
                if key.startswith("text/")
            )
            text += "".join(output.get("traceback", []))
            for what, pattern in NOISE.items():
                match = pattern.search(text)
                assert match is None, (
                    f"{NOTEBOOKS[name].name}, cell {number}: {what}: {match.group(0)!r}"
                )


def test_the_noise_patterns_catch_what_they_are_for():
    samples = {
        "an absolute path": "results:  /root/.keras/datasets",
        "a TensorFlow C++ log line": "E0000 00:00:1795316215.351866    3963 cuda_platform.cc:52] failed call",
        "a terminal escape code": "\x1b[1m 256/2000\x1b[0m",
    }
    for what, text in samples.items():
        assert NOISE[what].search(text), what
    assert not any(
        pattern.search("results:  results/ and ~/.keras/datasets, 3/10 epochs")
        for pattern in NOISE.values()
    )


@pytest.mark.slow
def test_notebook_helpers_start_tensorflow_without_its_log_lines():
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from utils import notebook; print(notebook.hardware()); print(notebook.versions())",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "TensorFlow" in completed.stdout
    assert completed.stderr == ""


def test_read_only_settings_train_nothing_and_say_so(tmp_path, capsys):
    configs = profile_configs("smoke", "norm_comparison")
    write_finished_runs(configs[:1], tmp_path)
    settings = notebook.read_settings(
        {"GN_PROFILE": "smoke", "GN_RESULTS_DIR": str(tmp_path), "GN_TRAIN": "0"}
    )
    assert settings.train is False
    summary = notebook.run_experiment(settings, "norm_comparison")
    out = capsys.readouterr().out
    assert "3 to train (GN_TRAIN=0: none is trained here)" in out
    assert out.count("not trained (GN_TRAIN=0)") == 3
    assert list(summary["status"]) == ["complete", "not trained", "not trained", "not trained"]


def test_a_notebook_prints_what_it_trains_not_every_run_it_reads_back():
    printed = []
    lines = notebook.TrainingLines(printed.append)
    for line in [
        "Training 2 run(s) in 2 processes of 1 thread(s) each.",
        "[worker 1] [1/3] norm_comparison/bn_bs32_seed0: starting",
        "[worker 2] [1/3] norm_comparison/bn_bs32_seed0: skipped, being trained by process 12",
        "[worker 1] 625/625 - 20s - loss: 4.1",
        "[worker 1] [1/3] norm_comparison/bn_bs32_seed0: complete, 2/2 epochs, 10 s",
        "[worker 2] [1/3] norm_comparison/bn_bs32_seed0: complete, 2/2 epochs, 10 s",
        "[1/3] norm_comparison/bn_bs32_seed0: complete, 2/2 epochs, 10 s",
        "[2/3] norm_comparison/gn_g32_bs32_seed0: complete, 2/2 epochs, 10 s",
        "[3/3] norm_comparison/in_bs32_seed0: skipped, being trained by process 99",
        "[3/3] norm_comparison/ln_bs32_seed0: failed after 3 s: OSError: disk full",
    ]:
        lines(line)
    assert printed == [
        "Training 2 run(s) in 2 processes of 1 thread(s) each.",
        "[worker 1] [1/3] norm_comparison/bn_bs32_seed0: starting",
        "[worker 1] 625/625 - 20s - loss: 4.1",
        "[worker 1] [1/3] norm_comparison/bn_bs32_seed0: complete, 2/2 epochs, 10 s",
        "[3/3] norm_comparison/in_bs32_seed0: skipped, being trained by process 99",
        "[3/3] norm_comparison/ln_bs32_seed0: failed after 3 s: OSError: disk full",
    ]


def test_plan_counts_count_each_experiments_runs_by_what_will_be_done(tmp_path):
    configs = profile_configs("smoke", "study")
    comparison = [c for c in configs if c.experiment == "norm_comparison"]
    write_finished_runs(comparison[:2], tmp_path)
    counts = notebook.plan_counts(configs, tmp_path)
    assert list(counts.index) == ["norm_comparison", "batch_size_sweep"]
    assert counts.loc["norm_comparison"].tolist() == [2, 0, len(comparison) - 2]
    sweep = len(configs) - len(comparison)
    assert counts.loc["batch_size_sweep"].tolist() == [0, 2, sweep - 2]


def test_an_empty_grid_says_it_has_no_runs_yet_before_the_depth_sweep_has_chosen(tmp_path, capsys):
    settings = notebook.read_settings(
        {"GN_PROFILE": "smoke", "GN_RESULTS_DIR": str(tmp_path), "GN_TRAIN": "0"}
    )
    configs = notebook.profile_configs(settings, "depth_grid")
    assert configs == []  # no sweep yet: no method has its rate
    counts = notebook.plan_counts(configs, tmp_path)
    assert counts.empty and list(counts.columns) == [
        "finished",
        "reuses a finished run",
        "to train",
    ]
    summary = notebook.run_experiment(settings, "depth_grid")
    assert capsys.readouterr().out == (
        f"0 runs; 0 finished or reusable in {notebook.display_path(tmp_path)}, 0 to train "
        "(GN_TRAIN=0: none is trained here).\n"
    )
    assert summary.empty


def assert_drawn_png(path):
    assert_png(path, minimum_bytes=10_000)


@pytest.mark.parametrize(
    "variables, message",
    [
        (
            {"GN_WORKERS": "\u00b2"},
            "GN_WORKERS='\u00b2' must be an integer >= 1",
        ),  # superscript two
        (
            {"GN_WORKERS": "\u0661"},
            "GN_WORKERS='\u0661' must be an integer >= 1",
        ),  # Arabic-Indic one: int() takes it
        ({"GN_SEEDS": "\u0661"}, "GN_SEEDS='\u0661' must be comma-separated integers >= 0"),
        ({"GN_SEEDS": "-1"}, "GN_SEEDS='-1' must be comma-separated integers >= 0"),
        ({"GN_SEEDS": "0,0"}, "GN_SEEDS='0,0' must be comma-separated integers >= 0"),
    ],
)
def test_settings_take_numbers_in_plain_digits_only_and_name_the_variable(variables, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        notebook.read_settings(variables)


@pytest.mark.parametrize(
    "environ, where",
    [
        ({}, "main.ipynb"),
        ({"GN_SEEDS": "0,1,2"}, "main.ipynb"),
        ({"GN_SEEDS": "0"}, "results-cpu-seeds0/main.ipynb"),
        ({"GN_SEEDS": "1,2"}, "results-cpu-seeds1-2/main.ipynb"),
        ({"GN_PROFILE": "smoke"}, "results-smoke/main.ipynb"),
    ],
)
def test_other_seeds_write_their_notebook_results_and_figures_apart_like_another_profile(
    environ, where
):
    from utils import paths
    from utils import reproduce

    assert reproduce.executed_notebook(environ) == paths.REPOSITORY_ROOT / where
    settings = notebook.read_settings(environ)
    if where == "main.ipynb":
        # The study: its committed results and figures.
        assert settings.results_dir.resolve() == paths.REPOSITORY_ROOT / "results"
        assert settings.figures_dir.resolve() == paths.REPOSITORY_ROOT / "figures"
    else:
        folder = (paths.REPOSITORY_ROOT / where).parent.resolve()
        assert (
            settings.results_dir.resolve() == folder
            and settings.figures_dir.resolve() == folder / "figures"
        )


def test_the_saved_notebook_leaves_out_cache_work_and_joins_a_cells_streams():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from utils import reproduce

    printed = [
        "Extracting ~/data/tiny-imagenet-200.tar.gz into ~/.keras/datasets/x (done once, then reused)...\n",
        "Extracted in 16.3 s.\nDecoding 20000 training images...\n20000/20000 - 2s - 78us/image\n",
        "Tiny ImageNet-200 found (from TINY_IMAGENET_DIR).\n",
    ]
    book = new_notebook(
        cells=[
            new_code_cell(
                "",
                outputs=[new_output("stream", name="stdout", text=text) for text in printed]
                + [new_output("stream", name="stderr", text="a warning\n")],
            )
        ]
    )
    outputs = reproduce.without_machine_lines(book).cells[0].outputs
    assert [(output.name, output.text) for output in outputs] == [
        ("stdout", "Tiny ImageNet-200 found (from TINY_IMAGENET_DIR).\n"),
        ("stderr", "a warning\n"),
    ]


REAL_DATA = os.environ.get("TINY_IMAGENET_DIR")


@pytest.mark.slow
@pytest.mark.skipif(
    not REAL_DATA or not Path(REAL_DATA).is_file(),
    reason="needs TINY_IMAGENET_DIR set to the Tiny ImageNet archive",
)
def test_reproduce_on_two_machines_saves_the_committed_notebook_and_changes_no_tracked_file(
    tmp_path,
):
    """`make reproduce` as two machines run it: the archive at another path, another Keras
    cache (so extracted and decoded anew). Each saves main.ipynb as committed, and the
    figures and reports it rewrites come out as committed."""
    import nbformat

    from utils import reproduce

    rewritten = [
        *sorted((ROOT / "figures").glob("*.png")),
        ROOT / "README.md",
        ROOT / "results" / "README.md",
    ]
    before = {path: path.read_bytes() for path in rewritten}
    saved = []
    try:
        for machine in ("one", "two"):
            folder = tmp_path / machine
            folder.mkdir()
            archive = folder / Path(REAL_DATA).name
            try:
                os.link(REAL_DATA, archive)
            except OSError:  # another file system
                archive.write_bytes(Path(REAL_DATA).read_bytes())
            output = folder / "main.ipynb"
            with environment(KERAS_HOME=folder / ".keras", TINY_IMAGENET_DIR=archive):
                assert reproduce.execute(reproduce.NOTEBOOK, output) == 0
            assert (folder / ".keras" / "datasets").is_dir()  # this machine's cache was filled
            saved.append(
                [cell.get("outputs") for cell in nbformat.read(output, as_version=4).cells]
            )
        committed = [
            cell.get("outputs") for cell in nbformat.read(reproduce.NOTEBOOK, as_version=4).cells
        ]
        assert saved[0] == saved[1] == committed
        assert [path for path in rewritten if path.read_bytes() != before[path]] == []
    finally:
        for path, content in before.items():
            path.write_bytes(content)
