"""Damaged run folders, whatever their shape, are "damaged: <why>" in bounded words, and
every reader (the report, --list, the rate rule, the grid) goes on with the other runs;
plus the small cases of the engine's inputs: seeds beyond NumPy's, a lock that is a
folder, leftovers in finished runs, GN_WORKERS with spaces."""

import contextlib
import io
import json

import pytest

from tests import results_factory as factory
from utils import cli
from utils import notebook
from utils import planning
from utils import report
from utils import results
from utils import runs
from utils.config import RunConfig
from utils.profiles import profile_configs

# The longest a damaged run's message may be, its folder aside: a file and a short reason
# (the damaged file's own bytes at most `utils.runs`'s short quote).
MESSAGE_LIMIT = 400


def _nul_history(run_dir, size):
    (run_dir / "history.csv").write_bytes(b"\x00" * size)


def _history_folder(run_dir):
    (run_dir / "history.csv").unlink()
    (run_dir / "history.csv").mkdir()


def _summary_folder(run_dir):
    (run_dir / "summary.json").unlink()
    (run_dir / "summary.json").mkdir()


def _nested_summary(run_dir):
    (run_dir / "summary.json").write_text("[" * 200_000 + "]" * 200_000)


def _empty_summary(run_dir):
    (run_dir / "summary.json").write_text("{}")


def _damaged_config(run_dir):
    (run_dir / "config.json").write_text('{"run_name": ')


DAMAGES = {
    "a field over the csv limit": (lambda run_dir: _nul_history(run_dir, 200_000), "history.csv"),
    "4 KB of NUL bytes": (lambda run_dir: _nul_history(run_dir, 4096), "history.csv"),
    "history.csv a folder": (_history_folder, "history.csv"),
    "summary.json a folder": (_summary_folder, "summary.json"),
    "summary.json nested too deeply": (_nested_summary, "summary.json"),
    "summary.json empty": (_empty_summary, "summary.json"),
    "config.json cut short": (_damaged_config, "config.json"),
}


@pytest.fixture
def folder(tmp_path):
    return factory.make_results(tmp_path / "results")


def _damage(folder, damage):
    run_dir = runs.run_directory(factory.make_config("norm_comparison", "group", 32), folder)
    DAMAGES[damage][0](run_dir)
    return run_dir


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_is_left_out_and_named_in_few_words(folder, damage):
    run_dir = _damage(folder, damage)
    loaded = results.load_runs(folder)
    assert "gn_g32_bs32_seed0" not in set(
        loaded[loaded["experiment"] == "norm_comparison"]["run_name"]
    )
    assert len(loaded) == len(runs.run_folders(folder)) - 1
    why = loaded.attrs["damaged"]["norm_comparison/gn_g32_bs32_seed0"]
    assert why.startswith("damaged: ") and DAMAGES[damage][1] in why
    assert len(why.replace(str(folder), "results")) < MESSAGE_LIMIT and "\x00" not in why
    # The report goes on, and names it in its section.
    text = report.section_markdown("study", folder)
    assert "Left out, norm_comparison/gn_g32_bs32_seed0: damaged: " in text and "Table 1" in text
    # Planning names it too, in as few words.
    config = factory.make_config("norm_comparison", "group", 32)
    action, source = planning.planned_action(config, folder)
    if (run_dir / "summary.json").is_file() and damage == "config.json cut short":
        assert action == "damaged"
    if action == "damaged":
        assert len(source.replace(str(folder), "results")) < MESSAGE_LIMIT and "\x00" not in source


def _cpu_folder(root):
    """A cpu-profile results folder with one finished run of the fair comparison's rate
    sweep and one of the study (whose runs the rate rule reads too)."""
    from utils.experiments.fair_comparison import rate_sweep

    for experiment, fields in (
        ("norm_comparison", dict(norm="layer", batch_size=32)),
        (rate_sweep.RATE_SWEEP, rate_sweep.run_fields("GN", 0.003)),
    ):
        config = next(
            c
            for c in profile_configs("cpu", experiment)
            if all(getattr(c, key) == value for key, value in fields.items())
        )
        factory.write_run(root, config, factory.curve(70.0, config.epochs))
    return root


@pytest.mark.parametrize(
    "damage", ["summary.json empty", "config.json cut short", "a field over the csv limit"]
)
def test_one_damaged_run_stops_neither_the_list_nor_the_grid(tmp_path, damage):
    root = _cpu_folder(tmp_path / "results")
    run_dir = next(
        runs.run_folders(root)[index]
        for index, path in enumerate(runs.run_folders(root))
        if path.parent.name == "norm_comparison"
    )
    DAMAGES[damage][0](run_dir)
    # The rate rule reads every run: planning the fair comparison goes on.
    assert profile_configs("cpu", "fair_comparison", results_dir=root)
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        status = cli.main(["--experiment", "fair_comparison", "--list", "--results", str(root)])
        study = cli.main(["--experiment", "study", "--list", "--results", str(root)])
    assert status == 0 and study == 0, errors.getvalue()
    assert "Traceback" not in errors.getvalue()
    line = next(
        line
        for line in output.getvalue().splitlines()
        if line.startswith("norm_comparison/ln_bs32")
    )
    assert "damaged: " in line and len(line) < MESSAGE_LIMIT


def test_seeds_beyond_numpys_are_refused_before_any_run_starts(tmp_path, capsys):
    with pytest.raises(ValueError, match="seed=4294967296 must be an integer from 0 to 4294967295"):
        RunConfig(seed=2**32)
    assert RunConfig(seed=2**32 - 1).seed == 2**32 - 1
    with pytest.raises(SystemExit) as stopped:
        cli.main(
            ["--profile", "smoke", "--seeds", "4294967296", "--results", str(tmp_path / "results")]
        )
    assert stopped.value.code == 2
    assert (
        "--seeds '4294967296' must be comma-separated integers from 0 to 4294967295"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "results").exists()
    with pytest.raises(ValueError, match="at most 4294967295"):
        notebook.read_settings({"GN_SEEDS": "4294967296"})


def test_a_lock_that_is_a_folder_says_to_remove_it(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / runs.LOCK_FILE).mkdir(parents=True)
    with pytest.raises(ValueError, match=r"\.lock is a folder, not the run's lock file; remove it"):
        with runs.run_lock(run_dir):
            pass


@pytest.mark.parametrize("leftover", [runs.LOCK_FILE, "history.replaced.csv"])
def test_a_finished_run_read_back_loses_what_a_killed_process_left(folder, leftover):
    from utils import training

    config = factory.make_config("norm_comparison", "batch", 32)
    run_dir = runs.run_directory(config, folder)
    (run_dir / leftover).write_text("12345" if leftover == runs.LOCK_FILE else "epoch\n")
    record = training.run(config, folder)
    assert record.status == "complete" and not (run_dir / leftover).exists()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"


def test_gn_workers_takes_spaces_as_the_command_line_does():
    assert notebook.read_settings({"GN_WORKERS": " 2"}).workers == 2
    assert cli.build_parser().parse_args(["--workers", " 2"]).workers == 2
