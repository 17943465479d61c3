"""utils.runs: the run folder format, its writers and its one reader; no TensorFlow."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests import results_factory as factory
from utils import planning
from utils import runs
from utils.config import RunConfig
from utils.profiles import profile_configs

REPOSITORY = factory.__file__.rsplit("/tests/", 1)[0]


def import_modules_in_a_fresh_process(code):
    """Runs `code` in a new interpreter; returns the sorted heavy modules it imported."""
    probe = (
        code + "\nimport sys\nprint(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return completed.stdout.strip().splitlines()[-1]


def test_config_runs_and_results_import_without_tensorflow():
    assert (
        import_modules_in_a_fresh_process(
            "import utils.config, utils.runs, utils.results, utils.report"
        )
        == "[]"
    )


def test_listing_a_grid_starts_without_tensorflow():
    code = (
        "import contextlib, io\n"
        "from utils import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    cli.main(['--profile', 'cpu', '--list'])\n"
        "assert 'norm_comparison/bn_bs32_lr0.003_decay50-75_seed2' in out.getvalue()"
    )
    assert import_modules_in_a_fresh_process(code) == "[]"


def write_complete_run(results_dir):
    """A finished BN run at batch 32, written as the engine writes it."""
    return factory.write_run(
        results_dir, factory.make_config("norm_comparison", "batch", 32), factory.curve(60.0, 10)
    )


def test_written_run_reads_back_whole(tmp_path):
    config = factory.make_config("norm_comparison", "group", 8)
    run_dir = factory.write_run(tmp_path, config, factory.curve(60.0, config.epochs))
    assert run_dir == tmp_path / "norm_comparison" / "gn_g32_bs8_seed0"
    record = runs.read_run(run_dir)
    assert record.config == config
    assert list(record.history.columns) == list(runs.HISTORY_COLUMNS)
    assert list(record.history["epoch"]) == list(range(1, 11))
    assert record.history["val_error"].tolist() == factory.curve(60.0, 10)
    assert tuple(record.summary) == runs.SUMMARY_KEYS + runs.LATER_SUMMARY_KEYS
    assert (record.status, record.status_text) == ("complete", "complete")
    assert record.summary["val_error_median5"] == pytest.approx(
        sorted(factory.curve(60.0, 10)[-5:])[2]
    )
    # Atomic writes leave no temporary files behind.
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "config.json",
        "history.csv",
        "summary.json",
    ]


def test_history_keeps_integers_and_floats_apart(tmp_path):
    row = {
        "epoch": 1,
        "train_loss": 2.5,
        "train_error": 75,
        "val_loss": 2.25,
        "val_error": 80.0,
        "lr": 0.001,
        "seconds": 1.25,
        "steps": 625,
    }
    runs.write_history(tmp_path, [row])
    text = (tmp_path / "history.csv").read_text()
    assert text.splitlines()[1] == "1,2.5,75.0,2.25,80.0,0.001,1.25,625"
    assert runs.read_history_rows(tmp_path) == [{**row, "train_error": 75.0}]


def test_status_of_partial_and_diverged_runs(tmp_path):
    partial = runs.read_run(
        factory.write_run(
            tmp_path,
            factory.make_config("norm_comparison", "batch", 32),
            [90.0, 80.0],
            status="running",
        )
    )
    assert (partial.status, partial.status_text) == ("partial", "partial (2/10 epochs)")
    assert partial.summary["status"] == "running" and partial.diverged_epoch is None
    diverged = runs.read_run(
        factory.write_run(
            tmp_path, factory.make_config("norm_comparison", "layer", 32), [90.0], status="diverged"
        )
    )
    assert (diverged.status, diverged.status_text, diverged.diverged_epoch) == (
        "diverged",
        "diverged at epoch 2",
        2,
    )
    assert diverged.summary["status"] == "diverged"


def test_a_run_written_complete_with_fewer_epochs_than_configured_is_refused(tmp_path):
    # The command line would call it complete and the tables partial: neither is trusted.
    run_dir = write_complete_run(tmp_path)
    runs.write_history(run_dir, runs.read_history_rows(run_dir)[:4])
    summary = runs.read_summary(run_dir)
    with pytest.raises(ValueError, match="says 10 epochs completed, .*history.csv has 4"):
        runs.read_run(run_dir)
    runs.write_summary(run_dir, dict(summary, epochs_completed=4))
    with pytest.raises(ValueError, match="is complete with 4 of the config's 10 epochs"):
        runs.read_run(run_dir)


def test_a_run_without_a_summary_yet_is_partial(tmp_path):
    run_dir = tmp_path / "norm_comparison" / "bn_bs32_seed0"
    runs.write_config(run_dir, factory.make_config("norm_comparison", "batch", 32))
    record = runs.read_run(run_dir)
    assert record.summary == {}
    assert (record.status, record.status_text, record.diverged_epoch) == (
        "partial",
        "partial (0/10 epochs)",
        None,
    )


@pytest.mark.parametrize(
    "status, epoch, text",
    [
        ("complete", None, "complete"),
        ("partial", None, "partial (3/10 epochs)"),
        ("diverged", 4, "diverged at epoch 4"),
        ("diverged", None, "diverged"),
        ("diverged", pd.NA, "diverged"),  # as a load_runs frame holds a missing epoch
    ],
)
def test_status_text_is_the_status_as_tables_show_it(status, epoch, text):
    assert runs.status_text(status, 3, 10, epoch) == text


def test_status_text_refuses_a_status_that_is_not_a_run_status():
    # summary.json's "running" is not a run's status: read_run makes it "partial".
    with pytest.raises(ValueError, match="running"):
        runs.status_text("running", 3, 10, None)


def test_a_damaged_config_names_its_file(tmp_path):
    run_dir = write_complete_run(tmp_path)
    (run_dir / "config.json").write_text('{"norm": "batch", ')
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        runs.read_run(run_dir)
    (run_dir / "config.json").write_text(json.dumps({"norm": "weird", "run_name": "bn_bs32_seed0"}))
    with pytest.raises(ValueError, match="config.json is not a valid run config.*'weird'"):
        runs.read_config(run_dir)


def test_a_damaged_history_names_its_file(tmp_path):
    run_dir = write_complete_run(tmp_path)
    (run_dir / "history.csv").write_text("epoch,val_error\n1,50\n")
    with pytest.raises(ValueError, match="history.csv has the columns"):
        runs.read_run(run_dir)


def test_stored_config_check_lists_the_differing_fields(tmp_path):
    config = factory.make_config("norm_comparison", "batch", 32)
    run_dir = factory.write_run(tmp_path, config, factory.curve(60.0, 10))
    runs.check_stored_config(run_dir, config)  # the same config: no error
    other = RunConfig.from_dict({**config.to_dict(), "momentum": 0.8})
    with pytest.raises(ValueError, match=r"momentum: stored 0.9, requested 0.8"):
        runs.check_stored_config(run_dir, other)


def test_planned_action_finished_reuse_and_train(tmp_path):
    comparison, sweep = (
        [c for c in profile_configs("smoke") if c.experiment == name and c.norm == "batch"]
        for name in ("norm_comparison", "batch_size_sweep")
    )
    factory.write_run(tmp_path, comparison[0], factory.curve(60.0, comparison[0].epochs))
    assert planning.planned_action(comparison[0], tmp_path) == ("finished", None)
    at_32 = next(c for c in sweep if c.batch_size == 32)
    assert planning.planned_action(at_32, tmp_path) == (
        "reuse",
        tmp_path / "norm_comparison" / "bn_bs32_seed0",
    )
    at_2 = next(c for c in sweep if c.batch_size == 2)
    assert planning.planned_action(at_2, tmp_path) == ("train", None)
    runs.copy_finished_run(at_32, tmp_path / "norm_comparison" / "bn_bs32_seed0", tmp_path)
    copied = runs.read_run(runs.run_directory(at_32, tmp_path))
    assert (
        copied.config == at_32 and copied.summary["reused_from"] == "norm_comparison/bn_bs32_seed0"
    )
    assert planning.planned_action(at_32, tmp_path) == ("finished", None)


def test_run_folders_skip_folders_without_a_config(tmp_path):
    write_complete_run(tmp_path)
    (tmp_path / "norm_comparison" / "empty").mkdir()
    assert [path.name for path in runs.run_folders(tmp_path)] == ["bn_bs32_seed0"]
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        runs.run_folders(tmp_path / "missing-folder")


LOCK_HOLDER = """
import sys, time
from utils import runs
with runs.run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold_lock_in_another_process(run_dir):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(run_dir)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_locked_run_names_the_process_and_a_killed_holder_releases_it(tmp_path):
    run_dir = tmp_path / "norm_comparison" / "bn_bs32_seed0"
    holder = hold_lock_in_another_process(run_dir)
    try:
        with pytest.raises(runs.RunLockedError, match=f"being trained by process {holder.pid}"):
            with runs.run_lock(run_dir):
                pass
    finally:
        holder.kill()
        holder.wait()
    # The operating system released the killed process's lock.
    with runs.run_lock(run_dir):
        assert (run_dir / runs.LOCK_FILE).read_text() == str(os.getpid())
    assert not (run_dir / runs.LOCK_FILE).exists()  # deleted with the lock


def test_the_lock_removes_temporaries_a_killed_writer_left(tmp_path):
    run_dir = write_complete_run(tmp_path)
    leftovers = [
        run_dir / ".summary.json.abc123.tmp",
        run_dir / "backup" / ".training_metadata.json.x.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half a fi")
    with runs.run_lock(run_dir):
        assert not any(path.exists() for path in leftovers)
    assert runs.read_run(run_dir).summary["status"] == "complete"


def test_result_files_are_readable_by_everyone_the_umask_allows(tmp_path):
    runs.write_json(tmp_path / "summary.json", {"status": "complete"})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask


# Folders whose files disagree: one check (runs.check_run), the same answer for every reader.


def _damaged_message(run_dir, results_dir):
    """read_run's error, and what planning says of the same folder."""
    with pytest.raises(ValueError) as raised:
        runs.read_run(run_dir)
    config = runs.read_config(run_dir) if (run_dir / "config.json").exists() else None
    return str(raised.value), config


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda d: (d / "history.csv").unlink(), "says 10 epochs completed"),
        (
            lambda d: (d / "history.csv").write_text(",".join(runs.HISTORY_COLUMNS) + "\n"),
            "says 10 epochs completed",
        ),
        (
            lambda d: (d / "history.csv").write_text(
                (d / "history.csv").read_text()
                + (d / "history.csv").read_text().splitlines(True)[-1]
            ),
            "not 1 to 11 in order",
        ),
        (
            lambda d: (d / "history.csv").write_bytes(b"\x80\xff\x00 binary junk"),
            "is not a text file",
        ),
        (lambda d: (d / "summary.json").write_text("[]"), "holds a JSON list, not an object"),
        (lambda d: (d / "summary.json").write_text("{}"), "has status None"),
        (
            lambda d: (d / "summary.json").write_text('{"status": "finished"}'),
            "has status 'finished'",
        ),
        (lambda d: (d / "summary.json").write_text('{"status": "complete"}'), "lacks ["),
        (lambda d: (d / "config.json").write_text("[]"), "holds a JSON list"),
        (lambda d: (d / "config.json").write_text("{}"), "has no run_name"),
    ],
)
def test_a_folder_whose_files_disagree_is_refused_by_every_reader_naming_the_file(
    tmp_path, damage, expected
):
    run_dir = write_complete_run(tmp_path)
    damage(run_dir)
    with pytest.raises(
        ValueError, match=expected.replace("[", r"\[").replace("(", r"\(")
    ) as raised:
        runs.read_run(run_dir)
    assert str(run_dir) in str(raised.value)
    config = factory.make_config("norm_comparison", "batch", 32)
    action, reason = planning.planned_action(config, tmp_path)
    if (run_dir / "summary.json").read_text().startswith('{"run_name"'):
        # A finished summary: planning checks the whole folder, and neither reads nor retrains it.
        assert (action, reason) == ("damaged", str(raised.value))
    else:
        assert action in ("damaged", "train")
        if action == "damaged":
            assert str(run_dir) in reason


def test_a_copy_of_a_run_folder_is_an_error_naming_both_not_another_seed(tmp_path):
    import shutil

    from utils import results

    run_dir = write_complete_run(tmp_path)
    copy = run_dir.parent / f"{run_dir.name} (copy)"
    shutil.copytree(run_dir, copy)
    # The copy is left out and named; the run itself is read.
    loaded = results.load_runs(tmp_path)
    assert list(loaded["run_name"]) == ["bn_bs32_seed0"]
    why = loaded.attrs["damaged"]["norm_comparison/bn_bs32_seed0 (copy)"]
    assert "holds the run norm_comparison/bn_bs32_seed0" in why
    shutil.rmtree(copy)
    moved = tmp_path / "batch_size_sweep" / run_dir.name
    shutil.copytree(run_dir, moved)
    with pytest.raises(ValueError, match="belongs in <results>/norm_comparison/bn_bs32_seed0"):
        runs.read_run(moved)


def test_more_epochs_than_the_config_or_a_history_without_summary_is_refused(tmp_path):
    config = factory.make_config("norm_comparison", "batch", 32, epochs=2)
    run_dir = factory.write_run(tmp_path, config, factory.curve(60.0, 2), status="running")
    rows = runs.read_history_rows(run_dir)
    runs.write_history(run_dir, rows + [dict(rows[-1], epoch=3)])
    with pytest.raises(ValueError, match="has 3 epochs, more than the config's 2"):
        runs.read_run(run_dir)
    runs.write_history(run_dir, rows)
    (run_dir / "summary.json").unlink()
    with pytest.raises(ValueError, match="2 epochs of history but no summary.json"):
        runs.read_run(run_dir)


def test_cells_whose_runs_differ_in_more_than_the_seed_are_not_averaged(tmp_path):
    from utils import results

    factory.write_run(
        tmp_path,
        factory.make_config("norm_comparison", "batch", 32, seed=0, epochs=2),
        factory.curve(60.0, 2),
    )
    factory.write_run(
        tmp_path,
        factory.make_config("norm_comparison", "batch", 32, seed=1, epochs=3),
        factory.curve(62.0, 3),
    )
    cell = results.run_cell(
        results.load_runs(tmp_path), experiment="norm_comparison", norm="batch", batch_size=32
    )
    assert cell.n == 0 and cell.values == ()
    assert cell.status == "not averaged: its runs differ in epochs 2, 3"
    assert cell.run == "bn_bs32_seed0, bn_bs32_seed1"


def test_a_lock_file_that_is_a_link_or_not_a_file_is_refused_and_its_target_untouched(tmp_path):
    run_dir = write_complete_run(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (run_dir / runs.LOCK_FILE).symlink_to(target)
    with pytest.raises(
        ValueError, match=r"\.lock is a symbolic link, not the run's lock file; remove it"
    ):
        with runs.run_lock(run_dir):
            pass
    assert target.read_text() == "keep me"
    (run_dir / runs.LOCK_FILE).unlink()
    os.mkfifo(run_dir / runs.LOCK_FILE)
    with pytest.raises(ValueError, match=r"\.lock is not a regular file"):
        with runs.run_lock(run_dir):
            pass


def test_a_backup_marker_names_a_completed_epoch_or_is_refused_with_the_reason():
    assert runs.parse_backup_marker('{"epoch": 3}') == 3
    assert runs.parse_backup_marker(b'{"epoch": 12}\n') == 12
    for text, reason in (
        ('{"epoch": 0}', "names epoch 0"),
        ('{"epoch": true}', "names epoch True"),
        ('{"epoch": "2"}', "names epoch '2'"),
        ("[1, 2]", "TypeError"),
        ("{", "JSONDecodeError"),
        ("{}", "KeyError"),
    ):
        with pytest.raises(ValueError, match=reason):
            runs.parse_backup_marker(text)
