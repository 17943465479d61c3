"""utils.training.run on a tiny synthetic data set: files, resume, cache, divergence,
determinism, steps per epoch."""

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from utils import landscape
from utils import mixtures
from utils import planning
from utils import runs
from utils import training
from utils.config import RunConfig
from utils.distortion import OutputNoise
from utils.config import learning_rate_for_epoch

pytestmark = pytest.mark.slow  # trains models: the full suite only

# 4 classes x 16 training images = 64 images; 4 x 4 validation images.
TRAIN_IMAGES = 64
TINY = dict(
    experiment="norm_comparison",
    dataset="synthetic-tiny-imagenet",
    classes=4,
    images_per_class=16,
    val_images_per_class=4,
    norm="batch",
    batch_size=8,
    epochs=3,
    jit_compile=False,
)
# Every column but the wall time must match between equivalent runs.
COMPARED_COLUMNS = [c for c in runs.HISTORY_COLUMNS if c != "seconds"]


def tiny_config(**fields):
    return RunConfig(**{**TINY, **fields})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted 3-epoch run."""
    results = tmp_path_factory.mktemp("reference")
    return training.run(tiny_config(), results, data_dir=data_dir, verbose=0)


def read_csv_header(path):
    with open(path, newline="") as file:
        return next(csv.reader(file))


class Killed(Exception):
    """Stands for the process being killed."""


class KillAt(keras.callbacks.Callback):
    """Raises Killed after training batch `batch` of 0-based epoch `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.kill_epoch, self.kill_batch = epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.kill_epoch and batch >= self.kill_batch:
            raise Killed()


def test_run_writes_the_contract_files(reference):
    path = reference.path
    assert path.parts[-2:] == ("norm_comparison", "bn_bs8_seed0")
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "history.csv",
        "model.keras",
        "summary.json",
    ]
    config = json.loads((path / "config.json").read_text())
    assert config["run_name"] == "bn_bs8_seed0" and RunConfig.from_dict(config) == tiny_config()
    assert read_csv_header(path / "history.csv") == list(runs.HISTORY_COLUMNS)
    summary = json.loads((path / "summary.json").read_text())
    assert tuple(summary) == runs.SUMMARY_KEYS + runs.LATER_SUMMARY_KEYS
    assert summary["status"] == "complete" and summary["reused_from"] is None
    assert summary["epochs_completed"] == summary["epochs"] == 3
    assert summary["steps_per_epoch"] == TRAIN_IMAGES // 8 and summary["images_per_step"] == 8
    assert set(summary["versions"]) == {"tensorflow", "keras", "python", "numpy"}
    assert summary["dataset"] == "synthetic-tiny-imagenet" and summary["device"]
    history = reference.history
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history["steps"]) == [8, 8, 8]
    assert (
        history["train_error"].between(0, 100).all() and history["val_error"].between(0, 100).all()
    )
    # The paper's statistic: median of the last (up to) 5 epochs.
    assert summary["val_error_median5"] == pytest.approx(float(np.median(history["val_error"])))
    assert summary["train_error_median5"] == pytest.approx(float(np.median(history["train_error"])))
    assert summary["val_loss_median5"] == pytest.approx(float(np.median(history["val_loss"])))
    assert summary["wall_seconds"] == pytest.approx(history["seconds"].sum(), rel=1e-4)


def test_history_lr_is_the_schedule(reference):
    # 3 epochs: boundaries round(0.3*3)=1, round(0.6*3)=2, round(0.9*3)=3.
    expected = [learning_rate_for_epoch(reference.config, epoch) for epoch in range(3)]
    initial = reference.config.base_learning_rate * 8 / 32
    assert expected == pytest.approx([initial, initial / 10, initial / 100])
    assert list(reference.history["lr"]) == pytest.approx(expected, rel=1e-6)


def test_errors_and_losses_match_keras_evaluate(reference, data_dir):
    # The val columns are the cross-entropy and top-1 error of the unaugmented validation
    # set: check them against an independent computation at the end of a 1-epoch run.
    config = tiny_config(epochs=1, experiment="evaluate_check")
    run_dir = runs.run_directory(config, reference.path.parent.parent)
    seen = {}

    class Capture(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            _, (x_val, y_val) = training.load_data(config, data_dir)
            probabilities = self.model.predict(x_val, verbose=0)
            seen["error"] = 100 * np.mean(probabilities.argmax(axis=1) != y_val)
            seen["loss"] = float(
                keras.losses.sparse_categorical_crossentropy(y_val, probabilities).numpy().mean()
            )

    result = training.run(
        config, run_dir.parent.parent, data_dir=data_dir, verbose=0, callbacks=[Capture()]
    )
    assert result.history["val_error"].iloc[0] == pytest.approx(seen["error"], abs=1e-4)
    assert result.history["val_loss"].iloc[0] == pytest.approx(seen["loss"], rel=1e-4)


def test_same_config_gives_the_same_history(reference, tmp_path, data_dir):
    again = training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    assert again.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])


def test_resume_after_a_kill_mid_epoch_gives_the_same_history(reference, tmp_path, data_dir):
    with pytest.raises(Killed):
        training.run(
            tiny_config(),
            tmp_path,
            data_dir=data_dir,
            verbose=0,
            callbacks=[KillAt(epoch=1, batch=3)],
        )
    run_dir = runs.run_directory(tiny_config(), tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "running" and summary["epochs_completed"] == 1
    assert (run_dir / "backup").is_dir()
    trained = []

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trained.append(epoch)

    resumed = training.run(
        tiny_config(), tmp_path, data_dir=data_dir, verbose=0, callbacks=[CountEpochs()]
    )
    assert trained == [1, 2], "training must resume at epoch 2, not start again"
    assert resumed.summary["status"] == "complete"
    assert resumed.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])
    for key in ("val_error_median5", "train_error_median5", "val_loss_median5", "steps_per_epoch"):
        assert resumed.summary[key] == reference.summary[key], key
    assert not (run_dir / "backup").exists()


def test_resume_after_a_kill_between_history_and_backup(reference, tmp_path, data_dir, monkeypatch):
    # Killed after epoch 2's history row was written but before its backup: the row
    # must be dropped and epoch 2 trained again.
    save = training.EpochBackup.on_epoch_end

    def save_or_die(self, epoch, logs=None):
        if epoch + 1 == 2:
            raise Killed()
        save(self, epoch, logs)

    monkeypatch.setattr(training.EpochBackup, "on_epoch_end", save_or_die)
    with pytest.raises(Killed):
        training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    run_dir = runs.run_directory(tiny_config(), tmp_path)
    assert len(runs.read_run(run_dir).history) == 2
    monkeypatch.setattr(training.EpochBackup, "on_epoch_end", save)
    resumed = training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    assert resumed.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])


def test_resume_after_a_kill_while_the_weights_are_written(
    reference, tmp_path, data_dir, monkeypatch
):
    # The process dies in the middle of writing epoch 2's backup: half a file is left.
    savez = np.savez
    calls = []

    def write_half_and_die(file, **arrays):
        calls.append(file.name)
        savez(file, **arrays)
        if len(calls) == 2:
            file.flush()
            file.truncate(file.tell() // 2)
            raise Killed()

    monkeypatch.setattr(np, "savez", write_half_and_die)
    with pytest.raises(Killed):
        training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    monkeypatch.setattr(np, "savez", savez)
    resumed = training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    assert resumed.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])


def test_an_unreadable_backup_restarts_the_run_and_says_so(reference, tmp_path, data_dir, capsys):
    with pytest.raises(Killed):
        training.run(
            tiny_config(),
            tmp_path,
            data_dir=data_dir,
            verbose=0,
            callbacks=[KillAt(epoch=2, batch=0)],
        )
    backup = runs.run_directory(tiny_config(), tmp_path) / "backup"
    state = backup / "epoch-2.state.npz"
    good = state.read_bytes()
    for damage in (b"this is no longer a NumPy archive", good[: len(good) // 2]):
        state.write_bytes(damage)
        assert training.backed_up_epoch(backup) == 2
        model, start_epoch = training.resumed_model(
            tiny_config(),
            training.make_strategy(tiny_config().distribution),
            runs.run_directory(tiny_config(), tmp_path),
            2,
        )
        assert start_epoch == 0
        assert "the backup of epoch 2 cannot be read" in capsys.readouterr().out
        backup.mkdir(exist_ok=True)
        (backup / "training_metadata.json").write_text('{"epoch": 2}')
    resumed = training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    assert resumed.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])


def test_a_complete_run_is_read_back_not_trained(reference, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("fit was called for a complete run")

    monkeypatch.setattr(keras.Model, "fit", no_training)
    again = training.run(tiny_config(), reference.path.parent.parent, verbose=0)
    assert again.summary == reference.summary
    assert again.history.equals(reference.history)


def test_a_different_config_in_the_same_folder_is_refused(reference):
    changed = tiny_config(epochs=4)
    assert changed.run_name == reference.config.run_name
    with pytest.raises(ValueError, match=r"epochs: stored 3, requested 4.*delete"):
        training.run(changed, reference.path.parent.parent, verbose=0)


def test_reuses_a_finished_run_of_another_experiment(reference, monkeypatch):
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: pytest.fail("fit was called"))
    config = tiny_config(experiment="batch_size_sweep")
    reused = training.run(config, reference.path.parent.parent, verbose=0)
    assert reused.path.parts[-2:] == ("batch_size_sweep", "bn_bs8_seed0")
    assert reused.summary["reused_from"] == "norm_comparison/bn_bs8_seed0"
    assert (
        reused.summary["experiment"] == "batch_size_sweep"
        and reused.summary["status"] == "complete"
    )
    assert reused.history.equals(reference.history)
    assert reused.config == config


def test_divergence_is_recorded(tmp_path, data_dir, monkeypatch):
    class PoisonWeights(keras.callbacks.Callback):
        """Makes the weights NaN after the second batch of epoch 2."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:
                kernel = self.model.get_layer("conv1").kernel
                kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    config = tiny_config()
    result = training.run(
        config, tmp_path, data_dir=data_dir, verbose=0, callbacks=[PoisonWeights()]
    )
    assert result.summary["status"] == "diverged" and result.summary["diverged_epoch"] == 2
    assert result.summary["epochs_completed"] == 1 and list(result.history["epoch"]) == [1]
    assert not (result.path / "backup").exists()
    # A diverged run is final: read back, not trained again.
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: pytest.fail("fit was called"))
    assert training.run(config, tmp_path, verbose=0).summary["status"] == "diverged"


def test_a_huge_learning_rate_diverges(tmp_path, data_dir):
    result = training.run(
        tiny_config(base_learning_rate=1e6, epochs=1), tmp_path, data_dir=data_dir, verbose=0
    )
    assert result.summary["status"] == "diverged" and result.summary["diverged_epoch"] == 1


@pytest.mark.parametrize("batch_size, steps_per_execution", [(5, 1), (5, 5), (3, 4)])
def test_steps_per_epoch_are_floor_of_images_over_batch(
    tmp_path, data_dir, batch_size, steps_per_execution
):
    # 64 images: batch 5 -> 12 steps (not 13, not 15 = 3 executions of 5); batch 3 -> 21.
    config = tiny_config(batch_size=batch_size, steps_per_execution=steps_per_execution, epochs=2)
    result = training.run(config, tmp_path, data_dir=data_dir, verbose=0)
    assert list(result.history["steps"]) == [TRAIN_IMAGES // batch_size] * 2
    assert result.summary["steps_per_epoch"] == TRAIN_IMAGES // batch_size


def test_validation_pipeline_is_not_augmented(data_dir):
    _, (x_val, y_val) = training.load_data(tiny_config(), data_dir)
    batches = list(training.validation_dataset(x_val, y_val).as_numpy_iterator())
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    np.testing.assert_array_equal(images, x_val)
    np.testing.assert_array_equal(labels, y_val)


def test_epoch_datasets_depend_on_seed_and_epoch_only(data_dir):
    (x, y), _ = training.load_data(tiny_config(), data_dir)
    first = lambda epoch: next(iter(training.training_dataset(tiny_config(), x, y, epoch)))[
        1
    ].numpy()  # noqa: E731
    assert np.array_equal(first(1), first(1))
    assert not np.array_equal(first(0), first(1))


def test_mixed_precision_run(tmp_path, data_dir):
    result = training.run(
        tiny_config(precision="mixed_bfloat16", epochs=1), tmp_path, data_dir=data_dir, verbose=0
    )
    assert result.summary["status"] == "complete"
    assert math.isfinite(result.history["train_loss"].iloc[0])
    # The global policy is restored after the run.
    assert keras.config.dtype_policy().name == "float32"


def test_resnet50_config_builds_with_the_configs_norm():
    model = training.build_model(RunConfig(model="resnet50", norm="group", groups=16, classes=10))
    assert model.output_shape == (None, 10)
    norms = [layer for layer in model.layers if "norm" in layer.name]
    assert norms and all(layer.groups == 16 for layer in norms)
    assert model.optimizer.momentum == 0.9


def test_xla_runs_are_deterministic_too(tmp_path, data_dir):
    # Keras compiles without XLA when TensorFlow's deterministic kernels are on: XLA runs
    # leave them off and must still repeat exactly on the CPU.
    config = tiny_config(jit_compile=True, epochs=2, norm="group", groups=4)
    first = training.run(config, tmp_path / "first", data_dir=data_dir, verbose=0)
    second = training.run(config, tmp_path / "second", data_dir=data_dir, verbose=0)
    assert first.history[COMPARED_COLUMNS].equals(second.history[COMPARED_COLUMNS])


def test_precision_is_the_one_the_layers_use(reference, tmp_path, data_dir):
    policies = []

    class RecordPolicies(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            policies.append(
                {layer.dtype_policy.name for layer in self.model.layers if layer.weights}
            )

    mixed = training.run(
        tiny_config(precision="mixed_bfloat16"),
        tmp_path,
        data_dir=data_dir,
        verbose=0,
        callbacks=[RecordPolicies()],
    )
    assert policies and all(names == {"mixed_bfloat16"} for names in policies)
    assert not mixed.history["train_loss"].equals(reference.history["train_loss"])
    assert keras.config.dtype_policy().name == "float32"  # restored after the run


KILLED_RUN = """
import sys
from tests.test_training import tiny_config
from utils import training
training.run(tiny_config(epochs=4), sys.argv[1], data_dir=sys.argv[2], verbose=0)
"""


def test_kills_at_random_instants_always_resume_to_the_uninterrupted_history(tmp_path, data_dir):
    config = tiny_config(epochs=4)
    command = [sys.executable, "-c", KILLED_RUN]
    repository = Path(__file__).resolve().parent.parent
    # The kill instants are fractions of one uninterrupted run's wall time, measured here,
    # so that the children are killed mid-run on a fast machine as on a slow one.
    started = time.monotonic()
    subprocess.run(
        command + [str(tmp_path / "uninterrupted"), str(data_dir)], cwd=repository, check=True
    )
    uninterrupted_seconds = time.monotonic() - started
    uninterrupted = runs.read_run(runs.run_directory(config, tmp_path / "uninterrupted"))
    results_dir = tmp_path / "killed"
    rng = np.random.default_rng(0)
    kills = 0
    for _ in range(8):
        if planning.planned_action(config, results_dir)[0] == "finished":
            break
        child = subprocess.Popen(command + [str(results_dir), str(data_dir)], cwd=repository)
        try:
            child.wait(timeout=float(rng.uniform(0.3, 0.8)) * uninterrupted_seconds)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
    resumed = training.run(config, results_dir, data_dir=data_dir, verbose=0)
    assert kills >= 1
    assert resumed.summary["status"] == "complete"
    assert resumed.history[COMPARED_COLUMNS].equals(uninterrupted.history[COMPARED_COLUMNS])


def test_two_processes_on_one_run_never_give_another_history(reference, tmp_path, data_dir):
    command = [
        sys.executable,
        "-c",
        KILLED_RUN.replace("epochs=4", "epochs=3"),
        str(tmp_path),
        str(data_dir),
    ]
    children = [
        subprocess.Popen(
            command, cwd=Path(__file__).resolve().parent.parent, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    errors = [child.communicate(timeout=600)[1] for child in children]
    # One trains; the other either finds it locked or finds it finished.
    assert sum(child.returncode == 0 for child in children) >= 1
    assert all(
        child.returncode == 0 or "RunLockedError" in error for child, error in zip(children, errors)
    )
    result = runs.read_run(runs.run_directory(tiny_config(), tmp_path))
    assert result.summary["status"] == "complete"
    assert result.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])


def test_landscape_probes_are_written_survive_a_kill_and_do_not_change_training(
    reference, tmp_path, data_dir
):
    # With probes the run trains exactly as the reference (the same config without them).
    probed = tiny_config(landscape_probes=2)
    measured = (landscape.probe_measurement,)
    with pytest.raises(Killed):
        training.run(
            probed,
            tmp_path,
            data_dir=data_dir,
            verbose=0,
            callbacks=[KillAt(epoch=1, batch=3)],
            measurements=measured,
        )
    run_dir = runs.run_directory(probed, tmp_path)
    assert set(runs.read_measurements(run_dir, "landscape.csv")["epoch"]) == {1}
    record = training.run(probed, tmp_path, data_dir=data_dir, verbose=0, measurements=measured)
    assert record.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])
    uninterrupted = training.run(
        probed, tmp_path / "uninterrupted", data_dir=data_dir, verbose=0, measurements=measured
    )
    probes = runs.read_measurements(run_dir, "landscape.csv")
    uninterrupted = runs.read_measurements(uninterrupted.path, "landscape.csv")
    # 8 steps an epoch, a probe every 4 and at step 0: steps 0, 4, 8, ..., 24; 4 step sizes each.
    steps_per_epoch = TRAIN_IMAGES // probed.batch_size
    assert sorted(set(probes["step"])) == list(
        range(0, 3 * steps_per_epoch + 1, steps_per_epoch // 2)
    )
    assert len(probes) == 4 * len(set(probes["step"]))
    # A resumed run probes on the batches an uninterrupted one does.
    pd.testing.assert_frame_equal(probes, uninterrupted)
    assert (probes["loss"] > 0).all() and (probes["step_length"] > 0).all()


def test_mixture_runs_log_the_learnt_weight_of_each_layer(tmp_path, data_dir):
    config = tiny_config(norm="gn_plus_gn_first", groups=4, epochs=2, jit_compile=True)
    record = training.run(
        config,
        tmp_path,
        data_dir=data_dir,
        verbose=0,
        measurements=(landscape.probe_measurement, mixtures.mixing_measurement),
    )
    assert record.summary["status"] == "complete"
    # The probes measure nothing in a run without landscape_probes.
    assert not (record.path / "landscape.csv").exists()
    weights = runs.read_measurements(record.path, "mixing.csv")
    assert list(weights.columns) == ["epoch", "layer", "mixing_weight"]
    assert list(zip(weights["epoch"], weights["layer"])) == [
        (1, "norm1"),
        (1, "norm2"),
        (2, "norm1"),
        (2, "norm2"),
    ]
    assert ((weights["mixing_weight"] > 0) & (weights["mixing_weight"] < 1)).all()
    assert not np.allclose(weights["mixing_weight"], 1 / (1 + np.exp(-1.0)))  # s was learnt


def test_a_killed_noise_run_resumes_to_the_noise_and_history_of_an_uninterrupted_one(
    tmp_path, data_dir
):
    # The noise layers' random generator states are not weights: the backup keeps them.
    noisy = tiny_config(
        norm_noise_mean=1e-3, norm_noise_stddev=1.001, norm_noise_groups=4, groups=4, norm="group"
    )
    uninterrupted = training.run(noisy, tmp_path / "uninterrupted", data_dir=data_dir, verbose=0)
    with pytest.raises(Killed):
        training.run(
            noisy,
            tmp_path / "killed",
            data_dir=data_dir,
            verbose=0,
            callbacks=[KillAt(epoch=1, batch=3)],
        )
    resumed = training.run(noisy, tmp_path / "killed", data_dir=data_dir, verbose=0)
    assert resumed.history[COMPARED_COLUMNS].equals(uninterrupted.history[COMPARED_COLUMNS])


def test_a_damaged_backup_marker_restarts_the_run_and_says_so(tmp_path, data_dir, capsys):
    config = tiny_config()
    with pytest.raises(Killed):
        training.run(
            config, tmp_path, data_dir=data_dir, verbose=0, callbacks=[KillAt(epoch=1, batch=3)]
        )
    marker = runs.run_directory(config, tmp_path) / "backup" / "training_metadata.json"
    for damage in (b"\x80\xff junk", b'{"epoch": "one"}', b"[1, 2]", b"{"):
        marker.write_bytes(damage)
        assert training.backed_up_epoch(marker.parent) == 0
        assert str(marker) in capsys.readouterr().out
    resumed = training.run(config, tmp_path, data_dir=data_dir, verbose=0)
    assert resumed.summary["status"] == "complete" and len(resumed.history) == config.epochs


def test_norm_noise_run_trains_and_differs_from_the_clean_run(reference, tmp_path, data_dir):
    noisy = training.run(
        tiny_config(norm_noise_mean=1e-3, norm_noise_stddev=1.001),
        tmp_path,
        data_dir=data_dir,
        verbose=0,
    )
    assert noisy.summary["status"] == "complete"
    assert not noisy.history["train_loss"].equals(reference.history["train_loss"])
    assert isinstance(training.build_model(noisy.config).get_layer("norm1_noise"), OutputNoise)


def test_a_process_whose_tensorflow_started_with_other_threads_is_refused_by_name():
    # Training there would give a history that depends on the machine's cores.
    script = (
        "import tensorflow as tf; tf.constant(1.0) + 1\n"
        "from utils import training; training.use_training_threads()"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode != 0
    assert "already runs with intra/inter-op threads (0, 0)" in child.stderr
    assert "use_training_threads()" in child.stderr


def test_a_run_records_the_cpu_its_threads_and_xla(reference):
    device = reference.summary["device"]
    assert training.cpu_model() in device
    assert f"{training.TRAINING_THREADS} thread)" in device
    assert device.endswith(", no XLA")


def test_a_progress_bar_into_a_pipe_is_one_plain_line_per_epoch(tmp_path, data_dir):
    script = KILLED_RUN.replace("epochs=4", "epochs=2").replace("verbose=0", "verbose=1")
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(data_dir)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    assert "\x1b[" not in child.stdout and "\b" not in child.stdout
    assert "Epoch 1/2" in child.stdout and "Epoch 2/2" in child.stdout


def test_a_history_the_backup_does_not_explain_is_kept_and_said_before_it_is_replaced(
    reference, tmp_path, data_dir, capsys
):
    config = tiny_config()
    run_dir = runs.run_directory(config, tmp_path)
    runs.write_config(run_dir, config)
    runs.write_history(run_dir, runs.read_history_rows(reference.path))
    old_history = (run_dir / "history.csv").read_text()
    kept = []

    class KeptWhileTraining(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kept.append((run_dir / "history.replaced.csv").read_text())

    record = training.run(
        config, tmp_path, data_dir=data_dir, verbose=0, callbacks=[KeptWhileTraining()]
    )
    assert "history.csv has 3 epochs but the backup only 0" in capsys.readouterr().out
    assert kept and set(kept) == {old_history}
    # A finished run's folder holds its results alone.
    assert record.status == "complete" and not (run_dir / "history.replaced.csv").exists()


def test_a_damaged_finished_run_is_neither_read_back_nor_trained_over(reference, tmp_path):
    import shutil

    run_dir = runs.run_directory(reference.config, tmp_path)
    shutil.copytree(reference.path, run_dir)
    (run_dir / "history.csv").unlink()
    with pytest.raises(ValueError, match="says 3 epochs completed"):
        training.run(reference.config, tmp_path, verbose=0)
    assert not (run_dir / "history.csv").exists()


def test_reading_a_finished_run_takes_no_lock(reference, monkeypatch):
    # Finished runs may be another user's or on a read-only mount, where the lock file
    # cannot be created.
    def refuse(run_dir):
        raise PermissionError(f"{run_dir}/.lock: read-only")

    monkeypatch.setattr(runs, "run_lock", refuse)
    record = training.run(reference.config, reference.path.parent.parent, verbose=0)
    assert record.status == "complete" and record.history.equals(reference.history)


def test_a_full_disk_while_backing_up_fails_the_run_cleanly_and_it_resumes(
    reference, tmp_path, data_dir, monkeypatch
):
    savez = np.savez

    def full_disk(file, **arrays):
        file.write(b"some bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(
        OSError,
        match=r"the backup of epoch 1 could not be written to .*partial.state.npz "
        r"\(No space left on device\); the run resumes",
    ):
        training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    backup = runs.run_directory(tiny_config(), tmp_path) / "backup"
    assert not (backup / "partial.state.npz").exists()
    monkeypatch.setattr(np, "savez", savez)
    resumed = training.run(tiny_config(), tmp_path, data_dir=data_dir, verbose=0)
    assert resumed.history[COMPARED_COLUMNS].equals(reference.history[COMPARED_COLUMNS])


FULL_DISK_SCRIPT = """
import sys
from tests.test_training import tiny_config
from utils import training
try:
    training.run(tiny_config(), sys.argv[1], data_dir=sys.argv[2], verbose=0)
except OSError as error:
    print("failed cleanly:", error)
"""


def test_a_really_full_disk_ends_the_process_normally(tmp_path, data_dir):
    # A file system of 600 kB fills up while the first backup is written.
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small file system here")
    try:
        child = subprocess.run(
            [sys.executable, "-c", FULL_DISK_SCRIPT, str(mount_point / "results"), str(data_dir)],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "failed cleanly:" in child.stdout and "No space left on device" in child.stdout
