"""The smoke grid end to end through the command line, run selection, the grid's
behaviour on divergence, and training on two (logical) devices."""

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest

from utils import experiments
from utils import training
from utils.config import RunConfig
from utils.config import profile_configs

REPOSITORY = Path(__file__).resolve().parent.parent
# The smoke profile: 4 classes x 16 synthetic training images.
SMOKE_TRAIN_IMAGES = 64


def run_cli(*arguments):
    """Runs the command line in this process; returns (exit status, stdout)."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = experiments.main(list(arguments))
    return status, output.getvalue()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def smoke_grid(tmp_path_factory, data_dir):
    """The whole smoke grid (14 configs, 12 trainings) through the command line."""
    results = tmp_path_factory.mktemp("results")
    status, output = run_cli(
        "--profile", "smoke", "--experiment", "all", "--results", str(results), "--data", str(data_dir), "--verbose", "0"
    )
    return status, output, results


def test_smoke_grid_completes_with_the_contract_layout(smoke_grid):
    status, _, results = smoke_grid
    assert status == 0
    for config in profile_configs("smoke"):
        run = training.load_run(results / config.experiment / config.run_name)
        assert run.summary["status"] == "complete", config.run_name
        assert run.config == config
        assert list(run.history.columns) == list(training.HISTORY_COLUMNS)
        assert len(run.history) == config.epochs
        # Every batch size gets its own number of steps: floor(images / batch).
        expected_steps = SMOKE_TRAIN_IMAGES // config.batch_size
        assert list(run.history["steps"]) == [expected_steps] * config.epochs, config.run_name
        assert run.summary["steps_per_epoch"] == expected_steps
        assert run.summary["images_per_step"] == config.batch_size
        assert not (run.path / "backup").exists()


def test_sweep_batch_32_runs_reuse_the_comparison(smoke_grid):
    _, output, results = smoke_grid
    for name in ("bn_bs32_seed0", "gn_g32_bs32_seed0"):
        source = training.load_run(results / "norm_comparison" / name)
        reused = training.load_run(results / "batch_size_sweep" / name)
        assert source.summary["reused_from"] is None
        assert reused.summary["reused_from"] == f"norm_comparison/{name}"
        assert reused.summary["experiment"] == "batch_size_sweep"
        assert reused.config.experiment == "batch_size_sweep"
        assert reused.history.equals(source.history)
        assert f"batch_size_sweep/{name}: complete" in output and f"reused from norm_comparison/{name}" in output
    trained = [line for line in output.splitlines() if ": complete" in line and "reused from" not in line]
    assert len(trained) == 12


def test_cli_prints_a_line_per_run_and_a_summary_table(smoke_grid):
    _, output, _ = smoke_grid
    lines = output.splitlines()
    assert lines[0].startswith("14 run(s) of profile 'smoke'")
    for number, config in enumerate(profile_configs("smoke"), start=1):
        assert any(line.startswith(f"[{number}/14] {config.experiment}/{config.run_name}: complete") for line in lines)
    header = next(line for line in lines if "val_error_median5" in line)
    assert header.split()[:3] == ["experiment", "run_name", "status"]
    table = lines[lines.index(header) + 1 :]
    assert len(table) == 14 and all(" complete " in row for row in table)


def test_only_selects_runs_and_reads_finished_ones_back(smoke_grid, data_dir, monkeypatch):
    _, _, results = smoke_grid
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: pytest.fail("fit was called for a finished run"))
    status, output = run_cli(
        "--profile", "smoke", "--only", "batch_size_sweep/gn_g32_bs2_seed0,ln_bs32_seed0",
        "--results", str(results), "--data", str(data_dir), "--verbose", "0",
    )
    assert status == 0
    run_lines = [line for line in output.splitlines() if line.startswith("[") and "starting" not in line]
    assert [line.split(",")[0] for line in run_lines] == [
        "[1/2] norm_comparison/ln_bs32_seed0: complete",
        "[2/2] batch_size_sweep/gn_g32_bs2_seed0: complete",
    ]


def test_unknown_only_name_lists_the_valid_names(capsys):
    with pytest.raises(SystemExit) as error:
        experiments.main(["--profile", "smoke", "--only", "gn_bs2_seed0"])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert "'gn_bs2_seed0'" in message and "gn_g32_bs2_seed0" in message and "in_bs32_seed0" in message


def test_select_runs_by_name_matches_every_experiment():
    configs = profile_configs("smoke")
    chosen = experiments.select_runs(configs, "bn_bs32_seed0")
    assert [(c.experiment, c.run_name) for c in chosen] == [
        ("norm_comparison", "bn_bs32_seed0"),
        ("batch_size_sweep", "bn_bs32_seed0"),
    ]
    assert experiments.select_runs(configs, None) == configs


def test_set_overrides_config_fields():
    assert experiments.parse_overrides(["epochs=3", "precision=mixed_bfloat16", "jit_compile=false"]) == {
        "epochs": 3,
        "precision": "mixed_bfloat16",
        "jit_compile": False,
    }
    with pytest.raises(ValueError, match="'colour'"):
        experiments.parse_overrides(["colour=red"])
    with pytest.raises(ValueError, match="key=value"):
        experiments.parse_overrides(["epochs"])


def test_bad_set_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        experiments.main(["--profile", "smoke", "--set", "batch_size=0", "--list"])
    assert "batch_size=0" in capsys.readouterr().err


def test_grid_goes_on_after_a_diverged_run(tmp_path, data_dir):
    tiny = dict(
        dataset="synthetic-tiny-imagenet", classes=4, images_per_class=16, val_images_per_class=4,
        batch_size=16, epochs=1, jit_compile=False, profile="smoke",
    )
    configs = [RunConfig(norm="batch", base_learning_rate=1e6, **tiny), RunConfig(norm="group", **tiny)]
    lines = []
    results = experiments.run_grid(configs, tmp_path, data_dir=data_dir, verbose=0, print_line=lines.append)
    assert [result.summary["status"] for _, result in results] == ["diverged", "complete"]
    assert "diverged in epoch 1" in lines[1]
    table = experiments.summary_table(results)
    assert list(table["status"]) == ["diverged", "complete"]


def test_module_entry_point_lists_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "utils.experiments", "--profile", "paper", "--experiment", "batch_size_sweep", "--list"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == [f"batch_size_sweep/{c.run_name}" for c in profile_configs("paper", "batch_size_sweep")]


TWO_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    # Two logical CPU devices; this must happen before TensorFlow initializes.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from utils import training
    from utils.config import RunConfig

    data_dir, results = sys.argv[1], sys.argv[2]
    tiny = dict(dataset="synthetic-tiny-imagenet", classes=4, images_per_class=16, val_images_per_class=4,
                norm="batch", batch_size=4, epochs=1, jit_compile=False, distribution="mirrored")
    report = {}
    for name, fields in (("per_device", {}), ("synchronized", {"sync_batch_norm": True})):
        config = RunConfig(experiment=name, **tiny, **fields)
        result = training.run(config, results, data_dir=data_dir, verbose=0)
        strategy = training.make_strategy(config.distribution)
        with strategy.scope():
            model = training.build_model(config)
        report[name] = {
            "status": result.summary["status"],
            "steps": result.history["steps"].tolist(),
            "images_per_step": result.summary["images_per_step"],
            "device": result.summary["device"],
            "synchronized": sorted({layer.synchronized for layer in model.layers if "norm" in layer.name}),
        }
    (x, y), _ = training.load_data(config, data_dir)
    replicas = strategy.num_replicas_in_sync
    distributed = strategy.experimental_distribute_dataset(training.training_dataset(config, x, y, 0, replicas))
    report["replicas"] = replicas
    report["replica_batches"] = sorted(
        {int(images.shape[0]) for batch, _ in distributed for images in strategy.experimental_local_results(batch)}
    )
    print(json.dumps(report))
    """
)


def test_two_logical_devices_each_replica_gets_batch_size_images(tmp_path, data_dir):
    completed = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES_SCRIPT, str(data_dir), str(tmp_path)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["replica_batches"] == [4]  # batch_size images per replica per step
    for name, synchronized in (("per_device", [False]), ("synchronized", [True])):
        run = report[name]
        assert run["status"] == "complete"
        assert run["images_per_step"] == 8 and run["device"].startswith("2 x ")
        assert run["steps"] == [SMOKE_TRAIN_IMAGES // 8]  # global batch = 2 x 4
        assert run["synchronized"] == synchronized
