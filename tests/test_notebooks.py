"""The notebooks run top to bottom and write their figures; finished runs are read back,
not trained again; main.ipynb runs without the data when every run is finished.

The notebooks execute with nbclient in the smoke profile (synthetic data), against
temporary results, figures and data folders shared by the notebook tests, so the
engine's cache is exercised: the sweep reuses the comparison's batch-32 runs and
main.ipynb trains nothing. utils.notebook, which all notebooks share, is tested directly.
"""

import contextlib
import csv
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from utils import notebook
from utils import training
from utils.config import learning_rate_for_epoch
from utils.config import profile_configs
from utils.data_sources import TINY_IMAGENET_URL
from utils.synthetic import make_synthetic_tiny_imagenet

ROOT = notebook.REPOSITORY_ROOT
NOTEBOOKS = {
    "layers": ROOT / "notebooks" / "01_normalization_layers.ipynb",
    "comparison": ROOT / "notebooks" / "02_norm_comparison.ipynb",
    "sweep": ROOT / "notebooks" / "03_batch_size_sweep.ipynb",
    "main": ROOT / "main.ipynb",
}
CELL_TIMEOUT = 300
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Variables a notebook reads; each test sets the ones it needs and removes the others.
NOTEBOOK_VARIABLES = ("GN_PROFILE", "GN_RESULTS_DIR", "GN_FIGURES_DIR", "GN_SYNTHETIC_DIR", "GN_VERBOSE",
                      "TINY_IMAGENET_DIR")
# Any download attempt fails at once instead of waiting on the network.
NO_NETWORK = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}


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
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3",
        "language": "python",
    }))
    return folder


def execute(book, folder, kernels, **variables):
    """Runs every cell of `book` in `folder`; raises CellExecutionError if a cell raises."""
    with environment(JUPYTER_PATH=kernels, **variables):
        client = NotebookClient(book, kernel_name="python3", timeout=CELL_TIMEOUT,
                                resources={"metadata": {"path": str(folder)}})
        client.execute()
    return book


def run_notebook(name, kernels, **variables):
    """Executes one of the project's notebooks; returns all its text output."""
    path = NOTEBOOKS[name]
    book = execute(nbformat.read(path, as_version=4), path.parent, kernels, **variables)
    return output_text(book)


def output_text(book):
    pieces = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                pieces.append(output.text)
            elif "data" in output:
                pieces.append(output.data.get("text/plain", ""))
    return "\n".join(pieces)


def assert_png(path):
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, f"{path} is not a drawn PNG"


def write_finished_runs(configs, results_dir):
    """Writes, in the engine's layout, a finished run for each config (test data, no training)."""
    for number, config in enumerate(configs):
        run_dir = training.run_directory(config, results_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
        steps = config.classes * config.images_per_class // config.batch_size
        rows = []
        for epoch in range(1, config.epochs + 1):
            val_error = 95.0 - 4.0 * epoch + number % 5
            rows.append({"epoch": epoch, "train_loss": 4.0 - 0.2 * epoch, "train_error": val_error - 5.0,
                         "val_loss": 4.2 - 0.2 * epoch, "val_error": val_error,
                         "lr": learning_rate_for_epoch(config, epoch - 1), "seconds": 1.0, "steps": steps})
        with open(run_dir / "history.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=training.HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        last = rows[-5:]
        summary = {
            "run_name": config.run_name, "experiment": config.experiment, "status": "complete",
            "epochs_completed": config.epochs, "epochs": config.epochs, "diverged_epoch": None,
            "val_error_median5": sorted(row["val_error"] for row in last)[len(last) // 2],
            "train_error_median5": sorted(row["train_error"] for row in last)[len(last) // 2],
            "val_loss_median5": sorted(row["val_loss"] for row in last)[len(last) // 2],
            "steps_per_epoch": steps, "images_per_step": config.batch_size,
            "wall_seconds": float(config.epochs), "versions": {}, "device": "test",
            "dataset": config.dataset, "profile": config.profile, "reused_from": None,
        }
        assert set(summary) == set(training.SUMMARY_KEYS)
        (run_dir / "summary.json").write_text(json.dumps(summary))


# ----------------------------------------------------------------- the notebooks


def test_a_cell_that_raises_fails_the_execution(kernels, tmp_path):
    book = new_notebook(cells=[new_code_cell("import sys\nprint(sys.executable)"),
                               new_code_cell("raise ValueError('this cell fails')")])
    with pytest.raises(CellExecutionError, match="this cell fails"):
        execute(book, tmp_path, kernels)
    # The kernel was this environment's interpreter.
    assert Path(book.cells[0].outputs[0].text.strip()) == Path(sys.executable)


def test_layers_notebook(kernels, tmp_path):
    text = run_notebook("layers", kernels, GN_FIGURES_DIR=tmp_path)
    # The notebook asserts the values itself; here: it printed its tables and drew the figure.
    assert "max |layer - NumPy|" in text
    assert "GN, G=1 vs LN" in text and "GN, G=C=4 vs IN" in text
    assert "depends on the other samples" in text
    assert_png(tmp_path / "normalization_axes.png")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kernels):
    """02, 03 and main.ipynb run in that order on one results folder (smoke profile)."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("results", "figures", "synthetic")}
    variables = dict(GN_PROFILE="smoke", GN_RESULTS_DIR=folders["results"],
                     GN_FIGURES_DIR=folders["figures"], GN_SYNTHETIC_DIR=folders["synthetic"])
    texts = {name: run_notebook(name, kernels, **variables) for name in ("comparison", "sweep", "main")}
    return folders, texts


def test_comparison_notebook_trains_the_four_norms(smoke):
    folders, texts = smoke
    text = texts["comparison"]
    assert "4 runs; 0 finished or reusable" in text
    assert text.count("Epoch 1/2") == 4
    for run in ("bn_bs32_seed0", "ln_bs32_seed0", "in_bs32_seed0", "gn_g32_bs32_seed0"):
        summary = json.loads((folders["results"] / "norm_comparison" / run / "summary.json").read_text())
        assert summary["status"] == "complete"
        assert summary["profile"] == "smoke"
    assert "| norm | ours val error (%)" in text  # Table 1 as markdown
    assert "profile smoke" in text
    assert_png(folders["figures"] / "norm_comparison.png")


def test_sweep_notebook_reuses_the_batch_32_runs(smoke):
    folders, texts = smoke
    text = texts["sweep"]
    assert "reuses norm_comparison/bn_bs32_seed0" in text  # the plan
    assert "reused from norm_comparison/bn_bs32_seed0" in text  # the engine
    assert "reused from norm_comparison/gn_g32_bs32_seed0" in text
    assert "10 runs; 2 finished or reusable" in text
    assert text.count("Epoch 1/2") == 8
    assert "| batch size | ours BN | ours GN" in text  # Table 2 as markdown
    assert_png(folders["figures"] / "batch_size_curves.png")
    assert_png(folders["figures"] / "batch_size_sensitivity.png")


def test_main_notebook_reads_the_finished_runs(smoke):
    folders, texts = smoke
    text = texts["main"]
    assert "Epoch " not in text  # nothing trained again
    assert "4 runs; 4 finished or reusable" in text and "10 runs; 10 finished or reusable" in text
    assert "synthetic-tiny-imagenet: 4 classes, 64 training images" in text
    assert "At batch 32, GN minus BN val error: ours" in text  # conclusions, computed
    assert "report val loss" in text
    for name in ("sample_images", "normalization_axes", "norm_comparison", "batch_size_curves",
                 "batch_size_sensitivity"):
        assert_png(folders["figures"] / f"{name}.png")


def test_main_notebook_without_the_data(kernels, tmp_path):
    """Real-data profile, every run finished, no copy of the data and no network: the data
    cell says how to get the data, nothing is downloaded, and the study completes."""
    results_dir, figures_dir, home = tmp_path / "results", tmp_path / "figures", tmp_path / "home"
    home.mkdir()
    write_finished_runs(profile_configs("cpu"), results_dir)
    text = run_notebook("main", kernels, GN_PROFILE="cpu", GN_RESULTS_DIR=results_dir,
                        GN_FIGURES_DIR=figures_dir, HOME=home, KERAS_HOME=home / ".keras",
                        TINY_IMAGENET_DIR=None, **NO_NETWORK)
    assert "The data is not available" in text
    assert TINY_IMAGENET_URL in text and "TINY_IMAGENET_DIR" in text
    assert "Downloading" not in text and "Epoch " not in text
    # Every run was read back from disk; none needed the data.
    assert text.count("complete, 10/10 epochs") == 14 and "not trained" not in text
    assert not (home / ".keras" / "datasets").exists() or not any((home / ".keras" / "datasets").iterdir())
    assert "dataset tiny-imagenet-200, profile cpu" in text
    assert not (figures_dir / "sample_images.png").exists()
    for name in ("norm_comparison", "batch_size_curves", "batch_size_sensitivity"):
        assert_png(figures_dir / f"{name}.png")


# ------------------------------------------------------------- utils.notebook


def test_settings_default_to_folders_at_the_repository_root():
    settings = notebook.read_settings({})
    assert settings.profile == "cpu" and settings.verbose == 2
    assert settings.results_dir == ROOT / "results"
    assert settings.figures_dir == ROOT / "figures"
    assert settings.synthetic_dir == ROOT / "data"


def test_settings_resolve_relative_paths_from_the_repository_root(tmp_path):
    settings = notebook.read_settings({"GN_PROFILE": "smoke", "GN_RESULTS_DIR": "results-smoke",
                                       "GN_FIGURES_DIR": str(tmp_path), "GN_VERBOSE": "1"})
    assert settings.profile == "smoke" and settings.verbose == 1
    assert settings.results_dir == ROOT / "results-smoke"
    assert settings.figures_dir == tmp_path


@pytest.mark.parametrize("variables, message", [
    ({"GN_PROFILE": "fast"}, "GN_PROFILE='fast' is not a profile"),
    ({"GN_VERBOSE": "3"}, "GN_VERBOSE='3' must be 0, 1 or 2"),
])
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


def test_find_data_of_the_smoke_profile_is_the_synthetic_folder(tmp_path):
    data = notebook.find_data(notebook.read_settings({"GN_PROFILE": "smoke", "GN_SYNTHETIC_DIR": str(tmp_path)}))
    assert data.available and data.dataset == "synthetic-tiny-imagenet" and data.data_dir == tmp_path


def test_show_data_without_the_data_prints_and_draws_nothing(tmp_path, capsys):
    settings = notebook.read_settings({"GN_PROFILE": "cpu", "GN_FIGURES_DIR": str(tmp_path)})
    data = notebook.DataStatus("tiny-imagenet-200", False, tmp_path / "nowhere", "The data is not available. Why.")
    assert notebook.show_data(settings, data) is None
    assert "The data is not available. Why." in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_plan_marks_finished_reusable_and_missing_runs(tmp_path):
    configs = profile_configs("cpu")
    comparison = [config for config in configs if config.experiment == "norm_comparison"]
    sweep = [config for config in configs if config.experiment == "batch_size_sweep"]
    write_finished_runs(comparison, tmp_path)
    plan = notebook.run_plan(configs, tmp_path).set_index(["experiment", "run"])["on disk"]
    assert (plan["norm_comparison"] == "finished").all()
    assert plan["batch_size_sweep", "bn_bs32_seed0"] == "reuses norm_comparison/bn_bs32_seed0"
    assert plan["batch_size_sweep", "gn_g32_bs2_seed0"] == "to train"
    pending = notebook.pending_runs(configs, tmp_path)
    assert [config.run_name for config in pending] == [
        config.run_name for config in sweep if config.batch_size != 32]


def test_a_results_folder_of_another_profile_is_refused(tmp_path):
    write_finished_runs(profile_configs("cpu", "norm_comparison"), tmp_path)
    with pytest.raises(ValueError, match="GN_RESULTS_DIR"):
        notebook.pending_runs(profile_configs("smoke"), tmp_path)
