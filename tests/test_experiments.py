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

from tests import results_factory
from utils import cli
from utils import experiments
from utils import grid as grid_module
from utils import runs
from utils.config import RunConfig
from utils.profiles import profile_configs

REPOSITORY = Path(__file__).resolve().parent.parent
# The smoke profile: 4 classes x 16 synthetic training images.
SMOKE_TRAIN_IMAGES = 64
# The smoke study from the registry: its runs, and its distinct trainings (the sweep's
# batch-32 runs reuse the comparison's).
SMOKE_STUDY = profile_configs("smoke", "study")
SMOKE_TRAININGS = len(
    {json.dumps(c.training_settings(), sort_keys=True, default=str) for c in SMOKE_STUDY}
)


def write_complete_run(config, results_dir):
    """A finished run of `config`, written as the engine writes it (no training)."""
    return results_factory.write_run(
        results_dir, config, results_factory.curve(60.0, config.epochs)
    )


def run_cli(*arguments):
    """Runs the command line in this process; returns (exit status, stdout)."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = cli.main(list(arguments))
    return status, output.getvalue()


@pytest.fixture(scope="module")
def data_dir(smoke_data_dir):
    return smoke_data_dir


@pytest.mark.slow
def test_smoke_grid_completes_with_the_contract_layout(smoke_grid):
    status, _, results = smoke_grid
    assert status == 0
    for config in profile_configs("smoke"):
        run = runs.read_run(results / config.experiment / config.run_name)
        assert run.summary["status"] == "complete", config.run_name
        assert run.config == config
        assert list(run.history.columns) == list(runs.HISTORY_COLUMNS)
        assert len(run.history) == config.epochs
        # Every batch size gets its own number of steps: floor(images / batch).
        expected_steps = SMOKE_TRAIN_IMAGES // config.batch_size
        assert list(run.history["steps"]) == [expected_steps] * config.epochs, config.run_name
        assert run.summary["steps_per_epoch"] == expected_steps
        assert run.summary["images_per_step"] == config.batch_size
        assert not (run.path / "backup").exists()


@pytest.mark.slow
def test_sweep_batch_32_runs_reuse_the_comparison(smoke_grid):
    _, output, results = smoke_grid
    for name in ("bn_bs32_seed0", "gn_g32_bs32_seed0"):
        source = runs.read_run(results / "norm_comparison" / name)
        reused = runs.read_run(results / "batch_size_sweep" / name)
        assert source.summary["reused_from"] is None
        assert reused.summary["reused_from"] == f"norm_comparison/{name}"
        assert reused.summary["experiment"] == "batch_size_sweep"
        assert reused.config.experiment == "batch_size_sweep"
        assert reused.history.equals(source.history)
        assert (
            f"batch_size_sweep/{name}: complete" in output
            and f"reused from norm_comparison/{name}" in output
        )
    trained = [
        line for line in output.splitlines() if ": complete" in line and "reused from" not in line
    ]
    assert len(trained) == SMOKE_TRAININGS == 20


@pytest.mark.slow
def test_cli_prints_a_line_per_run_and_a_summary_table(smoke_grid):
    _, output, _ = smoke_grid
    lines = output.splitlines()
    total = len(SMOKE_STUDY)
    assert lines[0].startswith(f"{total} run(s) of profile 'smoke'")
    for number, config in enumerate(SMOKE_STUDY, start=1):
        assert any(
            line.startswith(f"[{number}/{total}] {config.experiment}/{config.run_name}: complete")
            for line in lines
        )
    header = next(line for line in lines if "val_error_median5" in line)
    assert header.split()[:3] == ["experiment", "run_name", "status"]
    table = lines[lines.index(header) + 1 :]
    assert len(table) == total and all(" complete " in row for row in table)


@pytest.mark.slow
def test_only_selects_runs_and_reads_finished_ones_back(smoke_grid, data_dir, monkeypatch):
    _, _, results = smoke_grid
    monkeypatch.setattr(
        keras.Model, "fit", lambda *a, **k: pytest.fail("fit was called for a finished run")
    )
    status, output = run_cli(
        "--profile",
        "smoke",
        "--only",
        "batch_size_sweep/gn_g32_bs2_seed0,ln_bs32_seed0",
        "--results",
        str(results),
        "--data",
        str(data_dir),
        "--verbose",
        "0",
        "--workers",
        "1",
    )
    assert status == 0
    run_lines = [
        line for line in output.splitlines() if line.startswith("[") and "starting" not in line
    ]
    # A bare run name selects it in every experiment that has it.
    assert [line.split(",")[0] for line in run_lines] == [
        "[1/3] norm_comparison/ln_bs32_seed0: complete",
        "[2/3] batch_size_sweep/ln_bs32_seed0: complete",
        "[3/3] batch_size_sweep/gn_g32_bs2_seed0: complete",
    ]


def test_unknown_only_name_lists_the_valid_names(capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(["--profile", "smoke", "--only", "gn_bs2_seed0"])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert (
        "'gn_bs2_seed0'" in message and "gn_g32_bs2_seed0" in message and "in_bs32_seed0" in message
    )


def test_select_runs_by_name_matches_every_experiment():
    configs = profile_configs("smoke")
    chosen = grid_module.select_runs(configs, "bn_bs32_seed0")
    assert [(c.experiment, c.run_name) for c in chosen] == [
        ("norm_comparison", "bn_bs32_seed0"),
        ("batch_size_sweep", "bn_bs32_seed0"),
    ]
    assert grid_module.select_runs(configs, None) == configs


def test_set_overrides_config_fields():
    assert cli.parse_overrides(["epochs=3", "precision=mixed_bfloat16", "jit_compile=false"]) == {
        "epochs": 3,
        "precision": "mixed_bfloat16",
        "jit_compile": False,
    }
    with pytest.raises(ValueError, match="'colour'"):
        cli.parse_overrides(["colour=red"])
    with pytest.raises(ValueError, match="key=value"):
        cli.parse_overrides(["epochs"])


def test_bad_set_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--profile", "smoke", "--set", "batch_size=0", "--list"])
    assert "batch_size=0" in capsys.readouterr().err


@pytest.mark.slow
def test_grid_goes_on_after_a_diverged_run(tmp_path, data_dir):
    tiny = dict(
        dataset="synthetic-tiny-imagenet",
        classes=4,
        images_per_class=16,
        val_images_per_class=4,
        batch_size=16,
        epochs=1,
        jit_compile=False,
        profile="smoke",
    )
    configs = [
        RunConfig(norm="batch", base_learning_rate=1e6, **tiny),
        RunConfig(norm="group", **tiny),
    ]
    lines = []
    grid = grid_module.run_grid(
        configs, tmp_path, data_dir=data_dir, verbose=0, print_line=lines.append
    )
    assert [item.outcome for item in grid] == ["trained", "trained"]
    assert [item.record.summary["status"] for item in grid] == ["diverged", "complete"]
    assert "diverged in epoch 1" in lines[1]
    table = grid_module.summary_table(grid)
    assert list(table["status"]) == ["diverged", "complete"]


def test_grid_without_data_skips_only_the_runs_to_train(tmp_path):
    configs = profile_configs("smoke", "norm_comparison")
    finished, pending = configs[0], configs[1:]
    write_complete_run(finished, tmp_path)
    lines = []
    grid = grid_module.run_grid(
        configs,
        tmp_path,
        skip_training="the data is not available",
        verbose=0,
        print_line=lines.append,
    )
    assert [item.outcome for item in grid] == ["read back"] + ["not trained"] * len(pending)
    assert grid[0].record.config == finished
    assert all("not trained (the data is not available)" in line for line in lines[-len(pending) :])
    table = grid_module.summary_table(grid)
    assert list(table["status"]) == ["complete"] + ["not trained"] * len(pending)


def test_a_failed_run_is_reported_with_a_short_status(tmp_path, capsys):
    # The real data set, looked for in a folder that does not exist.
    configs = profile_configs("cpu", "norm_comparison")[:1]
    grid = grid_module.run_grid(configs, tmp_path, data_dir=tmp_path / "no-such-folder", verbose=0)
    assert [item.outcome for item in grid] == ["failed"]
    assert isinstance(grid[0].error, Exception)
    assert "failed after" in capsys.readouterr().out
    assert list(grid_module.summary_table(grid)["status"]) == ["failed"]


@pytest.mark.parametrize("request_to_end", [SystemExit(143), KeyboardInterrupt()])
def test_an_exit_that_c_code_turned_into_an_error_ends_the_grid(
    request_to_end, tmp_path, monkeypatch
):
    # A signal handler's exit raised while TensorFlow imports from C comes back as
    # "SystemError: <built-in function __import__> returned a result with an exception
    # set", its cause the exit. That is no failed run: the grid must end, not go on.
    from utils import training

    def interrupted(*args, **kwargs):
        raise SystemError("returned a result with an exception set") from request_to_end

    monkeypatch.setattr(training, "run", interrupted)
    lines = []
    with pytest.raises(type(request_to_end)) as raised:
        grid_module.run_grid(
            profile_configs("smoke", "norm_comparison")[:2],
            tmp_path,
            verbose=0,
            print_line=lines.append,
        )
    assert raised.value is request_to_end
    assert not any("failed" in line for line in lines)


def test_an_error_without_an_exit_behind_it_is_still_a_failed_run(tmp_path, monkeypatch):
    from utils import training

    def broken(*args, **kwargs):
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise SystemError("outer") from inner

    monkeypatch.setattr(training, "run", broken)
    grid = grid_module.run_grid(
        profile_configs("smoke", "norm_comparison")[:2],
        tmp_path,
        verbose=0,
        print_line=lambda line: None,
    )
    assert [item.outcome for item in grid] == ["failed", "failed"]


def test_a_worker_asked_to_end_exits_with_the_shells_status_and_prints_nothing_more():
    import signal

    script = (
        "import os, signal, sys\n"
        "from utils.workers import exit_on_signal\n"
        "signal.signal(signal.SIGTERM, exit_on_signal)\n"
        "print('before', flush=True)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "finally:\n"
        "    print('Traceback (most recent call last): a library ending noisily', flush=True)\n"
        "    print('on stderr too', file=sys.stderr, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        timeout=120,
    )
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stdout == "before\n"
    assert done.stderr == ""


def test_plan_marks_finished_reusable_and_pending_runs(tmp_path):
    configs = profile_configs("smoke")
    comparison = [config for config in configs if config.experiment == "norm_comparison"]
    for config in comparison:
        write_complete_run(config, tmp_path)
    plan = grid_module.plan_runs(configs, tmp_path)
    actions = {(p.config.experiment, p.config.run_name): p.action for p in plan}
    assert all(actions["norm_comparison", c.run_name] == "finished" for c in comparison)
    assert actions["batch_size_sweep", "bn_bs32_seed0"] == "reuse"
    reused = [p for p in plan if p.action == "reuse"]
    assert [p.source for p in reused] == [
        tmp_path / "norm_comparison" / p.config.run_name for p in reused
    ]
    assert [p.config.run_name for p in plan if p.action == "train"] == [
        c.run_name for c in configs if c.experiment == "batch_size_sweep" and c.batch_size != 32
    ]
    table = grid_module.plan_table(plan, tmp_path).set_index(["experiment", "run"])["on disk"]
    assert table["batch_size_sweep", "bn_bs32_seed0"] == "reuses norm_comparison/bn_bs32_seed0"
    assert table["batch_size_sweep", "gn_g32_bs2_seed0"] == "to train"


def test_a_results_folder_of_other_settings_is_refused_naming_the_fields(tmp_path):
    for config in profile_configs("smoke", "norm_comparison", epochs=3, momentum=0.8):
        write_complete_run(config, tmp_path)
    with pytest.raises(ValueError, match="epochs: stored 3, requested 2") as error:
        grid_module.plan_runs(profile_configs("smoke", "norm_comparison"), tmp_path)
    assert "norm_comparison/bn_bs32_seed0" in str(error.value)
    assert "momentum: stored 0.8, requested 0.9" in str(error.value)


@pytest.mark.slow
def test_module_entry_point_lists_runs():
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "utils.experiments",
            "--profile",
            "paper",
            "--experiment",
            "batch_size_sweep",
            "--list",
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    configs = profile_configs("paper", "batch_size_sweep")
    assert [line.split()[0] for line in lines[:-2]] == [
        f"batch_size_sweep/{c.run_name}" for c in configs
    ]
    assert all(line.endswith("  to train") for line in lines[:-2])
    assert (
        lines[-2]
        == f"{len(configs)} run(s) in results/: 0 finished, 0 reuse a finished run, {len(configs)} to train"
    )


def test_list_says_what_is_finished_reused_and_to_train(tmp_path, capsys):
    configs = profile_configs("smoke", "study")
    comparison_bn = next(
        c for c in configs if c.experiment == "norm_comparison" and c.norm == "batch"
    )
    write_complete_run(comparison_bn, tmp_path)
    assert cli.main(["--profile", "smoke", "--results", str(tmp_path), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[0]: line.split(None, 1)[1] for line in lines[:-2]}
    assert status[f"norm_comparison/{comparison_bn.run_name}"] == "finished"
    assert (
        status[f"batch_size_sweep/{comparison_bn.run_name}"]
        == f"reuses norm_comparison/{comparison_bn.run_name}"
    )
    assert status["norm_comparison/gn_g32_bs32_seed0"] == "to train"
    assert lines[-2].endswith(f": 1 finished, 1 reuse a finished run, {len(configs) - 2} to train")
    # How to see the others.
    assert lines[-1].startswith(
        "These are the runs of --experiment study; --experiment all lists every"
    )


def test_a_damaged_run_is_listed_as_damaged_and_the_grid_leaves_it_as_it_is(tmp_path, capsys):
    configs = profile_configs("smoke", "study")
    comparison_bn = next(
        c for c in configs if c.experiment == "norm_comparison" and c.norm == "batch"
    )
    run_dir = write_complete_run(comparison_bn, tmp_path)
    (run_dir / "history.csv").unlink()
    assert cli.main(["--profile", "smoke", "--results", str(tmp_path), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[0]: line.split(None, 1)[1] for line in lines[:-2]}
    assert status[f"norm_comparison/{comparison_bn.run_name}"].startswith(
        f"damaged: {run_dir}/summary.json says"
    )
    # The sweep's copy of it is not made from a damaged run.
    assert status[f"batch_size_sweep/{comparison_bn.run_name}"] == "to train"
    assert lines[-2].endswith(", 1 damaged")
    grid = grid_module.run_grid(
        [comparison_bn], tmp_path, skip_training="no data here", print_line=print
    )
    assert grid[0].outcome == "failed" and "damaged, left as it is" in capsys.readouterr().out
    assert not (run_dir / "history.csv").exists()


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


@pytest.mark.slow
def test_two_logical_devices_each_replica_gets_batch_size_images(tmp_path, data_dir):
    completed = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES_SCRIPT, str(data_dir), str(tmp_path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
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


def test_a_run_being_trained_elsewhere_is_skipped_and_the_grid_goes_on(tmp_path):
    from tests.test_runs import hold_lock_in_another_process

    configs = profile_configs("smoke", "norm_comparison")[:2]
    locked, finished = configs
    write_complete_run(finished, tmp_path)
    holder = hold_lock_in_another_process(runs.run_directory(locked, tmp_path))
    try:
        lines = []
        grid = grid_module.run_grid(configs, tmp_path, verbose=0, print_line=lines.append)
    finally:
        holder.kill()
        holder.wait()
    assert [item.outcome for item in grid] == ["locked", "read back"]
    # Not announced as starting: this process never trained it.
    assert lines[0].endswith(
        f"norm_comparison/bn_bs32_seed0: skipped, being trained by process {holder.pid}"
    )
    assert len(lines) == 2
    assert list(grid_module.summary_table(grid)["status"]) == [
        "skipped (being trained elsewhere)",
        "complete",
    ]


def test_a_run_finished_elsewhere_while_waiting_is_read_back_not_announced(tmp_path, monkeypatch):
    # Planned as "train", but another process finishes it before this one takes the lock.
    config = profile_configs("smoke", "norm_comparison")[0]
    real_lock = runs.run_lock

    @contextlib.contextmanager
    def lock_after_the_other_process_finished(run_dir):
        write_complete_run(config, tmp_path)
        with real_lock(run_dir):
            yield

    monkeypatch.setattr(runs, "run_lock", lock_after_the_other_process_finished)
    lines = []
    grid = grid_module.run_grid([config], tmp_path, verbose=0, print_line=lines.append)
    assert [item.outcome for item in grid] == ["read back"]
    assert not any(line.endswith(": starting") for line in lines)
    assert grid[0].record.summary["status"] == "complete"


def test_overrides_that_make_runs_identical_are_refused():
    with pytest.raises(ValueError, match=r"identical \(norm_comparison/gn_g32_bs32_seed0\)"):
        profile_configs("smoke", "norm_comparison", norm="gn")


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_an_unusable_results_folder_is_refused_before_any_run(tmp_path, kind, capsys):
    results_dir = tmp_path / "results"
    if kind == "file":
        results_dir.write_text("not a folder")
    else:
        results_dir.mkdir()
        results_dir.chmod(0o500)
    try:
        if os.access(results_dir, os.W_OK) and kind == "read-only":
            pytest.skip("running as a user that may write anywhere")
        status, output = run_cli(
            "--profile", "smoke", "--experiment", "norm_comparison", "--results", str(results_dir)
        )
    finally:
        if kind == "read-only":
            results_dir.chmod(0o700)
    assert status == 2
    assert "starting" not in output
    assert str(results_dir) in capsys.readouterr().err


@pytest.mark.slow
def test_two_workers_train_each_run_once_and_write_what_one_process_writes(
    smoke_grid, tmp_path, data_dir
):
    _, _, sequential = smoke_grid
    status, output = run_cli(
        "--profile",
        "smoke",
        "--experiment",
        "study",
        "--results",
        str(tmp_path),
        "--data",
        str(data_dir),
        "--verbose",
        "0",
        "--workers",
        "2",
    )
    assert status == 0
    assert "in 2 processes of 1 thread(s) each" in output
    # The grid's own progress line, at the start and at the end, between the workers' lines.
    progress = [line for line in output.splitlines() if line.startswith("grid [")]
    assert f"| 0 of {SMOKE_TRAININGS} runs done, {SMOKE_TRAININGS} left |" in progress[0]
    assert (
        progress[-1].endswith("nothing left")
        and f"{SMOKE_TRAININGS} of {SMOKE_TRAININGS} runs done" in progress[-1]
    )
    worker_lines = [line for line in output.splitlines() if line.startswith("[worker ")]
    started = [line for line in worker_lines if line.endswith(": starting")]
    skipped = [line for line in worker_lines if ": skipped, being trained by process" in line]

    # 20 distinct trainings, each started by exactly one worker; the other skipped it
    # while it was being trained or read it back once it was finished.
    def worker_and_run(line):
        # "[worker 1] [3/20] norm_comparison/in_bs32_seed0: starting" -> ("1", "norm_comparison/in_bs32_seed0")
        words = line.split()
        return words[1].rstrip("]"), words[3].rstrip(":")

    assert len(started) == SMOKE_TRAININGS
    assert len({worker_and_run(line)[1] for line in started}) == SMOKE_TRAININGS
    assert not {worker_and_run(line) for line in started} & {
        worker_and_run(line) for line in skipped
    }
    assert {line.split()[1].rstrip("]") for line in started} == {"1", "2"}
    for config in profile_configs("smoke"):
        one, two = (
            runs.read_run(runs.run_directory(config, folder)) for folder in (sequential, tmp_path)
        )
        assert two.summary["status"] == "complete"
        assert two.config == one.config
        # Every training uses one thread, in this process or in a worker: the same
        # history on this machine, to the last bit (only the timings differ).
        compared = [c for c in runs.HISTORY_COLUMNS if c != "seconds"]
        assert two.history[compared].equals(one.history[compared]), config.run_name
        assert two.summary["device"] == one.summary["device"]
        assert "1 thread)" in two.summary["device"]
    assert not list(tmp_path.rglob(".lock")) and not list(tmp_path.rglob("*.tmp"))


def test_workers_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--profile", "smoke", "--workers", "0"])
    assert "--workers 0" in capsys.readouterr().err


@pytest.mark.slow
def test_further_experiments_train_their_new_runs_and_reuse_the_study_ones(smoke_grid, data_dir):
    _, _, results = smoke_grid
    status, output = run_cli(
        "--profile",
        "smoke",
        "--experiment",
        "beyond_the_paper",
        "--results",
        str(results),
        "--data",
        str(data_dir),
        "--verbose",
        "0",
        "--workers",
        "1",
        "--seeds",
        "0",
        "--only",
        "brn_bs2_seed0,gn_cpg16_bs32_seed0,bn_ws_bs2_seed0,in_bs32_seed0,bn_bs2_seed0",
    )
    assert status == 0, output
    for name in (
        "batch_renorm/brn_bs2_seed0",
        "group_ablation/gn_cpg16_bs32_seed0",
        "weight_standardization/bn_ws_bs2_seed0",
    ):
        record = runs.read_run(results / name)
        assert record.status == "complete" and record.summary.get("reused_from") is None, name
        assert (
            int(record.history["steps"].iloc[0]) == SMOKE_TRAIN_IMAGES // record.config.batch_size
        )
    # IN is C/G = 1 and BN at batch 2 is the sweep's: both copied, not trained again.
    assert runs.read_summary(results / "group_ablation/in_bs32_seed0")["reused_from"].startswith(
        "norm_comparison/"
    )
    assert (
        runs.read_summary(results / "batch_renorm/bn_bs2_seed0")["reused_from"]
        == "batch_size_sweep/bn_bs2_seed0"
    )


def test_each_experiment_declares_the_measurements_its_runs_take():
    # The engine records only what an experiment declares: a probed run or a mixture run
    # of an experiment that forgot its measurement would lose landscape.csv or mixing.csv.
    from utils import experiments
    from utils import norms
    from utils.experiment import load_function

    for experiment in experiments.REGISTRY.values():
        fields = experiment.run_fields("results", seeds=(0, 1, 2))
        layers = [norms.spec(run.get("norm", RunConfig().norm)).layer or "" for run in fields]
        mixtures = any(layer.startswith("utils.mixtures:") for layer in layers)
        probed = any(run.get("landscape_probes") for run in fields)
        if mixtures:
            assert "utils.mixtures:mixing_measurement" in experiment.measurements, experiment.name
        if probed:
            assert "utils.landscape:probe_measurement" in experiment.measurements, experiment.name
        for target in experiment.measurements:
            assert callable(load_function(target)), target


@pytest.mark.parametrize("field", ["experiment", "profile"])
def test_set_of_a_field_the_options_decide_is_a_usage_error(field, capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(["--profile", "smoke", "--set", f"{field}=other", "--list"])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert f"{field}=other" in message and f"--{field}" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("only", ["", ",,,", " , "])
def test_only_without_a_run_name_is_a_usage_error(only, capsys):
    with pytest.raises(ValueError, match="names no run"):
        grid_module.select_runs(profile_configs("smoke"), only)
    with pytest.raises(SystemExit) as error:
        cli.main(["--profile", "smoke", f"--only={only}", "--list"])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert f"--only {only!r} names no run" in message


@pytest.mark.parametrize(
    "option, value",
    [
        ("--workers", "\u0661"),  # Arabic-Indic one, which int() accepts
        ("--verbose", "\u0661"),
        ("--seeds", "\u0661"),
        ("--seeds", "-1"),
        ("--seeds", "0,0"),
    ],
)
def test_numbers_other_than_plain_digits_are_usage_errors(option, value, capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(["--profile", "smoke", f"{option}={value}", "--list"])
    assert error.value.code == 2
    message = capsys.readouterr().err.splitlines()[-1]
    assert option in message and repr(value) in message


class FakeWorker:
    """Stands for a worker process in `subprocess.Popen`'s place: ends at once, silently."""

    started = []

    def __init__(self, command, **options):
        FakeWorker.started.append(command)
        self.pid = 0
        self.returncode = 0
        self.stdin = io.StringIO()
        self.stdout = io.StringIO("")

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0

    def terminate(self):
        pass

    def kill(self):
        pass


def start_workers_on(tmp_path, monkeypatch, *, asked, cores, available_kilobytes):
    """run_in_workers on the smoke study with `asked` workers, on a machine of `cores`
    cores and that much available memory; returns (worker processes started, lines)."""
    from utils import workers

    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 999999999 kB\nMemAvailable: {available_kilobytes} kB\n")
    monkeypatch.setattr(workers, "MEMINFO", meminfo, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(FakeWorker, "started", [])
    monkeypatch.setattr(workers.subprocess, "Popen", FakeWorker)
    monkeypatch.setattr(grid_module, "run_grid", lambda *arguments, **options: [])
    lines = []
    workers.run_in_workers(
        SMOKE_STUDY,
        tmp_path / "results",
        workers=asked,
        data_dir=tmp_path / "data",
        print_line=lines.append,
    )
    return len(FakeWorker.started), lines


def test_more_workers_than_cores_are_lowered_with_a_line(tmp_path, monkeypatch):
    started, lines = start_workers_on(
        tmp_path, monkeypatch, asked=1000, cores=2, available_kilobytes=64 * 1024 * 1024
    )
    assert started == 2
    lowered = [line for line in lines if "1000" in line]
    assert len(lowered) == 1 and "2 worker processes" in lowered[0] and "2 CPU cores" in lowered[0]
    # What the machine allows is started as asked, without a word.
    started, lines = start_workers_on(
        tmp_path, monkeypatch, asked=2, cores=2, available_kilobytes=64 * 1024 * 1024
    )
    assert started == 2 and not [line for line in lines if "instead of" in line]


def test_more_workers_than_the_memory_holds_are_lowered_with_a_line(tmp_path, monkeypatch):
    from utils import workers

    # Room for two workers of the smoke profile and a half, on a machine of many cores.
    room = int(2.5 * workers.worker_memory(SMOKE_STUDY)) // 1024
    started, lines = start_workers_on(
        tmp_path, monkeypatch, asked=8, cores=64, available_kilobytes=room
    )
    assert started == 2
    lowered = [line for line in lines if "8" in line and "memory" in line]
    assert len(lowered) == 1 and "2 worker processes" in lowered[0]


def child_processes(pid):
    """The ids of the processes whose parent is `pid` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (name) state ppid ...": the name may hold spaces, not a closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def is_running(pid):
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_stopped_grid_leaves_no_configs_and_no_worker_behind(stop, tmp_path, data_dir):
    import signal
    import time

    temporary = tmp_path / "temporary"
    temporary.mkdir()
    # Runs long enough that a worker left behind would print nothing (and so meet no
    # closed pipe) for minutes.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "utils.experiments",
            "--profile",
            "smoke",
            "--experiment",
            "study",
            "--results",
            str(tmp_path / "results"),
            "--data",
            str(data_dir),
            "--verbose",
            "0",
            "--workers",
            "2",
            "--set",
            "epochs=1000",
        ],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Unbuffered: the workers' lines must reach this test while they run.
        env={
            **os.environ,
            "TMPDIR": str(temporary),
            "PYTHONPATH": str(REPOSITORY),
            "PYTHONUNBUFFERED": "1",
        },
        # Ctrl-C as a terminal gives it, even when this suite runs in the background (a
        # shell starts background jobs with SIGINT ignored, and a child inherits that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    workers, survivors, output = [], [], []
    try:
        # Once a worker has printed, both workers run and hold their list of runs.
        for line in parent.stdout:
            output.append(line)
            if line.startswith("[worker "):
                break
        workers = child_processes(parent.pid)
        parent.send_signal(getattr(signal, stop))
        output.append(parent.communicate(timeout=60)[0])
        # A worker ends once it sees its standard input closed and its exit handlers ran:
        # seconds, more on a busy machine.
        deadline = time.monotonic() + 30
        while any(is_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        survivors = [pid for pid in workers if is_running(pid)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in workers:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
    assert len(workers) == 2, "".join(output)
    assert not survivors
    # Ended by the signal, or exited with the status a shell gives a process it ended.
    number = getattr(signal, stop)
    assert parent.returncode in (-number, 128 + number), "".join(output)[-3000:]
    # No traceback from the parent (Ctrl-C: one line that says how to resume) nor from a
    # worker asked to end twice.
    assert "Traceback" not in "".join(output), "".join(output)[-3000:]
    if stop == "SIGINT":
        assert "Run the same command again to resume" in "".join(output)
    # Neither the list of runs nor anything TensorFlow writes there while training.
    assert list(temporary.rglob("*")) == []


def test_an_experiments_figure_is_found_by_its_name():
    comparison = experiments.get("norm_comparison")
    assert comparison.figure("norm_comparison") is comparison.figures[0]
    with pytest.raises(
        ValueError,
        match=r"norm_comparison draws no figure 'curves'; its figures are \['norm_comparison'\]",
    ):
        comparison.figure("curves")
