"""What the engine will do with a run, decided from the results folder alone.

A run whose folder holds a finished run (complete or diverged) is read back; one whose
files are damaged or disagree is left as it is, with the reason; a run whose
training settings equal those of a finished run of another experiment reuses it (a copy,
utils.runs.copy_finished_run); any other is trained. The grid runner plans every run
with `planned_action`, and `utils.training.run` decides again under the run's lock, since
another process may have finished it meanwhile. No TensorFlow.
"""

from pathlib import Path

from utils.runs import FINAL_STATUSES
from utils.runs import read_config
from utils.runs import read_run
from utils.runs import read_summary
from utils.runs import run_directory

__all__ = ["find_reusable", "planned_action"]


def find_reusable(config, results_dir):
    """A finished run of another experiment with the same training settings, or None."""
    for candidate in sorted(Path(results_dir).glob(f"*/{config.run_name}")):
        if candidate.parent.name == config.experiment:
            continue
        try:
            stored = read_config(candidate)
            summary = read_summary(candidate)
            if summary.get("status") in FINAL_STATUSES:
                read_run(candidate)  # a damaged run is not copied
        except (OSError, ValueError):
            continue
        if (
            stored is not None
            and stored.training_settings() == config.training_settings()
            and summary.get("status") in FINAL_STATUSES
            and summary.get("reused_from") is None
        ):
            return candidate
    return None


def planned_action(config, results_dir="results"):
    """What the engine will do with `config`, without doing it.

    Returns:
        ("finished", None) when its folder holds a finished (complete or diverged) run;
        ("damaged", message) when its folder's files are damaged or disagree
        (utils.runs.check_run), which the engine neither reads back nor trains over;
        ("reuse", source_folder) when a finished run of another experiment has the same
        training settings; ("train", None) otherwise.
    """
    run_dir = run_directory(config, results_dir)
    try:
        if read_summary(run_dir).get("status") in FINAL_STATUSES:
            read_run(run_dir)
            return "finished", None
    except ValueError as error:
        return "damaged", str(error)
    source = find_reusable(config, results_dir)
    if source is not None:
        return "reuse", source
    return "train", None
