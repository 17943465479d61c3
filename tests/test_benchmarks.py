"""The benchmark scripts run and report what they measured (their speeds are not tested)."""

import numpy as np
import pytest

import keras
from benchmarks import layer_benchmark
from benchmarks import training_benchmark
from utils.layers import GroupNormalization

pytestmark = pytest.mark.slow  # times models at tiny sizes: the full suite only


def test_the_figure_3_reshape_benchmarked_against_the_layers_gives_the_same_numbers():
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(2, 5, 7, 16)).astype(np.float32)
    gamma = keras.initializers.Constant(rng.normal(1, 0.3, size=16))
    beta = keras.initializers.Constant(rng.normal(0, 0.3, size=16))
    layer = GroupNormalization(
        groups=4, epsilon=1e-3, gamma_initializer=gamma, beta_initializer=beta
    )
    reshaped = layer_benchmark.ReshapedGroupNormalization(
        groups=4, epsilon=1e-3, gamma_initializer=gamma, beta_initializer=beta
    )
    np.testing.assert_allclose(np.asarray(reshaped(x)), np.asarray(layer(x)), atol=1e-5)


def test_layer_benchmark_times_every_setting(capsys):
    table = layer_benchmark.main(
        [
            "--layers",
            "keras_bn,gn,gn_reshaped",
            "--batch-sizes",
            "2",
            "--calls",
            "1",
            "--rounds",
            "1",
        ]
    )
    # 3 layers x 2 shapes x 1 batch size x XLA off and on
    assert len(table) == 12
    assert (table.microseconds > 0).all()
    assert "relative to keras BatchNormalization" in capsys.readouterr().out


def test_training_benchmark_reports_images_per_second_and_ratios(capsys):
    table = training_benchmark.main(
        [
            "--norms",
            "bn,gn",
            "--batch-sizes",
            "2",
            "--steps-per-execution",
            "2",
            "--images-per-round",
            "4",
            "--rounds",
            "1",
        ]
    )
    assert set(zip(table.norm, table.xla)) == {
        ("bn", False),
        ("bn", True),
        ("gn", False),
        ("gn", True),
    }
    assert (table.images_per_second > 0).all()
    assert "BN / our GN" in capsys.readouterr().out


def test_benchmarks_reject_unknown_names():
    with pytest.raises(SystemExit):
        training_benchmark.main(["--norms", "bn,groupnorm"])


def test_profile_lists_the_ops_of_a_step_by_self_time(tmp_path, capsys):
    from benchmarks import profile_training

    table = profile_training.main(
        ["--norm", "gn", "--batch-size", "2", "--images", "4", "--trace-dir", str(tmp_path)]
    )
    assert list(table.columns) == ["op", "ms_per_step"]
    assert table.ms_per_step.is_monotonic_decreasing
    assert any("Conv2D" in op for op in table.op)  # the convolutions' TensorFlow kernels
    assert list(tmp_path.rglob("*.xplane.pb"))
    assert "images/s while profiled" in capsys.readouterr().out


def test_grid_benchmark_compares_workers_on_one_grid(capsys):
    from benchmarks import grid_benchmark

    table = grid_benchmark.main(
        ["--synthetic", "--workers", "1,2", "--batch-sizes", "16", "--epochs", "1"]
    )
    assert list(table["workers"]) == [1, 2]
    assert (table["images/s"] > 0).all() and table["vs 1 worker"].iloc[0] == 1.0
    assert "images/s" in capsys.readouterr().out


def test_grid_benchmark_runs_in_a_fresh_process_that_decodes_the_data_itself(tmp_path):
    """As `make benchmark` starts it: nothing has set TensorFlow's threads, and the data
    is generated and decoded in the same process before the one-worker grid trains."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.grid_benchmark",
            "--synthetic",
            "--workers",
            "1",
            "--batch-sizes",
            "16",
            "--epochs",
            "1",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TMPDIR=str(tmp_path)),
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "images/s" in child.stdout


def test_probe_benchmark_times_training_with_and_without_probes(capsys):
    from benchmarks import probe_benchmark

    table = probe_benchmark.main(
        [
            "--norm",
            "gn",
            "--batch-sizes",
            "4",
            "--steps",
            "16",
            "--probes-per-epoch",
            "2",
            "--rounds",
            "1",
        ]
    )
    assert list(table["batch_size"]) == [4] and (table["probes"] >= 2).all()
    assert (table["images/s without"] > 0).all() and (table["images/s with"] > 0).all()
    assert "time ratio" in capsys.readouterr().out


def test_training_benchmark_knows_the_further_experiments_layers(capsys):
    table = training_benchmark.main(
        [
            "--norms",
            "brn,gn_ws,gnbn_gn_first",
            "--batch-sizes",
            "2",
            "--steps-per-execution",
            "2",
            "--images-per-round",
            "4",
            "--rounds",
            "1",
        ]
    )
    assert (
        set(table.norm) == {"brn", "gn_ws", "gnbn_gn_first"} and (table.images_per_second > 0).all()
    )


def test_thread_benchmark_measures_each_thread_count_in_its_own_process(capsys):
    from benchmarks import thread_benchmark

    measured = thread_benchmark.main(
        [
            "--norms",
            "gn",
            "--batch-sizes",
            "2",
            "--threads",
            "1,2",
            "--images-per-round",
            "16",
            "--rounds",
            "1",
        ]
    )
    assert set(measured) == {1, 2}
    assert all(images > 0 for counts in measured.values() for images in counts.values())
    assert "1 / 2" in capsys.readouterr().out


def test_model_benchmark_reports_each_network_against_the_small_cnn(capsys):
    from benchmarks import model_benchmark

    table = model_benchmark.main(
        [
            "--models",
            "small_cnn,resnet10",
            "--norms",
            "gn",
            "--batch-sizes",
            "2",
            "--images-per-round",
            "2",
            "--rounds",
            "1",
            "--classes",
            "4",
        ]
    )
    assert set(zip(table.model, table.xla)) == {
        ("small_cnn", False),
        ("small_cnn", True),
        ("resnet10", False),
        ("resnet10", True),
    }
    assert (table.images_per_second > 0).all()
    assert (
        table.set_index("model")["parameters"].to_dict()["resnet10"]
        > 10 * table.set_index("model")["parameters"].to_dict()["small_cnn"]
    )
    assert "multiple of the small CNN's" in capsys.readouterr().out
