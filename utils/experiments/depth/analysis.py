"""The depth experiment read back: ResNet-10 beside the small CNN and the paper
(utils.experiments.depth).

Every ResNet-10 number is the depth experiment's, each method at the base rate its sweep
chose; a small-CNN number is the study's (batch-size sweep, shared rate, 10 epochs) and,
in the findings, also the long-training runs' (each method at its own rate, 30 epochs:
the small CNN's regime nearest to ResNet-10's). GN means G = 32 unless a row names
another group count.
"""

from __future__ import annotations

from utils.experiments.fair_comparison import analysis as fair
from utils.experiment import TRAINING_MODE
from utils import paper
from utils import results
from utils.config import RunConfig
from utils.experiments import depth as depth_experiment
from utils.experiments.beyond_the_paper.group_ablation import GROUP_ABLATION
from utils.experiments.study import THREE_BATCH_SIZES
from utils.results import Cell
from utils.results import format_points
from utils.results import paired_difference
from utils.results import seeds_text

DEPTH = depth_experiment.DEPTH
GROUPS = RunConfig().groups
LABELS = {"batch": "BN", "layer": "LN", "instance": "IN", "group": "GN"}
_NOTE = (
    f"ResNet-10: results/{DEPTH}/, each method at the base rate the depth sweep chose (LN and IN at GN's), "
    "scaled by batch/32; small CNN: the study's batch-size sweep at its shared rate (G = 8 and 64: the group "
    "ablation's runs, at the same rate)"
)


def cell(
    runs, norm, batch_size, *, experiment=DEPTH, groups=GROUPS, statistic="val_error_median5"
) -> Cell:
    """One normalization at one batch size in `experiment` (GN with `groups` groups), its
    validation error or, with `statistic="train_error_median5"`, its training error."""
    return results.statistic_cell(
        runs,
        statistic,
        experiment=experiment,
        norm=norm,
        batch_size=batch_size,
        groups=groups if norm == "group" else None,
    )


def _small(runs, norm, batch_size, *, groups=GROUPS, **options) -> Cell:
    """The small CNN in the study's regime; GN with another group count is the group ablation's."""
    experiment = results.BATCH_SIZE_SWEEP if norm != "group" or groups == GROUPS else GROUP_ABLATION
    return cell(runs, norm, batch_size, experiment=experiment, groups=groups, **options)


def _small_long(runs, norm, batch_size, **options) -> Cell:
    """The small CNN at its own rate for 30 epochs (utils.experiments.fair_comparison.analysis's long-training regime)."""
    return fair.regime_cell(runs, fair.LONG, LABELS[norm], batch_size, rates={}, **options)


def _small_texts(runs, first, second, *, lower=None, **options) -> str:
    """The small CNN's `first` minus `second` ((norm, batch size) pairs) in both of its
    regimes, with in how many seeds the first is lower when `lower` names it."""
    texts = []
    for regime, find in (("small CNN", _small), ("at its own rates for 30 epochs", _small_long)):
        difference = paired_difference(
            find(runs, *first, **options), find(runs, *second, **options)
        )
        text = f"{regime} {format_points(difference.mean, difference.sd)}"
        texts.append(f"{text} ({_direction(difference, lower)})" if lower else text)
    return ", ".join(texts)


def table1(source="results"):
    """Table 1 on ResNet-10: BN, LN, IN, GN (and GN with G = 8 and 64) at batch 32,
    validation and training error, minus BN paired by seed, beside the small CNN's and
    the paper's."""
    runs = results.as_runs(source)
    bn, bn_train = cell(runs, "batch", 32), cell(runs, "batch", 32, statistic="train_error_median5")
    small_bn = _small(runs, "batch", 32)
    rows = []
    for norm, groups, label in (
        ("batch", None, "BN"),
        ("layer", None, "LN"),
        ("instance", None, "IN"),
        ("group", GROUPS, "GN"),
        ("group", 8, "GN, G = 8"),
        ("group", 64, "GN, G = 64"),
    ):
        ours = cell(runs, norm, 32, groups=groups)
        train = cell(runs, norm, 32, groups=groups, statistic="train_error_median5")
        difference, train_difference = (
            paired_difference(ours, bn),
            paired_difference(train, bn_train),
        )
        small = _small(runs, norm, 32, groups=groups or GROUPS)
        published = paper.TABLE1[norm] if groups in (None, GROUPS) else paper.TABLE3_GROUPS[groups]
        rows.append(
            {
                "norm": label,
                "ResNet-10 val error": ours.value,
                "ResNet-10 val error sd": ours.sd,
                "ResNet-10 train error": train.value,
                "ResNet-10 train error sd": train.sd,
                "minus BN": difference.mean,
                "minus BN sd": difference.sd,
                "train minus BN": train_difference.mean,
                "train minus BN sd": train_difference.sd,
                "n": ours.n,
                "small CNN minus BN": paired_difference(small, small_bn).mean,
                "paper minus BN": published - paper.TABLE1["batch"],
                "status": ours.status,
            }
        )
    return results.captioned(
        rows,
        (
            f"Table 1 on ResNet-10, batch 32 ({results.data_context(runs)}): validation and training error (%), "
            f"minus BN paired by seed; {TRAINING_MODE}. {_NOTE}; the paper's G = 8 and 64: its Table 3. {results.OURS_NOTE}; "
            f"{results.SPREAD_NOTE}. {results.PAPER_NOTE}."
        ),
    )


def table2(source="results"):
    """Table 2 on ResNet-10: BN and GN at batch 32, 8 and 2, validation and training
    error, GN minus BN paired by seed, beside the small CNN's and the paper's."""
    runs = results.as_runs(source)

    def cells(batch_size):
        found = {}
        for norm in ("batch", "group"):
            found[LABELS[norm]] = cell(runs, norm, batch_size)
            found[f"{LABELS[norm]} train"] = cell(
                runs, norm, batch_size, statistic="train_error_median5"
            )
        for norm in ("batch", "group"):
            found[f"small CNN {LABELS[norm]}"] = _small(runs, norm, batch_size)
        return found

    return results.by_batch_table(
        cells,
        THREE_BATCH_SIZES,
        [("GN", "BN"), ("GN train", "BN train"), ("small CNN GN", "small CNN BN")],
        lambda batch_size: {"paper GN minus BN": paper.TABLE2_GN_MINUS_BN[batch_size]},
        f"Table 2 on ResNet-10 ({results.data_context(runs)}): validation and training error (%) by batch size; "
        f"{TRAINING_MODE}. {_NOTE}. {results.OURS_NOTE}; {results.SPREAD_NOTE}. {results.PAPER_NOTE}.",
        directions=True,
    )


def _direction(difference, lower) -> str:
    if not difference.n:
        return "no seed has both runs yet"
    return f"{lower} in {seeds_text(difference.negative, difference.n)}"


def with_lowest_rate_changes(runs):
    """`runs` with two more columns, "val_error_change" and "train_error_change": for each
    run of the depth grid, how much that error still moved at the lowest rate (its value
    at the last epoch minus at the first epoch trained at that rate); NaN for the others.
    Each history is read once."""
    histories = results.load_histories(runs=runs[runs["experiment"] == DEPTH])
    lowest = histories[histories["lr"] == histories.groupby("run_name")["lr"].transform("min")]
    by_run = lowest.sort_values("epoch").groupby("run_name")[["val_error", "train_error"]]
    change = by_run.last() - by_run.first()
    in_grid = runs["experiment"] == DEPTH
    return runs.assign(
        **{
            f"{column}_change": runs["run_name"].map(change[column]).where(in_grid)
            for column in ("val_error", "train_error")
        }
    )


def final_rate_change(runs, norm, batch_size, column="val_error") -> Cell:
    """How much `column` ("val_error" or "train_error") still moved at the lowest rate,
    one number per seed of the grid's runs of `norm` (G = 32) at `batch_size`, picked as
    every cell's runs are (`cell`)."""
    return cell(with_lowest_rate_changes(runs), norm, batch_size, statistic=f"{column}_change")


def _still_learning(runs, batch_size=32) -> str:
    """Whether the 15 epochs were enough: the change of validation and training error
    over the epochs at the lowest rate, for BN and GN."""
    parts = []
    for norm in ("batch", "group"):
        validation, training = (
            final_rate_change(runs, norm, batch_size, column)
            for column in ("val_error", "train_error")
        )
        if not validation.n:
            parts.append(f"{LABELS[norm]} n/a")
            continue
        falling = sum(value < 0 for value in validation.values)
        parts.append(
            f"{LABELS[norm]} validation {format_points(validation.mean, validation.sd)} (falling in "
            f"{seeds_text(falling, validation.n)}), training {format_points(training.mean, training.sd)}"
        )
    return (
        f"Batch {batch_size}, change from the first epoch at the lowest rate to the last (still learning at "
        f"the end?): ResNet-10 {'; '.join(parts)} points."
    )


def conclusions(source="results") -> list[str]:
    """The depth experiment's answers as sentences: does GN's training error fall below
    BN's, how large is GN minus BN at 32 beside the paper's and the small CNN's, and does
    BN's small-batch loss grow with depth; last, whether ResNet-10 was still learning
    when its schedule ended. Each small-CNN number comes twice: in the study's regime
    (shared rate, 10 epochs) and at each method's own rate for 30 epochs, so that a
    difference from ResNet-10 that only the regime makes shows."""
    runs = results.as_runs(source)
    lines = []
    train = paired_difference(
        cell(runs, "group", 32, statistic="train_error_median5"),
        cell(runs, "batch", 32, statistic="train_error_median5"),
    )
    small_train = _small_texts(
        runs, ("group", 32), ("batch", 32), lower="GN lower", statistic="train_error_median5"
    )
    lines.append(
        f"Batch 32, GN minus BN training error: ResNet-10 {format_points(train.mean, train.sd)} points "
        f"({_direction(train, 'GN lower')}); {small_train}; the paper's Figure 4: GN lower."
    )
    gap = paired_difference(cell(runs, "group", 32), cell(runs, "batch", 32))
    lines.append(
        f"Batch 32, GN minus BN validation error: ResNet-10 {format_points(gap.mean, gap.sd)} points "
        f"({_direction(gap, 'GN lower')}); {_small_texts(runs, ('group', 32), ('batch', 32))}; paper "
        f"{format_points(paper.TABLE2_GN_MINUS_BN[32])}."
    )
    for norm in ("batch", "group"):
        deep = paired_difference(cell(runs, norm, 2), cell(runs, norm, 32))
        published = paper.TABLE2[norm][2] - paper.TABLE2[norm][32]
        lines.append(
            f"{LABELS[norm]} from batch 32 to 2: ResNet-10 {format_points(deep.mean, deep.sd)} points "
            f"({_direction(deep, 'lower at batch 2')}); {_small_texts(runs, (norm, 2), (norm, 32))}; "
            f"paper {format_points(published)}."
        )
    gn = cell(runs, "group", 32)
    # The small CNN's G = 32 from the same experiment as its other group counts.
    small_gn = cell(runs, "group", 32, experiment=GROUP_ABLATION)
    for groups in (8, 64):
        other = paired_difference(cell(runs, "group", 32, groups=groups), gn)
        small = paired_difference(_small(runs, "group", 32, groups=groups), small_gn)
        published = paper.TABLE3_GROUPS[groups] - paper.TABLE3_GROUPS[GROUPS]
        lines.append(
            f"Batch 32, GN with G = {groups} minus G = {GROUPS}: ResNet-10 {format_points(other.mean, other.sd)} "
            f"points ({_direction(other, f'G = {groups} lower')}); small CNN {format_points(small.mean, small.sd)} "
            f"({_direction(small, f'G = {groups} lower')}); paper {format_points(published)}."
        )
    lines.append(_still_learning(runs))
    return lines
