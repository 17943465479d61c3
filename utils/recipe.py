"""The recipe sweep, read by the rule written down before its runs finished.

The sweep (`utils.config`, experiment "recipe_sweep") trains BN, LN, IN and GN at batch
32 with the learning rate divided by 10 at 50% and 75% of the epochs, at several base
rates; it also reuses the first study's runs of the paper's schedule (decays at 30, 60
and 90%) at 0.003, for comparison. The study's rate is chosen by this rule:

1. one base rate for every normalization, as in the paper;
2. a rate is excluded when any normalization collapses at it: its run diverges, or its
   last-epoch training error is within `COLLAPSE_MARGIN` points of chance
   (100 - 100 / classes);
3. among the other rates, the one with the lowest mean over the four normalizations of
   the validation error (median of the last 5 epochs).

The choice is made once it cannot change: every rate not already excluded by a collapse
has all four runs finished (a collapse excludes a rate whatever its other runs do).
"""

from __future__ import annotations

import math

import pandas as pd

from utils import paper
from utils import results
from utils.experiments.recipe_sweep import DECAY_FRACTIONS as RECIPE_SWEEP_DECAY_FRACTIONS
from utils.experiments import recipe_sweep
from utils.rates import COLLAPSE_MARGIN  # points from chance within which a run does not learn

__all__ = [
    "RECIPE_SWEEP",
    "COLLAPSE_MARGIN",
    "schedule_label",
    "recipe_table",
    "verdict",
    "chosen_learning_rate",
]

RECIPE_SWEEP = recipe_sweep.RECIPE_SWEEP


def schedule_label(fractions) -> str:
    """ "÷10 at 50%, 75%" for decay fractions (0.5, 0.75)."""
    return "÷10 at " + ", ".join(f"{100 * fraction:g}%" for fraction in fractions)


def _collapsed(run) -> bool:
    chance = 100.0 - 100.0 / run["classes"]
    return run["status"] == "diverged" or run["final_train_error"] >= chance - COLLAPSE_MARGIN


def recipe_table(source="results", *, experiment=RECIPE_SWEEP) -> pd.DataFrame:
    """One row per (schedule, base learning rate) of the sweep: each normalization's val
    error, their mean, which collapsed, and which rate the rule chooses.

    Args:
        source: a results folder or a frame from `utils.results.load_runs`.
        experiment: the sweep's experiment name.

    Returns:
        Columns "schedule", "base lr", "BN", "LN", "IN", "GN" (val error, median of the
        last 5 epochs, %), "mean", "collapsed" (the normalizations that did not learn),
        "finished" ("yes" when every run of the row is complete or diverged), "chosen"
        ("yes" for the rate the rule picks); attrs["chosen"] holds that rate as a number.
        Rows of the sweep's schedule come first, by rate.
    """
    runs = results.as_runs(source)
    runs = runs[runs["experiment"] == experiment]
    rows = []
    for (fractions, rate), group in runs.groupby(
        ["lr_decay_fractions", "base_learning_rate"], sort=False
    ):
        row = {"schedule": schedule_label(fractions), "base lr": f"{rate:g}", "rate": rate}
        finished = len(group) == len(paper.TABLE1_NORMS)
        collapsed = []
        for norm in paper.TABLE1_NORMS:
            label = paper.NORM_LABELS[norm]
            match = group[group["norm"] == norm]
            # The sweep has one run per cell; runs of several settings there are not averaged.
            run = match.iloc[0] if len(match) and not results.differing_settings(match) else None
            row[label] = (
                run["val_error_median5"]
                if run is not None and run["status"] == "complete"
                else math.nan
            )
            finished &= run is not None and run["status"] in ("complete", "diverged")
            if run is not None and run["status"] in ("complete", "diverged") and _collapsed(run):
                collapsed.append(label)
        row["mean"] = float(
            pd.Series([row[paper.NORM_LABELS[n]] for n in paper.TABLE1_NORMS]).mean(skipna=False)
        )
        row["collapsed"] = ", ".join(collapsed) or "none"
        row["finished"] = "yes" if finished else "no"
        row["sweep schedule"] = tuple(fractions) == RECIPE_SWEEP_DECAY_FRACTIONS
        rows.append(row)
    frame = pd.DataFrame(
        rows,
        columns=[
            "schedule",
            "base lr",
            "rate",
            "BN",
            "LN",
            "IN",
            "GN",
            "mean",
            "collapsed",
            "finished",
            "sweep schedule",
        ],
    )
    frame = frame.sort_values(
        ["sweep schedule", "rate"], ascending=[False, True], ignore_index=True
    )
    chosen = _choose(frame)
    frame["chosen"] = [
        "yes" if row["sweep schedule"] and row["rate"] == chosen else ""
        for _, row in frame.iterrows()
    ]
    frame = frame.drop(columns=["sweep schedule", "rate"])
    frame.attrs["chosen"] = chosen
    frame.attrs["caption"] = (
        f"Recipe sweep ({results.data_context(runs)}), batch 32, seed 0: validation error (%), median of the "
        f"last 5 epochs. A normalization collapsed when its run diverged or ended with a training error within "
        f"{COLLAPSE_MARGIN:g} points of chance. Chosen: the rate of the sweep's schedule with the lowest mean "
        "over the four normalizations among the rates where none collapsed."
    )
    return frame


def _choose(frame: pd.DataFrame) -> float | None:
    # A collapse excludes a rate for good, so the choice is made as soon as every rate
    # that is still a candidate has all its runs finished.
    candidates = frame[frame["sweep schedule"] & (frame["collapsed"] == "none")]
    if candidates.empty or not (candidates["finished"] == "yes").all():
        return None
    return float(candidates.loc[candidates["mean"].idxmin(), "rate"])


def verdict(source="results") -> list[str]:
    """The sentence that says which rate the rule chose, or that it has not yet."""
    chosen = recipe_table(source).attrs["chosen"]
    if chosen is None:
        return ["The rule has not chosen a rate yet: some runs of the sweep are not finished."]
    return [f"By the rule, the study uses base rate {chosen:g} with the sweep's schedule."]


def chosen_learning_rate(source="results", *, experiment=RECIPE_SWEEP) -> float | None:
    """The base learning rate the rule picks from the sweep, or None while a rate that is
    still a candidate has unfinished runs (or when every rate collapses)."""
    return recipe_table(source, experiment=experiment).attrs["chosen"]
