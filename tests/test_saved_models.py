"""A finished run's kept model (loaded and evaluated by utils.evaluate) and its curves for
TensorBoard."""

import dataclasses

import keras
import pytest

from utils import runs
from utils import training
from utils.config import RunConfig
from utils.experiments.why_gn_trails import plan


@pytest.mark.slow
def test_a_finished_run_keeps_its_model_and_evaluating_it_gives_its_last_epoch(
    tmp_path, smoke_data_dir, capsys, monkeypatch
):
    from utils import evaluate

    monkeypatch.setenv(training.TENSORBOARD_VARIABLE, str(tmp_path / "tensorboard"))
    config = RunConfig(
        experiment="kept",
        profile="smoke",
        dataset="synthetic-tiny-imagenet",
        classes=4,
        images_per_class=16,
        val_images_per_class=4,
        epochs=2,
        jit_compile=False,
        **plan.run_fields(dict(norm="group")),
    )
    record = training.run(config, tmp_path, data_dir=smoke_data_dir, verbose=0)
    assert (record.path / runs.MODEL_FILE).is_file()
    assert not list(record.path.glob("partial.*"))
    # Its curves for TensorBoard, one folder per run.
    for split in ("train", "validation"):
        assert list(
            (tmp_path / "tensorboard" / "kept" / config.run_name / split).glob(
                "events.out.tfevents.*"
            )
        )
    scores = evaluate.evaluate_run(record.path, smoke_data_dir)
    assert scores["val_error"] == pytest.approx(scores["history_val_error"], abs=1e-4)
    assert scores["val_loss"] == pytest.approx(scores["history_val_loss"], rel=1e-5)
    assert evaluate.main([str(record.path), "--data", str(smoke_data_dir)]) == 0
    assert "the same" in capsys.readouterr().out
    # A run reused by another experiment is evaluated with its source's model.
    reuser = dataclasses.replace(config, experiment="reuser")
    runs.copy_finished_run(reuser, record.path, tmp_path)
    assert (
        evaluate.model_path(runs.run_directory(reuser, tmp_path)) == record.path / runs.MODEL_FILE
    )
    (record.path / runs.MODEL_FILE).unlink()
    assert evaluate.main([str(record.path)]) == 2
    assert "has no model.keras" in capsys.readouterr().err


def test_tensorboard_is_on_only_when_its_variable_names_a_folder(tmp_path):
    config = RunConfig(experiment="e")
    assert training.tensorboard_callbacks(config, {}) == []
    assert training.tensorboard_callbacks(config, {training.TENSORBOARD_VARIABLE: " "}) == []
    [callback] = training.tensorboard_callbacks(
        config, {training.TENSORBOARD_VARIABLE: str(tmp_path)}
    )
    assert isinstance(callback, keras.callbacks.TensorBoard)
    assert callback.log_dir == str(tmp_path / "e" / config.run_name)
