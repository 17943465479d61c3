"""The Ray executor: its run store and folder transfer without Ray, then the smoke grid
on a local Ray instance (same histories as local processes, a killed worker's run
retried and resumed, two drivers on one folder)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import results_factory
from utils import cli
from utils import ray_executor
from utils import runs
from utils.config import RunConfig
from utils.profiles import profile_configs

REPOSITORY = Path(__file__).resolve().parent.parent
SMOKE_STUDY = profile_configs("smoke", "study")
HISTORY_COMPARED = [column for column in runs.HISTORY_COLUMNS if column != "seconds"]


def smoke_config(name="batch_size_sweep/gn_g32_bs2_seed0"):
    return next(c for c in SMOKE_STUDY if f"{c.experiment}/{c.run_name}" == name)


# ------------------------------------------------------------- without Ray


def test_folder_round_trip_is_byte_for_byte_and_drops_what_is_gone(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "backup").mkdir(parents=True)
    (source / "history.csv").write_text("epoch\n1\n")
    (source / "backup" / "epoch-1.state.npz").write_bytes(bytes(range(256)))
    (source / "backup" / "training_metadata.json").write_text('{"epoch": 1}\n')
    (source / runs.LOCK_FILE).write_text("123")
    (source / f".summary.json.x{runs.TEMPORARY_SUFFIX}").write_text("half")
    files = ray_executor.read_folder(source)
    assert set(files) == {
        "history.csv",
        "backup/epoch-1.state.npz",
        "backup/training_metadata.json",
    }

    (target / "backup").mkdir(parents=True)
    (target / "backup" / "epoch-0.state.npz").write_bytes(b"older")
    (target / runs.LOCK_FILE).write_text("456")
    ray_executor.write_folder(target, files)
    assert ray_executor.read_folder(target) == files
    assert (target / runs.LOCK_FILE).read_text() == "456"  # the holder's lock stays

    # A finished run sends no backup: the copy loses its backup folder too.
    ray_executor.write_folder(target, {"history.csv": b"epoch\n1\n2\n"})
    assert not (target / "backup").exists()
    assert (target / "history.csv").read_bytes() == b"epoch\n1\n2\n"


def test_the_backup_marker_is_written_last(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(
        runs, "write_atomically", lambda path, data: written.append(Path(path).name)
    )
    ray_executor.write_folder(
        tmp_path,
        {
            "backup/training_metadata.json": b"{}",
            "backup/epoch-2.state.npz": b"",
            "summary.json": b"{}",
            "history.csv": b"",
        },
    )
    assert written == ["history.csv", "summary.json", "epoch-2.state.npz", "training_metadata.json"]


@pytest.mark.parametrize("name", ["../outside.csv", "/etc/passwd"])
def test_a_file_outside_the_run_folder_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match="not a file inside the run folder"):
        ray_executor.write_folder(tmp_path / "run", {name: b"x"})
    assert not (tmp_path / "outside.csv").exists()


def test_resources_one_gpu_for_the_paper_profile_else_cpu_threads():
    smoke = smoke_config()
    paper = profile_configs("paper", "norm_comparison")[0]
    assert ray_executor.task_resources(smoke) == dict(num_cpus=1, num_gpus=0)
    assert ray_executor.task_resources(paper) == dict(num_cpus=1, num_gpus=1)
    assert ray_executor.task_resources(smoke, gpus_per_run=0.5)["num_gpus"] == 0.5
    for bad in (-1, True, "1"):
        with pytest.raises(ValueError, match=f"gpus_per_run={bad!r}"):
            ray_executor.task_resources(smoke, gpus_per_run=bad)


def test_the_store_locks_hands_over_to_a_retry_and_refuses_a_stale_attempt(tmp_path):
    config = smoke_config().to_dict()
    run_dir = runs.run_directory(smoke_config(), tmp_path)
    store, other_driver = ray_executor.RunStore(tmp_path), ray_executor.RunStore(tmp_path)

    assert store.begin(config, "token") == ("train", 1, {})
    # Another driver's store (another process in practice: the lock is the OS's).
    assert other_driver.begin(config, "other token")[0] == "locked"
    store.save(config, "token", 1, {"history.csv": b"epoch\n1\n"})
    # The retry of the same task takes over with what the first attempt sent.
    assert store.begin(config, "token") == ("train", 2, {"history.csv": b"epoch\n1\n"})
    with pytest.raises(ray_executor.StaleAttemptError, match="attempt 1"):
        store.save(config, "token", 1, {"history.csv": b"late"})
    assert (run_dir / "history.csv").read_bytes() == b"epoch\n1\n"

    finished = results_factory.write_run(
        tmp_path / "finished", smoke_config(), results_factory.curve(60.0, 2)
    )
    store.end(config, "token", 2, ray_executor.read_folder(finished))
    assert not (run_dir / runs.LOCK_FILE).exists()
    assert ray_executor.RunStore(tmp_path).begin(config, "third")[0] == "finished"


def test_the_store_releases_a_run_whose_last_attempt_died(tmp_path):
    config = smoke_config().to_dict()
    store = ray_executor.RunStore(tmp_path)
    store.begin(config, "token")
    store.abandon(config, "someone else's token")
    assert ray_executor.RunStore(tmp_path).begin(config, "other")[0] == "locked"
    store.abandon(config, "token")
    assert ray_executor.RunStore(tmp_path).begin(config, "other")[0] == "train"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--address", "auto"], "--address auto is an option of --executor ray"),
        (["--gpus-per-run", "1"], "--gpus-per-run 1.0 is an option of --executor ray"),
        (["--executor", "ray", "--workers", "2"], "--workers 2 is an option of the local executor"),
    ],
)
def test_options_of_the_other_executor_are_refused(arguments, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--profile", "smoke", *arguments])
    assert message in capsys.readouterr().err


def test_without_ray_the_error_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    status = cli.main(
        [
            "--profile",
            "smoke",
            "--experiment",
            "norm_comparison",
            "--only",
            "bn_bs32_seed0",
            "--results",
            str(tmp_path),
            "--executor",
            "ray",
        ]
    )
    assert status == 2
    assert "pip install -r requirements-cluster.txt" in capsys.readouterr().err
    assert not list(tmp_path.rglob("history.csv"))


# ------------------------------------------------------ on a local Ray instance


@pytest.fixture(scope="module")
def data_dir(smoke_data_dir):
    return smoke_data_dir


# A Ray on this machine for the tests, which every driver joins. Without authentication:
# drivers started by the tests then need no token, and it lives for a few minutes only.
RAY_ENVIRONMENT = {
    **{key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"},
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}
HEAD = """
import sys
import ray
context = ray.init(num_cpus=2, include_dashboard=False)
print(context.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the test closes it
"""


@pytest.fixture(scope="module")
def ray_address():
    """The address of a Ray with 2 CPUs on this machine (one, as a cluster's head is),
    shut down after the module's tests."""
    with ray_head(RAY_ENVIRONMENT) as address:
        yield address


@contextlib.contextmanager
def ray_head(environment, folder=None):
    """A Ray head started in `folder` with `environment`; yields its address."""
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD],
        env=environment,
        cwd=folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "Ray did not start"
        yield address
    finally:
        head.stdin.close()
        head.wait(timeout=120)


def start_cli(results, data_dir, address, *arguments):
    """The command line with --executor ray, joining the Ray at `address`, in a process
    of its own (a driver)."""
    command = [
        sys.executable,
        "-m",
        "utils.experiments",
        "--profile",
        "smoke",
        "--executor",
        "ray",
        "--address",
        address,
        "--results",
        str(results),
        "--data",
        str(data_dir),
        "--verbose",
        "0",
        *arguments,
    ]
    return subprocess.Popen(
        command,
        cwd=REPOSITORY,
        env=RAY_ENVIRONMENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, timeout=900):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def trained_lines(output):
    # "[3/20] norm_comparison/in_bs32_seed0: trained (attempt 1)" -> "norm_comparison/in_bs32_seed0"
    return [
        line.split()[1].rstrip(":") for line in output.splitlines() if ": trained (attempt" in line
    ]


def assert_same_runs(configs, folder, reference):
    for config in configs:
        one, two = (
            runs.read_run(runs.run_directory(config, where)) for where in (reference, folder)
        )
        assert two.summary["status"] == "complete", config.run_name
        # The same files, written by the same code: the timings alone differ.
        assert sorted(ray_executor.read_folder(two.path)) == sorted(
            ray_executor.read_folder(one.path)
        )
        assert (two.path / "config.json").read_bytes() == (one.path / "config.json").read_bytes()
        assert two.history[HISTORY_COMPARED].equals(one.history[HISTORY_COMPARED]), config.run_name
        assert two.summary["device"] == one.summary["device"]
    assert not list(Path(folder).rglob(runs.LOCK_FILE)) and not list(Path(folder).rglob("backup"))


def kill_when_backed_up(run_dir, process, timeout=600):
    """SIGKILLs the Ray worker training the run once its first epoch reached the driver's
    folder; returns the backed-up epoch."""
    marker = run_dir / "backup" / "training_metadata.json"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no epoch was backed up"
        time.sleep(0.02)
    title = f"ray::train {run_dir.parent.name}/{run_dir.name}".encode()
    killed = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(title):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
                killed.append(cmdline.parent.name)
        except (OSError, ProcessLookupError):
            continue
    assert killed, "no Ray worker was training the run"
    return json.loads(marker.read_text())["epoch"]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_its_run_resumes(ray_address, data_dir, tmp_path):
    config_name = "batch_size_sweep/gn_g32_bs2_seed0"
    longer = ["--set", "epochs=10", "--set", "images_per_class=48"]
    reference = tmp_path / "local"
    assert (
        cli.main(
            [
                "--profile",
                "smoke",
                "--only",
                config_name,
                "--results",
                str(reference),
                "--data",
                str(data_dir),
                "--verbose",
                "0",
                "--workers",
                "1",
                *longer,
            ]
        )
        == 0
    )
    config = RunConfig.from_dict(json.loads(next(reference.rglob("config.json")).read_text()))

    process = start_cli(tmp_path / "ray", data_dir, ray_address, "--only", config_name, *longer)
    epoch = kill_when_backed_up(runs.run_directory(config, tmp_path / "ray"), process)
    output = finish(process)
    assert "will be retried" in output
    resumed = [
        line for line in output.splitlines() if ": trained (attempt 2, resumed after epoch" in line
    ]
    assert resumed and int(resumed[0].split("epoch ")[1].rstrip(")")) >= epoch, output
    # Resumed from its backup, the run trains exactly as without the kill.
    assert_same_runs([config], tmp_path / "ray", reference)


@pytest.mark.slow
def test_two_drivers_share_the_smoke_grid_and_write_what_local_processes_write(
    smoke_grid, ray_address, data_dir, tmp_path
):
    _, _, local = smoke_grid
    # Two drivers on one cluster and one results folder, as two users' commands would be.
    first, second = (
        start_cli(tmp_path, data_dir, ray_address, "--experiment", "study") for _ in range(2)
    )
    outputs = [finish(first), finish(second)]
    # Each distinct training trained once, by one driver or the other.
    trained = [name for output in outputs for name in trained_lines(output)]
    distinct = {json.dumps(c.training_settings(), sort_keys=True) for c in SMOKE_STUDY}
    assert len(trained) == len(set(trained)) == len(distinct)
    assert all(trained_lines(output) for output in outputs), "one driver trained everything"
    assert not any("\x1b[" in output for output in outputs)  # no colour codes in a log
    assert_same_runs(SMOKE_STUDY, tmp_path, local)


@pytest.mark.parametrize(
    "address, said",
    [
        ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "--address ray://127.0.0.1:1: nothing answers at 127.0.0.1:1"),
        ("head-node", "--address 'head-node' is not auto, host:port or ray://host:port"),
    ],
)
def test_an_address_without_a_cluster_ends_at_once_with_one_line(
    address, said, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("ray")
    # No cluster of this machine's other tests is found: Ray looks for one in RAY_TMPDIR.
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    results = tmp_path / "results"
    started = time.monotonic()
    status = cli.main(
        [
            "--profile",
            "smoke",
            "--experiment",
            "norm_comparison",
            "--only",
            "bn_bs32_seed0",
            "--results",
            str(results),
            "--executor",
            "ray",
            "--address",
            address,
        ]
    )
    errors = capsys.readouterr().err
    assert status == 2 and time.monotonic() - started < 30
    assert f"error: {said}" in errors and "ray start --head" in errors and "Traceback" not in errors
    assert not results.exists()


def test_auto_without_a_cluster_ends_at_once_with_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    from ray._private import services

    # Ray's discovery as it answers on a machine without a cluster (within milliseconds);
    # the cluster that other tests of this module start on this machine would be found.
    def no_cluster(address):
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by "
            "setting `--address` flag or `RAY_ADDRESS` environment variable."
        )

    monkeypatch.setattr(services, "canonicalize_bootstrap_address", no_cluster)
    results = tmp_path / "results"
    status = cli.main(
        [
            "--profile",
            "smoke",
            "--experiment",
            "norm_comparison",
            "--only",
            "bn_bs32_seed0",
            "--results",
            str(results),
            "--executor",
            "ray",
            "--address",
            "auto",
        ]
    )
    errors = capsys.readouterr().err
    assert status == 2 and "error: --address auto: no Ray cluster runs on this machine" in errors
    assert "Traceback" not in errors and not results.exists()


def test_a_cluster_gets_this_checkouts_code_and_nothing_of_its_results():
    from utils import paths

    assert ray_executor.runtime_env(None) is None
    shipped = ray_executor.runtime_env("auto")
    assert shipped["working_dir"] == str(paths.REPOSITORY_ROOT)
    assert {"results", ".venv", "data", ".git"} <= set(shipped["excludes"])


WHERE_UTILS_IS = """
import sys
import ray
from utils import ray_executor
address, shipped = sys.argv[1], sys.argv[2] == "shipped"
ray.init(address=address, runtime_env=ray_executor.runtime_env(address) if shipped else None, logging_level="ERROR")
print(ray.get(ray.remote(lambda: __import__("utils").__file__).remote()))
"""


@pytest.mark.slow
def test_a_node_with_another_checkout_runs_the_drivers_code(tmp_path):
    """A Ray node whose Python finds another `utils` first (another commit's checkout on
    that machine) runs the code that the driver ships; without shipping, it would run its own."""
    pytest.importorskip("ray")
    other = tmp_path / "other_checkout"
    (other / "utils").mkdir(parents=True)
    (other / "utils" / "__init__.py").write_text('"""Another commit."""\n')
    found = {}
    with ray_head({**RAY_ENVIRONMENT, "PYTHONPATH": str(other)}, other) as address:
        for mode in ("shipped", "not shipped"):
            # From a folder of its own: a driver's working folder is on its tasks' path.
            driver = subprocess.run(
                [sys.executable, "-c", WHERE_UTILS_IS, address, mode],
                env=RAY_ENVIRONMENT,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert driver.returncode == 0, driver.stderr
            found[mode] = Path(driver.stdout.split()[-1]).read_text()
    assert found["shipped"] == (REPOSITORY / "utils" / "__init__.py").read_text()
    assert found["not shipped"] == '"""Another commit."""\n'
