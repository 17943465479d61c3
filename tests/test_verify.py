"""utils.verify: a committed run's first epochs retrained and compared, on tiny synthetic runs."""

import re
import shutil

import pytest

from results_factory import make_config
from results_factory import write_run
from tests.test_training import TINY  # the tiny run: 4 classes x 16 synthetic images, batch 8
from utils import runs
from utils import training
from utils import verify
from utils.config import RunConfig


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def committed(tmp_path_factory, data_dir):
    """The folder of a tiny run trained for all its 3 epochs: the committed run."""
    return training.run(
        RunConfig(**TINY), tmp_path_factory.mktemp("committed"), data_dir=data_dir, verbose=0
    ).path


@pytest.fixture
def no_training(monkeypatch):
    """Fails a test that would train: a refusal must come before any training."""

    def refuse(*arguments, **options):
        raise AssertionError("training started")

    monkeypatch.setattr(training, "run", refuse)


def copy_of_run(run_dir, results_dir):
    """A copy of a run folder in another results folder (its folder name is the run's)."""
    destination = results_dir / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir, destination)
    return destination


def change_last_digit(path, epoch, column):
    """Changes the last significant digit of one value of a history.csv, as text.

    Returns:
        (old text, new text) of the value.
    """
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[epoch].split(",")
    old = fields[header.index(column)]
    mantissa, exponent = re.fullmatch(r"([-0-9.]+)(e.*)?", old).groups()
    last = int(mantissa[-1])
    new = mantissa[:-1] + str(last + 1 if last < 9 else last - 1) + (exponent or "")
    fields[header.index(column)] = new
    lines[epoch] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return old, new


@pytest.mark.slow
def test_a_run_retrained_on_the_same_machine_is_identical(committed, data_dir, tmp_path):
    verification = verify.verify_run(committed, 2, data_dir=data_dir, work_dir=tmp_path)

    assert verification.identical and verification.epochs == 2
    assert verification.largest_differences == {column: 0.0 for column in verify.COMPARED_COLUMNS}
    history = runs.read_run(committed).history
    assert [row["val_loss"] for row in verification.committed_rows] == list(history["val_loss"][:2])
    assert verification.retrained_rows == verification.committed_rows
    device = runs.read_summary(committed)["device"]
    assert verification.committed_device == verification.retrained_device == device
    # Stopped after 2 of the config's 3 epochs, with the committed learning rates.
    retrained = runs.read_run(runs.run_directory(RunConfig(**TINY), tmp_path))
    assert retrained.config.epochs == 3 and list(retrained.history["epoch"]) == [1, 2]
    assert retrained.summary["status"] == "running"
    assert list(retrained.history["lr"]) == list(history["lr"][:2])


@pytest.mark.slow
def test_a_run_compiled_with_xla_is_identical_on_the_same_machine(
    tmp_path_factory, data_dir, tmp_path
):
    # What the README promises for XLA runs (batch below 16 in the cpu profile): the same
    # machine, with one thread, retrains them to the last bit.
    config = RunConfig(**dict(TINY, jit_compile=True, batch_size=2))
    run_dir = training.run(
        config, tmp_path_factory.mktemp("xla"), data_dir=data_dir, verbose=0
    ).path
    verification = verify.verify_run(run_dir, 2, data_dir=data_dir, work_dir=tmp_path)
    assert verification.identical and verification.retrained_device.endswith(", XLA")


@pytest.mark.slow
def test_the_command_says_identical_and_exits_0(committed, data_dir, capsys):
    status = verify.main([str(committed), "--epochs", "2", "--data", str(data_dir)])

    lines = capsys.readouterr().out.splitlines()
    device = runs.read_summary(committed)["device"]
    assert status == 0
    assert lines == [
        f"committed on: {device}",
        f"retrained on: {device}",
        "epoch 1: identical",
        "epoch 2: identical",
        "identical to the last bit over 2 epochs",
    ]


@pytest.mark.slow
def test_one_changed_number_is_reported_with_its_difference_and_exits_1(
    committed, data_dir, tmp_path, capsys
):
    run_dir = copy_of_run(committed, tmp_path / "results")
    old, new = change_last_digit(run_dir / "history.csv", epoch=2, column="val_loss")

    verification = verify.verify_run(run_dir, 2, data_dir=data_dir)

    assert not verification.identical
    assert verification.largest_differences["val_loss"] == abs(float(new) - float(old)) > 0
    assert all(
        verification.largest_differences[column] == 0
        for column in verify.COMPARED_COLUMNS
        if column != "val_loss"
    )
    assert verification.committed_rows[1]["val_loss"] == float(new)
    assert verification.retrained_rows[1]["val_loss"] == float(old)

    status = verify.main([str(run_dir), "--epochs", "2", "--data", str(data_dir)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[2] == "epoch 1: identical"
    assert lines[3] == f"epoch 2: val_loss {float(new):.8g} committed, {float(old):.8g} retrained"
    assert (
        lines[4]
        == f"differs: largest |difference| val_loss {abs(float(new) - float(old)):.3g} over 2 epochs"
    )


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True, "2"])
def test_epochs_below_1_or_not_whole_are_refused(tmp_path, epochs, no_training):
    run_dir = write_run(
        tmp_path, make_config("norm_comparison", "group", 8, epochs=3), [90.0, 80.0, 70.0]
    )
    with pytest.raises(
        ValueError, match=re.escape(f"epochs={epochs!r} must be a whole number, 1 or more")
    ):
        verify.verify_run(run_dir, epochs)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, no_training):
    with pytest.raises(
        ValueError, match="is not a run folder: it has no config.json.*results/<experiment>/<run>"
    ):
        verify.verify_run(tmp_path, 2)
    with pytest.raises(ValueError, match="is not a run folder"):
        verify.verify_run(tmp_path / "missing", 2)


def test_a_run_with_fewer_completed_epochs_is_refused(tmp_path, no_training):
    config = make_config("norm_comparison", "group", 8, epochs=3)
    run_dir = write_run(tmp_path / "partial", config, [90.0], status="running")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "has 1 completed epoch(s), fewer than the epochs=2 to compare; "
            "pass epochs=1 (--epochs 1) or fewer"
        ),
    ):
        verify.verify_run(run_dir, 2)
    empty = write_run(tmp_path / "empty", config, [], status="running")
    with pytest.raises(
        ValueError, match="has 0 completed epoch.*verify a run that has completed an epoch"
    ):
        verify.verify_run(empty, 1)


def test_a_work_dir_that_already_holds_the_run_is_refused(tmp_path, no_training):
    config = make_config("norm_comparison", "group", 8, epochs=3)
    run_dir = write_run(tmp_path / "committed", config, [90.0, 80.0, 70.0])
    work_dir = tmp_path / "work"
    write_run(work_dir, config, [90.0], status="running")
    with pytest.raises(ValueError, match="already holds .*pass an empty work_dir"):
        verify.verify_run(run_dir, 1, work_dir=work_dir)


def test_the_command_refuses_with_the_reason_and_exit_status_2(tmp_path, capsys, no_training):
    with pytest.raises(SystemExit) as exit_info:
        verify.main([str(tmp_path), "--epochs", "2"])
    assert exit_info.value.code == 2
    assert "is not a run folder" in capsys.readouterr().err
