"""Results folders into pandas tables, side by side with the paper.

A results folder holds ``<experiment>/<run_name>/{config.json, history.csv, summary.json}``
(utils.runs reads them). Every statistic here is recomputed from history.csv (summary.json
gives only the run's status and divergence epoch): the headline number is the
MEDIAN of the last 5 completed epochs, as in the paper, or of all completed epochs when a
run has fewer than 5. Our numbers are top-1 validation error (%) of the project's model
on the run's dataset; the paper's are ResNet-50 on ImageNet (see utils.paper).

Runs that are missing, partial (still running, or fewer epochs than configured) or
diverged are kept and labelled, never dropped: see the ``status`` column of `load_runs`
(`status_texts` writes it as the tables show it) and the ``status`` columns of the tables.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from utils import paper
from utils import runs as runs_module
from utils.experiments import study
from utils.norms import canonical_norm

# The table of runs that every table here starts from (see utils.run_frame).
from utils.run_frame import CONFIG_COLUMNS  # noqa: F401
from utils.run_frame import RUN_COLUMNS  # noqa: F401
from utils.run_frame import as_runs
from utils.run_frame import data_context
from utils.run_frame import differing_settings
from utils.run_frame import load_runs
from utils.run_frame import not_averaged_text
from utils.run_frame import run_row  # noqa: F401

NORM_COMPARISON = study.NORM_COMPARISON
BATCH_SIZE_SWEEP = study.BATCH_SIZE_SWEEP
OURS_NOTE = (
    "ours: top-1 validation error (%), median of the last 5 completed epochs (of all "
    "completed epochs when a run has fewer than 5), recomputed from history.csv"
)
PAPER_NOTE = f"paper: {paper.PAPER_UNIT}, {paper.PAPER_SETTING} ({paper.CITATION})"
SPREAD_NOTE = (
    "mean ± standard deviation over seeds (n seeds), differences paired by seed; the seed sets "
    "the initial weights, the data order and the augmentation, on one fixed data subset"
)


def load_histories(results_dir="results", runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per completed epoch of every run, tagged with the run's identity.

    Args:
        results_dir: the results root; ignored when `runs` is given.
        runs: a frame from `load_runs` (its ``path`` column says where each run lives).

    Returns:
        The history.csv columns plus experiment, run_name, norm, groups,
        channels_per_group, weight_standardization, batch_size, seed, status, dataset and
        profile.
    """
    if runs is None:
        runs = load_runs(results_dir)
    identity = [
        "experiment",
        "run_name",
        "norm",
        "groups",
        "channels_per_group",
        "weight_standardization",
        "batch_size",
        "seed",
        "status",
        "dataset",
        "profile",
    ]
    pieces = []
    for run in runs.itertuples(index=False):
        history = runs_module.read_run(run.path).history
        if history.empty:
            continue
        for column in identity:
            history[column] = getattr(run, column)
        pieces.append(history)
    columns = identity + list(runs_module.HISTORY_COLUMNS)
    if not pieces:
        return pd.DataFrame(columns=columns)
    return pd.concat(pieces, ignore_index=True)[columns]


def find_runs(runs: pd.DataFrame, *, norm=None, **fields) -> pd.DataFrame:
    """The rows of `runs` that match every given field (None matches anything).

    Args:
        runs: a frame from `load_runs`.
        norm: a normalization name or short name.
        **fields: other columns of RUN_COLUMNS and their values, e.g. experiment,
            batch_size, groups, weight_standardization, weight_decay.

    Raises:
        ValueError: for a field that is not a column.
    """
    unknown = sorted(set(fields) - set(runs.columns))
    if unknown:
        raise ValueError(f"Unknown run fields {unknown}; valid fields are {list(runs.columns)}.")
    mask = pd.Series(True, index=runs.index)
    if norm is not None:
        mask &= runs["norm"] == canonical_norm(norm)
    for column, value in fields.items():
        if value is not None:
            mask &= runs[column] == value
    return runs[mask.fillna(False).astype(bool)]


def averaged_runs(matches: pd.DataFrame) -> pd.DataFrame:
    """The runs of a cell whose numbers count: the complete ones, else the partial ones
    (with a median), else none; none either when they differ in more than the seed
    (`differing_settings`). The one place this rule is written."""
    if differing_settings(matches):
        return matches.iloc[0:0]
    for status in ("complete", "partial"):
        usable = matches[(matches["status"] == status) & matches["val_error_median5"].notna()]
        if not usable.empty:
            return usable
    return matches.iloc[0:0]


def status_texts(runs: pd.DataFrame) -> pd.Series:
    """The status of each run of a frame from `load_runs` as tables show it
    (`utils.runs.status_text`), e.g. "partial (3/10 epochs)"; same index as `runs`."""
    columns = (runs[name] for name in ("status", "epochs_completed", "epochs", "diverged_epoch"))
    return pd.Series(
        [runs_module.status_text(*row) for row in zip(*columns)], index=runs.index, dtype=object
    )


def _spread(values) -> tuple[float, float]:
    """(mean, sd) of numbers; sd with n - 1 in the denominator, NaN for fewer than two."""
    values = [float(value) for value in values]
    if not values:
        return math.nan, math.nan
    mean = float(np.mean(values))
    return mean, float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


@dataclasses.dataclass(frozen=True)
class PerSeed:
    """Numbers, one per seed, and their mean, sd and count.

    Args:
        values: the numbers, in seed order.
        seeds: the seed of each.
    """

    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        """How many seeds."""
        return len(self.values)

    @property
    def mean(self) -> float:
        """The mean of `values`; NaN without any."""
        return _spread(self.values)[0]

    @property
    def sd(self) -> float:
        """Their standard deviation (n - 1 in the denominator); NaN for fewer than two."""
        return _spread(self.values)[1]


@dataclasses.dataclass(frozen=True)
class Cell(PerSeed):
    """Our number for one table cell (`run_cell`): per seed, the median val error of the
    complete runs (of the partial runs when none is complete; none when the runs are
    missing or diverged), with its status and the runs behind it.

    Args:
        values, seeds: as `PerSeed`; `value` is their mean, `sd` and `n` as `PerSeed`.
        train: the mean over the same runs of their median training error (NaN without).
        loss: the mean over the same runs of their median validation loss (NaN without).
        status: the cell's status as tables show it: "complete", "complete (3 seeds)", the
            status of the runs behind it ("partial (3/10 epochs)"; "diverged at epoch 4"
            when none has a number), then "; also <run>: <status>" for each run left out,
            or "missing" when there is no run.
        run: the names of all the cell's runs, ", "-separated ("" when missing).
    """

    train: float = math.nan
    loss: float = math.nan
    status: str = "missing"
    run: str = ""

    @property
    def value(self) -> float:
        """The mean over seeds; NaN without any."""
        return self.mean


@dataclasses.dataclass(frozen=True)
class Difference(PerSeed):
    """One cell minus another, seed by seed (`paired_difference`): paired, because the same
    seed gives both runs the same data order and augmentation. `values` are the
    differences for the seeds both cells have, in the first cell's seed order."""

    @property
    def negative(self) -> int:
        """In how many seeds the difference is < 0."""
        return sum(value < 0 for value in self.values)


def captioned(rows, caption) -> pd.DataFrame:
    """A table of `rows` (dicts, or a dict of columns) with its caption in
    `attrs["caption"]`, which `to_markdown` prints under it."""
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = caption
    return frame


def run_cell(runs: pd.DataFrame, **selection) -> Cell:
    """Our number for one table cell over seeds, with its status and the runs behind it.

    Args:
        runs: a frame from `load_runs`.
        **selection: fields passed to `find_runs` (experiment, norm, batch_size, groups,
            channels_per_group, weight_standardization, weight_decay, ...).

    Returns:
        A `Cell`: the mean over seeds of the median val error of the complete runs (of the
        partial runs when none is complete; NaN when the runs are missing or diverged),
        its sd and n, the per-seed numbers behind it, and the cell's status.
    """
    matches = find_runs(runs, **selection).sort_values("seed")
    if matches.empty:
        return Cell()
    names = ", ".join(matches["run_name"].astype(str))
    differing = differing_settings(matches)
    if differing:
        # Runs of other settings are not seeds of one number: say so rather than average.
        return Cell(status=not_averaged_text(differing), run=names)
    usable = averaged_runs(matches)
    if usable.empty:
        return Cell(status="; ".join(status_texts(matches)), run=names)
    if usable.iloc[0]["status"] == "complete":
        status = "complete" if len(usable) == 1 else f"complete ({len(usable)} seeds)"
    else:
        status = "; ".join(status_texts(usable))
    others = matches.drop(usable.index)
    if not others.empty:
        status += "; also " + "; ".join(others["run_name"] + ": " + status_texts(others))
    values = usable["val_error_median5"].astype(float)
    return Cell(
        values=tuple(values),
        seeds=tuple(int(seed) for seed in usable["seed"]),
        train=float(usable["train_error_median5"].mean()),
        loss=float(usable["val_loss_median5"].mean()),
        status=status,
        run=names,
    )


def statistic_cell(runs: pd.DataFrame, statistic: str, **selection) -> Cell:
    """`run_cell` of another per-run statistic (e.g. "train_error_median5"): the same runs,
    picked by the same rule, summarised by that column instead of the validation error."""
    return run_cell(runs.assign(val_error_median5=runs[statistic]), **selection)


def paired_difference(first: Cell, second: Cell) -> Difference:
    """`first` minus `second` seed by seed, for two cells from `run_cell`.

    Returns:
        A `Difference`: the differences for the seeds both cells have, their mean and sd,
        and in how many seeds the difference is < 0.
    """
    second_by_seed = dict(zip(second.seeds, second.values))
    pairs = [
        (seed, value - second_by_seed[seed])
        for seed, value in zip(first.seeds, first.values)
        if seed in second_by_seed
    ]
    return Difference(
        values=tuple(difference for _, difference in pairs), seeds=tuple(seed for seed, _ in pairs)
    )


def seed_table(source="results", *, experiments=None, column="val_error_median5") -> pd.DataFrame:
    """The per-seed numbers behind every mean: one row per (experiment, norm, batch size),
    one column per seed.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiments: restrict to these experiments (None: all).
        column: the statistic, e.g. "val_error_median5" or "train_error_median5".

    Returns:
        A DataFrame indexed by (experiment, norm, batch_size), columns the seeds; runs
        that are not complete are left out (NaN).
    """
    runs = as_runs(source)
    runs = runs[runs["status"] == "complete"]
    if experiments is not None:
        runs = runs[runs["experiment"].isin(experiments)]
    return runs.pivot_table(
        index=["experiment", "norm", "batch_size"], columns="seed", values=column, aggfunc="first"
    )


def distinct_trainings(source="results", experiments=None) -> pd.DataFrame:
    """The complete runs of `source`, each training once.

    A run copied from another (``reused_from``) is one training with the run it was copied
    from. Each training is represented by the run that trained it when that run is among
    the runs, else by one of its copies (a copy outlives a source in another experiment),
    so which training a run belongs to never depends on which other folders exist.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiments: None for every training; else only the trainings that a run of one
            of these experiments trained or copied.

    Returns:
        The rows of `load_runs` for those runs, with a column ``training`` naming the
        training (``experiment/run_name`` of the run that trained).
    """
    runs = as_runs(source)
    complete = runs[runs["status"] == "complete"]
    own_name = complete["experiment"] + "/" + complete["run_name"]
    complete = complete.assign(training=complete["reused_from"].fillna(own_name))
    if experiments is not None:
        wanted = set(complete.loc[complete["experiment"].isin(experiments), "training"])
        complete = complete[complete["training"].isin(wanted)]
    # The run that trained first (a stable sort keeps the folder order otherwise).
    copied = complete["reused_from"].notna()
    return (
        complete.loc[copied.sort_values(kind="stable").index]
        .drop_duplicates("training")
        .sort_index()
    )


def training_time(source="results") -> pd.DataFrame:
    """What training the complete runs of `source` from scratch costs, by seed.

    Args:
        source: a results folder or a frame from `load_runs`.

    Returns:
        A DataFrame indexed by seed with the columns ``trainings`` (distinct trainings,
        see `distinct_trainings`) and ``hours`` (their summed ``wall_seconds``).
    """
    trainings = distinct_trainings(source)
    return trainings.groupby("seed").agg(
        trainings=("training", "size"), hours=("wall_seconds", lambda seconds: seconds.sum() / 3600)
    )


def measured_wall_hours(source="results"):
    """The wall time the trainings of `source` took, measured: the union of the training
    stretches their summaries record ("trained_during", start and end of each process that
    trained a run), in hours; None when a trained complete run has no record (older runs)."""
    runs = as_runs(source)
    trained = runs[(runs["status"] == "complete") & runs["reused_from"].isna()]
    stretches = []
    for path in trained["path"]:
        recorded = runs_module.read_summary(path).get("trained_during")
        if not recorded:
            return None
        stretches += [tuple(pd.Timestamp(time) for time in stretch) for stretch in recorded]
    if not stretches:
        return None
    total, current_start, current_end = pd.Timedelta(0), None, None
    for start, end in sorted(stretches):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    total += current_end - current_start
    return total.total_seconds() / 3600


def compute_table(source="results") -> pd.DataFrame:
    """What each experiment's complete runs cost, in registry order, and the total.

    Returns:
        One row per experiment with complete runs: "experiment", "complete runs",
        "trained for it" (runs it trained itself; the others are copies of another
        experiment's run with the same settings), "training hours" (the summed wall time
        of those trainings, each timed with a second training beside it) and "wall hours
        with 2 workers" (half of that); then a row "all" over every distinct training.
    """
    from utils import experiments as registry

    runs = as_runs(source)
    complete = runs[runs["status"] == "complete"]
    rows = []
    for name in registry.NAMES:
        mine = complete[complete["experiment"] == name]
        if mine.empty:
            continue
        own = mine[mine["reused_from"].isna()]
        rows.append(
            {
                "experiment": name,
                "complete runs": len(mine),
                "trained for it": len(own),
                "training hours": own["wall_seconds"].sum() / 3600,
            }
        )
    every = distinct_trainings(runs)
    rows.append(
        {
            "experiment": "all",
            "complete runs": len(complete),
            "trained for it": len(every),
            "training hours": every["wall_seconds"].sum() / 3600,
        }
    )
    frame = pd.DataFrame(
        rows, columns=["experiment", "complete runs", "trained for it", "training hours"]
    )
    frame["wall hours with 2 workers"] = frame["training hours"] / 2
    return captioned(
        frame.to_dict("records"),
        (
            "Compute: training hours are the summed wall time of the trainings each experiment did itself (its "
            "other runs are copies of finished runs with the same settings); every training ran beside a second one "
            f"(two workers on this machine's cores), so the grid's wall time is about half ({data_context(runs)})"
        ),
    )


def learning_before_decays(
    source="results", *, experiments=(NORM_COMPARISON, BATCH_SIZE_SWEEP), epochs_before=2
) -> pd.DataFrame:
    """Whether the models were still learning when the learning rate was cut: the change of
    training error over the last `epochs_before` epochs before each cut.

    A cut is read from each run's history (the first epoch whose rate is lower than the
    epoch before), so the table follows whatever schedule the runs used.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiments: the experiments whose complete runs count (each training once).
        epochs_before: how many epochs before a cut the change is taken over.

    Returns:
        A DataFrame indexed by ``cut_after_epoch`` with the columns ``change`` and
        ``change_sd`` (points of training error, mean and sd over runs), ``falling`` (runs
        whose error fell) and ``runs``.
    """
    trainings = distinct_trainings(source, experiments)
    rows = []
    for run in trainings.itertuples(index=False):
        history = runs_module.read_run(run.path).history.set_index("epoch")
        lower = history["lr"] < history["lr"].shift()
        for first_epoch_after in history.index[lower]:
            cut_after = first_epoch_after - 1
            if cut_after - epochs_before in history.index:
                change = (
                    history.loc[cut_after, "train_error"]
                    - history.loc[cut_after - epochs_before, "train_error"]
                )
                rows.append({"cut_after_epoch": cut_after, "change": change})
    changes = pd.DataFrame(rows, columns=["cut_after_epoch", "change"])
    grouped = changes.groupby("cut_after_epoch")["change"]
    return pd.DataFrame(
        {
            "change": grouped.mean(),
            "change_sd": grouped.std(),
            "falling": grouped.agg(lambda values: int((values < 0).sum())),
            "runs": grouped.size(),
        }
    )


def _cells(runs, experiment, batch_size, groups=None) -> dict:
    """The run_cell of every normalization of Table 1 at one batch size."""
    return {
        norm: run_cell(
            runs,
            experiment=experiment,
            norm=norm,
            batch_size=batch_size,
            groups=groups if norm == "group" else None,
        )
        for norm in paper.TABLE1_NORMS
    }


def _labelled(cells: dict) -> dict:
    """Cells keyed by normalization name, keyed by their table label instead ("BN", ...)."""
    return {paper.NORM_LABELS[norm]: cell for norm, cell in cells.items()}


def seed_counts(cells: dict) -> str:
    """ "3" when every cell of {label: run_cell} has 3 seeds, else "BN: 3, LN: 2, ..."."""
    counts = {label: cell.n for label, cell in cells.items()}
    if len(set(counts.values())) == 1:
        return str(next(iter(counts.values())))
    return ", ".join(f"{label}: {count}" for label, count in counts.items())


def cell_statuses(cells: dict) -> str:
    """ "complete" when every cell of {label: run_cell} is, else the cells that are not,
    with their status."""
    others = [
        f"{label}: {cell.status}"
        for label, cell in cells.items()
        if not cell.status.startswith("complete") or "; also" in cell.status
    ]
    return "; ".join(others) if others else "complete"


def table1(
    source="results", *, experiment=NORM_COMPARISON, batch_size=32, groups=None
) -> pd.DataFrame:
    """Table 1 side by side: BN, LN, IN, GN at batch 32, ours (mean and sd over seeds)
    beside the paper's.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiment: the experiment whose runs fill the table.
        batch_size: our batch size for the comparison (the paper's is 32 images/GPU).
        groups: restrict GN to runs with this many groups (None: any).

    Returns:
        One row per normalization with columns "norm", "ours val error (%)" and its
        "... sd", "n" (seeds), "ours minus BN" (paired by seed) and its sd, "paper val
        error (%)", "paper minus BN", "status", "run". `to_markdown` shows each mean with
        its sd. Units and sources are in ``frame.attrs["caption"]``.
    """
    runs = as_runs(source)
    cells = _cells(runs, experiment, batch_size, groups)
    rows = []
    for norm, cell in cells.items():
        difference = paired_difference(cell, cells["batch"])
        rows.append(
            {
                "norm": paper.NORM_LABELS[norm],
                "ours val error (%)": cell.value,
                "ours val error (%) sd": cell.sd,
                "n": cell.n,
                "ours minus BN": difference.mean,
                "ours minus BN sd": difference.sd,
                "paper val error (%)": paper.TABLE1[norm],
                "paper minus BN": paper.TABLE1_DIFFERENCE_TO_BN[norm],
                "status": cell.status,
                "run": cell.run,
            }
        )
    return captioned(
        rows,
        (
            f"Table 1 analogue: validation error at batch {batch_size} ({data_context(runs)}). {OURS_NOTE}; "
            f"{SPREAD_NOTE}. {PAPER_NOTE}, 32 images/GPU."
        ),
    )


def table2(
    source="results", *, experiment=BATCH_SIZE_SWEEP, batch_sizes=paper.BATCH_SIZES, groups=None
) -> pd.DataFrame:
    """Table 2 side by side: every normalization by batch size, with GN minus BN (paired
    by seed), ours (mean and sd over seeds) beside the paper's.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiment: the experiment whose runs fill the table.
        batch_sizes: the batch sizes to list, largest first like the paper.
        groups: restrict GN to runs with this many groups (None: any).

    Returns:
        One row per batch size with columns "batch size", "BN", "LN", "IN", "GN" (our
        mean val error, each followed by its "... sd"), "GN minus BN" and its sd, "n"
        (seeds), "paper BN", "paper GN", "paper GN minus BN", "status". `to_markdown`
        shows each mean with its sd. Units are in ``frame.attrs["caption"]``.
    """
    runs = as_runs(source)
    rows = []
    for batch_size in batch_sizes:
        cells = _cells(runs, experiment, batch_size, groups)
        row = {"batch size": batch_size}
        for norm, cell in cells.items():
            row[paper.NORM_LABELS[norm]] = cell.value
            row[f"{paper.NORM_LABELS[norm]} sd"] = cell.sd
        difference = paired_difference(cells["group"], cells["batch"])
        row.update(
            {
                "GN minus BN": difference.mean,
                "GN minus BN sd": difference.sd,
                "n": seed_counts(_labelled(cells)),
                "paper BN": paper.TABLE2["batch"].get(batch_size, math.nan),
                "paper GN": paper.TABLE2["group"].get(batch_size, math.nan),
                "paper GN minus BN": paper.TABLE2_GN_MINUS_BN.get(batch_size, math.nan),
                "status": cell_statuses(_labelled(cells)),
            }
        )
        rows.append(row)
    return captioned(
        rows,
        (
            f"Table 2 analogue: validation error (%) by batch size ({data_context(runs)}). BN, LN, IN, GN: "
            f"ours. {OURS_NOTE}; {SPREAD_NOTE}. {PAPER_NOTE}."
        ),
    )


def by_batch_table(
    labelled_cells,
    batch_sizes,
    differences,
    paper_columns=None,
    caption="",
    *,
    row_name="batch size",
    directions=False,
):
    """Rows by batch size (or any other key) of labelled cells, paired differences and the
    paper's numbers.

    Args:
        labelled_cells: `labelled_cells(batch_size)` gives {label: run_cell}.
        batch_sizes: the rows.
        differences: (first label, second label) pairs: a column "first minus second"
            (paired by seed) and its sd each.
        paper_columns: `paper_columns(batch_size)` gives {column: published number};
            None adds none.
        caption: the table's caption (``frame.attrs["caption"]``).
        row_name: the first column's name.
        directions: also a column "... lower in" after each difference: "k/n", in how
            many of the n seeds it is below 0.

    Returns:
        One row per batch size: "batch size", each label's mean and "... sd", the
        differences, "n", the paper's columns and "status".
    """
    rows = []
    for batch_size in batch_sizes:
        cells = labelled_cells(batch_size)
        row = {row_name: batch_size}
        for label, cell in cells.items():
            row[label] = cell.value
            row[f"{label} sd"] = cell.sd
        for first, second in differences:
            difference = paired_difference(cells[first], cells[second])
            row[f"{first} minus {second}"] = difference.mean
            row[f"{first} minus {second} sd"] = difference.sd
            if directions:
                row[f"{first} minus {second} lower in"] = (
                    f"{difference.negative}/{difference.n}" if difference.n else ""
                )
        row["n"] = seed_counts(cells)
        row.update(paper_columns(batch_size) if paper_columns else {})
        row["status"] = cell_statuses(cells)
        rows.append(row)
    return captioned(rows, caption)


def report_table(source="results") -> pd.DataFrame:
    """Our validation LOSS beside the 2023 report's numbers, which are losses, not errors.

    Args:
        source: a results folder or a frame from `load_runs`.

    Returns:
        One row per (experiment, norm, batch size) the report has, with columns "experiment",
        "norm", "batch size", "ours val loss", "report val loss", "status", "run".
    """
    runs = as_runs(source)
    rows = []
    for record in paper.report_records():
        cell = run_cell(
            runs,
            experiment=record["experiment"],
            norm=record["norm"],
            batch_size=record["batch_size"],
        )
        rows.append(
            {
                "experiment": record["experiment"],
                "norm": paper.NORM_LABELS[record["norm"]],
                "batch size": record["batch_size"],
                "ours val loss": cell.loss,
                "report val loss": record["value"],
                "status": cell.status,
                "run": cell.run,
            }
        )
    return captioned(
        rows,
        (
            f"Validation cross-entropy loss (nats), median of the last 5 epochs ({data_context(runs)}), "
            f"beside the {paper.REPORT_CITATION} ({paper.REPORT_SETTING}), whose tables call this loss "
            "'error'. Its batch sizes never took effect, so its sweep rows are all batch-32 runs."
        ),
    )


def batch_size_drop(
    source="results", *, large=32, small=2, experiment=BATCH_SIZE_SWEEP
) -> pd.DataFrame:
    """How many points of val error each normalization loses from batch `large` to `small`.

    Args:
        source: a results folder or a frame from `load_runs`.
        large: the large batch size (the paper's 32).
        small: the small batch size (the paper's 2).
        experiment: the experiment whose runs are compared.

    Returns:
        Rows "BN", "LN", "IN", "GN" (index "norm") with columns ours_large, ours_small
        (means over seeds), ours_increase and ours_increase_sd (error at `small` minus
        error at `large`, seed by seed, in percentage points), n (seeds with both),
        higher_at_small (in how many of them the error is higher at `small`),
        paper_increase (BN and GN only), status_large, status_small. NaN where runs are
        missing or diverged.
    """
    runs = as_runs(source)
    rows = {}
    for norm in paper.TABLE1_NORMS:
        at_large = run_cell(runs, experiment=experiment, norm=norm, batch_size=large)
        at_small = run_cell(runs, experiment=experiment, norm=norm, batch_size=small)
        increase = paired_difference(at_small, at_large)
        published = paper.TABLE2.get(norm, {})
        rows[paper.NORM_LABELS[norm]] = {
            "ours_large": at_large.value,
            "ours_small": at_small.value,
            "ours_increase": increase.mean,
            "ours_increase_sd": increase.sd,
            "n": increase.n,
            "higher_at_small": increase.n
            - increase.negative
            - sum(v == 0 for v in increase.values),
            "paper_increase": published.get(small, math.nan) - published.get(large, math.nan),
            "status_large": at_large.status,
            "status_small": at_small.status,
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "norm"
    return frame


def batch_size_drop_table(
    source="results", *, large=32, small=2, experiment=BATCH_SIZE_SWEEP
) -> pd.DataFrame:
    """`batch_size_drop` as a table to read: one row per normalization, named columns, a caption."""
    drop = batch_size_drop(source, large=large, small=small, experiment=experiment)
    table = pd.DataFrame(
        {
            "norm": drop.index,
            f"batch {large}": drop["ours_large"].to_numpy(),
            f"batch {small}": drop["ours_small"].to_numpy(),
            "change": drop["ours_increase"].to_numpy(),
            "change sd": drop["ours_increase_sd"].to_numpy(),
            f"higher at {small}": [
                f"{higher} of {n}" for higher, n in zip(drop["higher_at_small"], drop["n"])
            ],
            "paper's change": drop["paper_increase"].to_numpy(),
        }
    )
    table.attrs["caption"] = (
        f"Val error (%, median of the last 5 epochs, mean over seeds) at batch {large} and {small}, and its "
        f"change from {large} to {small} in points, seed by seed (mean ± sd), with the number of seeds where it "
        f"is higher at {small}; the paper's change is ResNet-50 on ImageNet (BN and GN only). "
        f"{data_context(as_runs(source))}."
    )
    return table


def run_listing(source="results", experiments=None) -> pd.DataFrame:
    """Every run folder of `source` (of `experiments` when given), one row each, to read:
    what it is, how far it got, its medians and where its numbers came from."""
    runs = as_runs(source)
    if experiments is not None:
        runs = runs[runs["experiment"].isin(experiments)]
    return pd.DataFrame(
        {
            "experiment": runs["experiment"],
            "run": runs["run_name"],
            "status": status_texts(runs),
            "val error": runs["val_error_median5"],
            "train error": runs["train_error_median5"],
            "val loss": runs["val_loss_median5"],
            "steps per epoch": runs["steps_per_epoch"].astype("Int64"),
            "minutes": runs["wall_seconds"] / 60,
            "reused from": runs["reused_from"].fillna(""),
        }
    ).reset_index(drop=True)


def format_points(value: float, sd: float = math.nan) -> str:
    """A signed number of points, "+1.2" or "+1.2 ± 0.3"; "n/a" for NaN."""
    if math.isnan(value):
        return "n/a"
    return f"{value:+.1f}" if math.isnan(sd) else f"{value:+.1f} ± {sd:.1f}"


def seeds_text(count: int, total: int | None = None) -> str:
    """ "1 seed", "3 seeds", or with a total "2 of 3 seeds"."""
    if total is None:
        return f"{count} seed{'s' if count != 1 else ''}"
    return f"{count} of {seeds_text(total)}"


def conclusions(source="results", *, large=32, small=2) -> list[str]:
    """The headline findings as sentences, computed from the numbers (for notebooks to print).

    Every number is a mean ± sd over seeds; a claim about a direction says in how many
    seeds it holds, so a reader sees whether it holds in all of them.

    Args:
        source: a results folder or a frame from `load_runs`.
        large: the large batch size of the sweep comparison.
        small: the small batch size of the sweep comparison.

    Returns:
        A list of sentences; a number that cannot be computed says why (missing, partial,
        diverged runs are named with their status).
    """
    runs = as_runs(source)
    lines = []
    first = table1(runs)
    ours = first.set_index("norm")["ours val error (%)"]
    cells = _cells(runs, NORM_COMPARISON, large)
    gap = paired_difference(cells["group"], cells["batch"])
    lines.append(
        _gn_minus_bn(
            f"At batch {large}, GN minus BN val error",
            gap,
            "higher",
            f"{paper.TABLE1['group'] - paper.TABLE1['batch']:+.1f} (ResNet-50, ImageNet)",
        )
    )
    paper_errors = pd.Series(
        {paper.NORM_LABELS[norm]: error for norm, error in paper.TABLE1.items()}
    )
    lines.append(
        f"Lowest to highest mean val error at batch {large}: ours "
        + _ranking(ours)
        + f" (that order in {seeds_text(*_order_holds(cells))}); paper "
        + _ranking(paper_errors)
        + "."
    )
    unavailable = first[~first["status"].str.startswith("complete")]
    if not unavailable.empty:
        listed = "; ".join(unavailable["norm"] + ": " + unavailable["status"])
        lines.append(f"Table 1 runs not complete: {listed}.")
    drop = batch_size_drop(runs, large=large, small=small)
    for label in drop.index:
        row = drop.loc[label]
        sentence = (
            f"{label} from batch {large} to {small}: val error changes by "
            f"{format_points(row['ours_increase'], row['ours_increase_sd'])} points, higher at batch {small} in "
            f"{seeds_text(row['higher_at_small'], row['n'])}"
        )
        if not math.isnan(row["paper_increase"]):
            sentence += f" (paper {format_points(row['paper_increase'])})"
        sentence += "."
        caveats = [
            f"batch {size}: {status}"
            for size, status in ((large, row["status_large"]), (small, row["status_small"]))
            if not status.startswith("complete")
        ]
        if caveats:
            sentence += " [" + "; ".join(caveats) + "]"
        lines.append(sentence)
    at_small = _cells(runs, BATCH_SIZE_SWEEP, small)
    small_gap = paired_difference(at_small["group"], at_small["batch"])
    lines.append(
        _gn_minus_bn(
            f"At batch {small}, GN minus BN",
            small_gap,
            "lower",
            format_points(paper.TABLE2_GN_MINUS_BN[small]),
        )
    )
    lines.append(_gn_below_bn_by_batch(runs))
    lines.append(_still_learning(runs))
    return lines


def _gn_minus_bn(head, difference, counted, paper_text) -> str:
    """ "<head>: ours <mean ± sd> points (GN <counted> in k of n seeds), paper <paper_text>.";
    `counted` is "lower" (seeds with a negative difference) or "higher" (the others)."""
    count = difference.negative if counted == "lower" else difference.n - difference.negative
    return (
        f"{head}: ours {format_points(difference.mean, difference.sd)} points "
        f"(GN {counted} in {seeds_text(count, difference.n)}), paper {paper_text}."
    )


def _gn_below_bn_by_batch(runs, batch_sizes=paper.BATCH_SIZES) -> str:
    """In how many seeds GN is below BN at each batch size of the sweep (paired by seed)."""
    counts = []
    for batch_size in batch_sizes:
        cells = _cells(runs, BATCH_SIZE_SWEEP, batch_size)
        gap = paired_difference(cells["group"], cells["batch"])
        counts.append(f"{seeds_text(gap.negative, gap.n)} at batch {batch_size}")
    return "GN's val error below BN's in " + ", ".join(counts) + "."


def _still_learning(runs, epochs_before=2) -> str:
    """The sentence of `learning_before_decays`: did training error still fall before each cut?"""
    table = learning_before_decays(runs, epochs_before=epochs_before)
    if table.empty:
        return "Training error before the learning rate cuts: no complete run yet."
    cuts = "; ".join(
        f"before the cut after epoch {epoch}, {format_points(row['change'], row['change_sd'])} points, "
        f"falling in {int(row['falling'])} of {int(row['runs'])} trainings"
        for epoch, row in table.iterrows()
    )
    return (
        f"Still learning when the learning rate is cut (change of training error over the {epochs_before} "
        f"epochs before each cut): {cuts}."
    )


def _order_holds(cells: dict) -> tuple[int, int]:
    """(seeds in which the normalizations rank as their means do, seeds they all have)."""
    means = {norm: cell.value for norm, cell in cells.items() if cell.n}
    order = sorted(means, key=means.get)
    by_seed = {norm: dict(zip(cell.seeds, cell.values)) for norm, cell in cells.items() if cell.n}
    common = set.intersection(*(set(values) for values in by_seed.values())) if by_seed else set()
    holds = sum(
        all(by_seed[a][seed] < by_seed[b][seed] for a, b in zip(order, order[1:]))
        for seed in common
    )
    return holds, len(common)


def _ranking(errors: pd.Series) -> str:
    """ "BN 23.6 < GN 24.1 = LN 24.1": ties at one decimal are shown as ties."""
    ranked = errors.dropna().sort_values()
    if ranked.empty:
        return "n/a"
    text = f"{ranked.index[0]} {ranked.iloc[0]:.1f}"
    for (_, previous), (label, value) in zip(ranked.iloc[:-1].items(), ranked.iloc[1:].items()):
        relation = "=" if round(previous, 1) == round(value, 1) else "<"
        text += f" {relation} {label} {value:.1f}"
    return text


def _format_cell(value, decimals: int) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:.{decimals}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def with_spread(frame: pd.DataFrame, *, decimals: int = 1) -> pd.DataFrame:
    """`frame` with every column "X" that has a column "X sd" shown as "mean ± sd" text
    (the mean alone when there is no sd, e.g. one seed), and the "X sd" columns dropped."""
    shown = frame.copy()
    for column in [c for c in frame.columns if f"{c} sd" in frame.columns]:
        shown[column] = [
            _format_cell(mean, decimals)
            if pd.isna(sd) or pd.isna(mean)
            else f"{mean:.{decimals}f} ± {sd:.{decimals}f}"
            for mean, sd in zip(frame[column], frame[f"{column} sd"])
        ]
        shown = shown.drop(columns=f"{column} sd")
    shown.attrs = dict(frame.attrs)
    shown.attrs["numeric"] = [c for c in shown.columns if pd.api.types.is_numeric_dtype(frame[c])]
    return shown


def formatted(frame: pd.DataFrame, *, decimals: int = 1) -> pd.DataFrame:
    """`frame` as the text of its cells, rounded once, the same way wherever a table is shown
    (markdown, notebooks): "mean ± sd" columns (`with_spread`), floats with `decimals`
    digits, NaN as "–"."""
    shown = with_spread(frame, decimals=decimals)
    text = pd.DataFrame(
        {column: [_format_cell(value, decimals) for value in shown[column]] for column in shown},
        index=shown.index,
    )
    text.attrs = dict(shown.attrs)
    return text


def to_markdown(
    frame: pd.DataFrame, *, decimals: int = 1, index: bool = False, caption: bool = True
) -> str:
    """A GitHub-flavoured markdown table of `frame` (no extra dependency).

    Args:
        frame: any DataFrame, e.g. from `table1` or `table2`; a column "X sd" beside a
            column "X" is shown with it as "mean ± sd".
        decimals: digits after the point for floats; NaN prints as "–".
        index: include the index as the first column.
        caption: append ``frame.attrs["caption"]`` (when present) below the table.

    Returns:
        The markdown text; numbers are right-aligned, text left-aligned.
    """
    if index:
        frame = frame.reset_index()
    shown = formatted(frame, decimals=decimals)
    headers = [str(column) for column in shown.columns]
    numeric = [column in shown.attrs["numeric"] for column in shown.columns]
    body = shown.itertuples(index=False)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" if is_number else ":---" for is_number in numeric) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    text = "\n".join(lines)
    if caption and frame.attrs.get("caption"):
        text += "\n\n" + frame.attrs["caption"]
    return text
