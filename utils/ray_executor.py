"""Training a grid on Ray: each run one Ray task, on this machine or over a cluster.

    python -m utils.experiments --profile smoke --executor ray
    python -m utils.experiments --profile paper --executor ray --address auto

The driver (this process) plans the grid once and submits one task for every run to
train, asking for the resources its config needs (`task_resources`: one GPU per run when
the profile trains on GPUs, else the training's CPU threads); Ray places the tasks on
the nodes that have them. Without `address` Ray starts on this machine only.

The results folder stays on the driver's disk, and workers need no shared file system:
a `RunStore` actor, placed on the driver's node, holds each run's lock in the results
folder (`utils.runs.run_lock`, so no two drivers, nor a driver and local worker
processes, train one run), hands a task the run's folder when it starts, and takes the
folder back after every epoch and at the end. A task trains in a temporary folder on its
node with `utils.training.run`; its files travel through Ray's object store and are
written into the results folder byte for byte as the task wrote them.

A task whose worker process or node dies is retried by Ray (`retries` times) and resumes
from the last epoch the store received, as a stopped local run resumes from its backup.
An error raised by the training itself fails the run, as with local processes: the same
code would raise it again. After the tasks, the grid is read back in this process as the
local executor does (`utils.grid.run_grid`, which also copies the runs reused by other
experiments), without training anything.

Ray is not installed by `make install`: `make install-cluster` adds it (requirements-cluster.txt).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
import uuid
from pathlib import Path

from utils import grid as grid_module
from utils import planning
from utils import runs
from utils.progress import ProgressReporter
from utils.config import RunConfig

__all__ = ["RETRIES", "task_resources", "read_folder", "write_folder", "RunStore", "run_on_ray"]

# How many times Ray starts a run's task again after its worker process or node died.
RETRIES = 3
# The profiles whose runs are meant for a GPU each (utils.profiles): "paper" is ResNet-50
# on the full data set.
GPU_PROFILES = ("paper",)
# The file that names the backed-up epoch: written last, so that the folder on the
# driver's disk is at every instant a consistent backup.
_BACKUP_MARKER = f"{runs.BACKUP_FOLDER}/{runs.BACKUP_MARKER}"


def _import_ray():
    # Set before Ray is imported, which reads some of them then. No usage report to Ray's
    # servers from a results run; every line of every run kept (Ray's deduplication
    # folds repeated lines, in colour); no colour codes in a log file or a notebook.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "--executor ray needs Ray, which `make install` does not install: run "
            "`make install-cluster` (or pip install -r requirements-cluster.txt)"
        ) from error
    return ray


def task_resources(config, gpus_per_run=None):
    """The Ray resources of a run's task.

    Args:
        config: the run's `RunConfig`.
        gpus_per_run: GPUs for each run; None: 1 for the profiles meant for GPUs
            (`GPU_PROFILES`), else 0.

    Returns:
        dict(num_cpus=..., num_gpus=...): a training uses `TRAINING_THREADS` CPU threads.
    """
    from utils.quiet import import_tensorflow

    import_tensorflow()
    from utils.training import TRAINING_THREADS

    if gpus_per_run is None:
        gpus_per_run = 1 if config.profile in GPU_PROFILES else 0
    if (
        isinstance(gpus_per_run, bool)
        or not isinstance(gpus_per_run, (int, float))
        or gpus_per_run < 0
    ):
        raise ValueError(f"gpus_per_run={gpus_per_run!r} must be a number >= 0, such as 1.")
    return dict(num_cpus=TRAINING_THREADS, num_gpus=gpus_per_run)


# ------------------------------------------------------------ a run folder as bytes


def read_folder(run_dir):
    """Every file of a run folder as {path relative to it (posix): bytes}, without its
    lock file and half-written temporaries."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return {}
    return {
        path.relative_to(run_dir).as_posix(): path.read_bytes()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file()
        and path.name != runs.LOCK_FILE
        and not path.name.endswith(runs.TEMPORARY_SUFFIX)
    }


def _write_order(relative):
    # History and summary first, then the backup's state, its marker last: the marker
    # names the state to restore, and a history shorter than the backup would restart
    # the run (utils.training._resume_point).
    if relative == _BACKUP_MARKER:
        return 2
    return 1 if relative.startswith(f"{runs.BACKUP_FOLDER}/") else 0


def write_folder(run_dir, files):
    """Makes run_dir hold exactly `files` (read_folder's form), each written atomically,
    then deletes the files that are not among them (an older epoch's backup; the backup
    once the run finished). Its lock file is left alone."""
    run_dir = Path(run_dir)
    for relative in sorted(files, key=lambda name: (_write_order(name), name)):
        target = run_dir / relative
        if run_dir.resolve() not in target.resolve().parents:
            raise ValueError(f"{relative!r} is not a file inside the run folder {run_dir}.")
        runs.write_atomically(target, files[relative])
    for relative in set(read_folder(run_dir)) - set(files):
        (run_dir / relative).unlink()
    for folder in sorted((path for path in run_dir.rglob("*") if path.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty ones


# ------------------------------------------------------------------ the store (actor)


class StaleAttemptError(RuntimeError):
    """Files sent by an attempt of a run that a later attempt has replaced."""


class RunStore:
    """The results folder, as seen by the tasks (a Ray actor on the driver's node).

    `begin` takes a run's lock and returns its folder; `save` writes the folder a task
    sends after an epoch; `end` writes the last files and releases the lock. A task is
    known by the token its driver gave it: a retry of the task (same token) takes the run
    over from the attempt before it, whose later files are refused.
    """

    def __init__(self, results_dir):
        self.results_dir = Path(results_dir)
        self.held = {}  # run folder -> (lock's ExitStack, token, attempt)

    def _run_dir(self, config_dict):
        return runs.run_directory(RunConfig.from_dict(config_dict), self.results_dir)

    def begin(self, config_dict, token):
        """("train", attempt, files), or ("finished" | "damaged" | "locked", detail)."""
        config = RunConfig.from_dict(config_dict)
        run_dir = self._run_dir(config_dict)
        if str(run_dir) in self.held:
            lock, held_token, attempt = self.held[str(run_dir)]
            if held_token != token:
                return "locked", os.getpid()
            self.held[str(run_dir)] = (lock, token, attempt + 1)
            return "train", attempt + 1, read_folder(run_dir)
        lock = contextlib.ExitStack()
        try:
            lock.enter_context(runs.run_lock(run_dir))
        except runs.RunLockedError as locked:
            return "locked", locked.pid
        # Decided under the lock: another driver may have finished the run meanwhile.
        action, source = planning.planned_action(config, self.results_dir)
        if action in ("finished", "damaged"):
            lock.close()
            return action, source and str(source)
        self.held[str(run_dir)] = (lock, token, 1)
        return "train", 1, read_folder(run_dir)

    def _check(self, run_dir, token, attempt):
        held = self.held.get(str(run_dir))
        if held is None or held[1:] != (token, attempt):
            raise StaleAttemptError(
                f"{run_dir}: files of attempt {attempt}, which a later attempt replaced"
            )

    def save(self, config_dict, token, attempt, files):
        run_dir = self._run_dir(config_dict)
        self._check(run_dir, token, attempt)
        write_folder(run_dir, files)

    def abandon(self, config_dict, token):
        """Releases the lock of a run whose last attempt died (nothing to write)."""
        run_dir = self._run_dir(config_dict)
        if str(run_dir) in self.held and self.held[str(run_dir)][1] == token:
            self.held.pop(str(run_dir))[0].close()

    def end(self, config_dict, token, attempt, files):
        run_dir = self._run_dir(config_dict)
        self._check(run_dir, token, attempt)
        try:
            write_folder(run_dir, files)
        finally:
            self.held.pop(str(run_dir))[0].close()


# ------------------------------------------------------------------------ the task


def _backed_up_epoch(files):
    with contextlib.suppress(KeyError, ValueError):
        return runs.parse_backup_marker(files[_BACKUP_MARKER])
    return 0


def train_task(config_dict, store, token, data_dir, verbose):
    """One run, in a Ray worker process: trains it in a temporary folder from the
    store's copy of its run folder, sending the folder back after every epoch.

    Returns:
        (outcome, detail): ("trained", "attempt A, resumed after epoch E" or "attempt
        1"), or the store's answer when the run is not to be trained here.
    """
    from utils.quiet import import_tensorflow

    tensorflow = import_tensorflow()
    import keras

    from utils import training

    # Tasks given a fraction of a GPU (--gpus-per-run 0.5) share it: each takes the memory
    # it uses, not the whole device.
    for gpu in tensorflow.config.list_physical_devices("GPU"):
        tensorflow.config.experimental.set_memory_growth(gpu, True)

    # Before this worker's first TensorFlow operation; the same threads as every training.
    training.use_training_threads()
    ray = _import_ray()
    config = RunConfig.from_dict(config_dict)
    answer = ray.get(store.begin.remote(config_dict, token))
    if answer[0] != "train":
        return answer
    _, attempt, files = answer
    resumed = _backed_up_epoch(files)

    class SendFolder(keras.callbacks.Callback):
        # After the run's own callbacks (utils.training.run): the epoch's history row
        # and backup are on disk when the folder is read.
        def on_epoch_end(self, epoch, logs=None):
            ray.get(store.save.remote(config_dict, token, attempt, read_folder(run_dir)))

    with tempfile.TemporaryDirectory(prefix="gn-ray-") as scratch:
        run_dir = runs.run_directory(config, scratch)
        write_folder(run_dir, files)
        try:
            training.run(
                config,
                scratch,
                data_dir=data_dir,
                verbose=verbose,
                measurements=grid_module.measurements_of(config),
                callbacks=[SendFolder()],
            )
        finally:
            # What was trained is kept whatever happened (a stopped local run keeps it too).
            ray.get(store.end.remote(config_dict, token, attempt, read_folder(run_dir)))
    detail = f"attempt {attempt}" + (f", resumed after epoch {resumed}" if resumed else "")
    return "trained", detail


# ---------------------------------------------------------------------- the driver


def _describe_failure(error):
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


# Seconds to wait for a cluster's address to answer before saying it does not.
CONNECT_TIMEOUT = 10
_ADDRESS_HINT = (
    "start a cluster with `ray start --head` on its head node, then pass `--address auto` there or "
    "`--address <head node's IP>:6379` elsewhere; or leave --address out to run Ray on this machine"
)


def check_address(address):
    """Raises ValueError, naming the address and what to try, when no Ray cluster can be
    there: "auto" with none on this machine, or a host:port (or ray://host:port) where
    nothing answers within `CONNECT_TIMEOUT` seconds. None (Ray on this machine) passes.
    Ray itself would retry such an address for minutes without a word."""
    if address is None:
        return
    if address == "auto":
        from ray._private import services

        try:
            services.canonicalize_bootstrap_address("auto")
        except ConnectionError:
            raise ValueError(
                f"--address auto: no Ray cluster runs on this machine (none in RAY_ADDRESS or in Ray's "
                f"session files); {_ADDRESS_HINT}."
            ) from None
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"--address {address!r} is not auto, host:port or ray://host:port; {_ADDRESS_HINT}."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"--address {address}: nothing answers at {host}:{port} ({reason}); {_ADDRESS_HINT}."
        ) from None


# What of the checkout is not shipped to a cluster's nodes: results, data, environments and
# the notebooks' outputs stay on the machine that drives the grid.
SHIPPED_EXCLUDES = [
    ".git",
    ".venv",
    "results",
    "results-*",
    "data",
    "figures",
    "notebooks",
    "build",
    "*.egg-info",
    "__pycache__",
    "*.ipynb",
    "*.keras",
    "*.npz",
]


def runtime_env(address):
    """Ray's runtime environment for a grid: on a cluster (`address` given), this checkout's
    code is shipped to every node (working_dir), so that no node runs another commit's
    code; on this machine alone (None) the tasks run the checkout itself."""
    if address is None:
        return None
    from utils import paths

    return {"working_dir": str(paths.REPOSITORY_ROOT), "excludes": list(SHIPPED_EXCLUDES)}


def _start_ray(ray, address):
    """Connects to the cluster at `address`, or starts Ray on this machine (None).
    Returns whether this call started it (and so should shut it down).

    Raises:
        ValueError: naming the address, when Ray cannot connect to it.
    """
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level="WARNING",
            runtime_env=runtime_env(address),
        )
    except (ConnectionError, TimeoutError) as error:
        raise ValueError(
            f"--address {address}: Ray could not connect ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no reason given'}); {_ADDRESS_HINT}."
        ) from None
    return True


def _submit_all(ray, pending, results_dir, data_dir, verbose, gpus_per_run, retries, print_line):
    """Trains `pending` as Ray tasks; returns {(experiment, run_name): GridRun outcome
    and error} for the runs the tasks did not read back as trained by another."""
    driver_node = ray.get_runtime_context().get_node_id()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    store = (
        ray.remote(RunStore)
        .options(
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(driver_node, soft=False),
        )
        .remote(str(Path(results_dir).resolve()))
    )
    remote_task = ray.remote(train_task)
    token = uuid.uuid4().hex
    futures = {}
    for config in pending:
        options = dict(
            task_resources(config, gpus_per_run),
            max_retries=retries,
            retry_exceptions=False,
            name=f"train {config.experiment}/{config.run_name}",
        )
        futures[
            remote_task.options(**options).remote(config.to_dict(), store, token, data_dir, verbose)
        ] = config
    outcomes = {}
    remaining = list(futures)
    while remaining:
        [done], remaining = ray.wait(remaining, num_returns=1)
        config = futures[done]
        label = f"[{len(futures) - len(remaining)}/{len(futures)}] {config.experiment}/{config.run_name}"
        try:
            outcome, detail = ray.get(done)
        except Exception as error:  # noqa: BLE001 - a failed run must not stop the others
            # Its last attempt may have died holding the lock.
            ray.get(store.abandon.remote(config.to_dict(), token))
            print_line(f"{label}: failed: {_describe_failure(error)}")
            outcomes[config.experiment, config.run_name] = ("failed", error)
            continue
        if outcome == "locked":
            print_line(
                f"{label}: skipped, being trained by {f'process {detail}' if detail else 'another process'}"
            )
            outcomes[config.experiment, config.run_name] = (
                "locked",
                runs.RunLockedError(runs.run_directory(config, results_dir), detail),
            )
        elif outcome == "damaged":
            print_line(f"{label}: damaged, left as it is: {detail}")
            outcomes[config.experiment, config.run_name] = ("failed", ValueError(detail))
        elif outcome == "finished":
            print_line(f"{label}: finished by another process, read back")
        else:
            print_line(f"{label}: trained ({detail})")
            outcomes[config.experiment, config.run_name] = ("trained", None)
    return outcomes


def _with_outcome(item, outcomes):
    """A GridRun of the read-back grid with what its task did: the read-back calls a
    run a task trained "read back", and one it failed or skipped "not trained"."""
    outcome, error = outcomes.get((item.config.experiment, item.config.run_name), (None, None))
    if (outcome == "trained" and item.outcome == "read back") or (
        outcome in ("failed", "locked") and item.outcome == "not trained"
    ):
        return dataclasses.replace(item, outcome=outcome, error=error)
    return item


def run_on_ray(
    configs,
    results_dir="results",
    *,
    address=None,
    data_dir=None,
    verbose=0,
    gpus_per_run=None,
    retries=RETRIES,
    print_line=print,
):
    """Trains the grid's pending runs as Ray tasks, then reads the grid back.

    Args:
        configs: the grid (RunConfigs, in order).
        results_dir: the results folder, on this machine's disk.
        address: the Ray cluster ("auto", "ray://host:10001", ...); None starts Ray
            on this machine.
        data_dir: where each node finds the data (utils.training.load_data); None: as
            load_data finds it on the node (TINY_IMAGENET_DIR, or its download).
        verbose: Keras fit verbosity in the tasks (Ray prefixes their lines).
        gpus_per_run: see `task_resources`.
        retries: times a task is started again after its worker or node died.
        print_line: called with one line per run.

    Returns:
        A list of `utils.grid.GridRun`, in grid order, as `utils.grid.run_grid` returns.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries={retries!r} must be a whole number >= 0.")
    from utils import workers

    pending = workers.distinct_trainings(configs, results_dir)
    outcomes = {}
    if pending:
        for config in pending:
            task_resources(config, gpus_per_run)  # a bad value fails before Ray starts
        ray = _import_ray()
        if not ray.is_initialized():
            check_address(address)
        created = not Path(results_dir).exists()
        grid_module.check_writable(results_dir)
        if address is None and not ray.is_initialized():
            # Ray on this machine alone: decode the data once here, rather than in every
            # task that starts at once (the tasks then only read the cache).
            workers.prepare_data(pending, data_dir)
        try:
            started = _start_ray(ray, address)
        except ValueError:
            if created:
                # Nothing was written: leave no empty results folder behind.
                with contextlib.suppress(OSError):
                    Path(results_dir).rmdir()
            raise
        try:
            resources = ray.cluster_resources()
            print_line(
                f"Training {len(pending)} run(s) as Ray tasks on {resources.get('CPU', 0):g} CPU(s) and "
                f"{resources.get('GPU', 0):g} GPU(s)."
            )
            # Ray runs the tasks side by side: the estimate divides among its CPUs' worth of them.
            side_by_side = max(
                1, min(len(pending), int(resources.get("GPU", 0) or resources.get("CPU", 1)))
            )
            with ProgressReporter(
                pending, results_dir, workers=side_by_side, print_line=print_line
            ):
                outcomes = _submit_all(
                    ray, pending, results_dir, data_dir, verbose, gpus_per_run, retries, print_line
                )
        finally:
            if started:
                ray.shutdown()
    grid = grid_module.run_grid(
        configs,
        results_dir,
        data_dir=data_dir,
        verbose=verbose,
        print_line=print_line,
        skip_training="the Ray task did not finish it: see above",
    )
    return [_with_outcome(item, outcomes) for item in grid]
