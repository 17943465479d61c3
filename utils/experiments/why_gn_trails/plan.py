"""What the "why GN trails" experiments train: their methods, rate, schedule and length,
declared once, and the rule that picks the no-normalization network's rate.

Planning reads finished runs through utils.runs alone (no tables), so it never imports
the analysis.
"""

from pathlib import Path

from utils import runs
from utils.config import PAPER_DECAY_FRACTIONS
from utils.config import RunConfig
from utils.rates import COLLAPSE_MARGIN
from utils.rates import next_rate

SHARED_RATE = "shared_rate"
SCALE_AUGMENTATION = "scale_augmentation"
NO_NORM = "no_norm"

MODEL = "resnet10"
BATCH_SIZE = 32
# ResNet-10's BN rate by the depth sweep's rule (results/depth_sweep), which is also the
# paper's 0.1: one rate for every method, so that a gap in fit is not the rates'.
BASE_LEARNING_RATE = 0.1
# The paper's schedule shape: ÷10 at 30%, 60% and 90% of the epochs.
DECAY_FRACTIONS = PAPER_DECAY_FRACTIONS
# Three times the depth experiment's 15, whose training error still fell at its end.
EPOCHS = 45
SHARED_RATE_METHODS = {
    "BN": dict(norm="batch"),
    "GN": dict(norm="group"),
    "BN+WS": dict(norm="batch", weight_standardization=True),
    "GN+WS": dict(norm="group", weight_standardization=True),
}
SCALE_AUGMENTATION_METHODS = {"BN": dict(norm="batch"), "GN": dict(norm="group")}
NO_NORM_SEEDS = (0,)


def run_fields(fields, *, base_learning_rate=BASE_LEARNING_RATE, **more):
    """The RunConfig fields of one method in these experiments' setting."""
    return dict(
        fields,
        model=MODEL,
        batch_size=BATCH_SIZE,
        base_learning_rate=base_learning_rate,
        lr_decay_fractions=DECAY_FRACTIONS,
        **more,
    )


def collapsed(run_dir):
    """Whether a finished run collapsed: it diverged, or its last epoch's training error
    is within `COLLAPSE_MARGIN` points of chance (utils.rates's rule). None while the run
    is not finished (or has no readable files)."""
    try:
        summary = runs.read_summary(run_dir)
        config = runs.read_config(run_dir)
        rows = runs.read_history_rows(run_dir)
    except (OSError, ValueError):
        return None
    if summary.get("status") == "diverged":
        return True
    if summary.get("status") != "complete" or config is None or not rows:
        return None
    chance = 100.0 - 100.0 / config.classes
    return rows[-1]["train_error"] >= chance - COLLAPSE_MARGIN


def no_norm_runs(results_dir, seeds):
    """The no-normalization runs: the shared rate, then, while the last tried rate
    collapsed, the next rate below it (utils.rates.next_rate). Seed 0 decides."""
    del seeds
    rate = BASE_LEARNING_RATE
    planned = [run_fields(dict(norm="none"), base_learning_rate=rate)]
    while results_dir is not None:
        name = RunConfig(**planned[-1], seed=NO_NORM_SEEDS[0]).run_name
        if not collapsed(Path(results_dir) / NO_NORM / name):
            break
        rate = next_rate(rate, -1)
        planned.append(run_fields(dict(norm="none"), base_learning_rate=rate))
    return planned
