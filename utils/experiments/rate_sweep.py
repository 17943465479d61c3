"""Every method at its own best learning rate: the fair comparison's rate sweep.

The study trains every normalization at one base rate, chosen for the four together
(utils.recipe); a method compared at a rate tuned for the others may only be slower to
learn. This sweep trains each method at batch 32 with the study's schedule (÷10 at 50%
and 75% of the epochs) at the base rates `LEARNING_RATES`, with every seed of the
profile, and picks each method's rate by a rule fixed before its runs finished
(`best_rates`):

1. per method, a rate is excluded when any seed collapses there: the run diverges, or
   its last-epoch training error is within `COLLAPSE_MARGIN` points of chance;
2. among the others, the rate with the lowest mean over seeds of the validation error
   (median of the last 5 epochs);
3. when that rate is the lowest or the highest tried, the sweep adds the next rate
   beyond it (about 3x further: `next_rate`) and the choice waits for it, so a best rate
   is never on the edge of what was tried;
4. the choice is made once it cannot change: every rate not excluded has all its seeds
   finished and none is an untried edge.

Once the parallel mixture's rate is chosen, the sweep adds its control at that rate: the
same layer with s fixed at 0.5, so that a gain of the mixture can be told from a gain of
learning s. Runs that repeat another experiment's (the study's rate, the recipe sweep's
seed 0, WS and the mixtures at 0.003) reuse them.
"""

from __future__ import annotations

import math

from utils.experiment import Experiment
from utils.experiment import Table

RATE_SWEEP = "rate_sweep"
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03)
DECAY_FRACTIONS = (0.5, 0.75)
# Points of training error from chance within which a run counts as not learning (as
# in the recipe sweep).
COLLAPSE_MARGIN = 5.0
# Every method of the comparison: a label and the RunConfig fields that make it.
METHODS = {
    "BN": dict(norm="batch"),
    "LN": dict(norm="layer"),
    "IN": dict(norm="instance"),
    "GN": dict(norm="group"),
    "BN+WS": dict(norm="batch", weight_standardization=True),
    "GN+WS": dict(norm="group", weight_standardization=True),
    "GN+BN parallel": dict(norm="gn_plus_parallel"),
    "GN+BN BN-first": dict(norm="gn_plus_bn_first"),
}
# The mixtures' control (utils.norms): the parallel mixture with s fixed at 0.5.
FIXED_MIXTURE = "gn_plus_parallel_fixed"


def run_fields(method, rate):
    """The RunConfig fields of one method at one base rate."""
    return dict(METHODS[method], batch_size=32, base_learning_rate=rate, lr_decay_fractions=DECAY_FRACTIONS)


def next_rate(rate, direction):
    """The rate one step beyond `rate` on the sweep's grid (x3 or x3.33 alternately, as
    0.001, 0.003, 0.01, 0.03): direction +1 up, -1 down."""
    exponent = math.log10(rate)
    decade, fraction = math.floor(exponent + 1e-9), exponent - math.floor(exponent + 1e-9)
    # The grid is {1, 3} x 10^k.
    on_three = fraction > 0.25
    if direction > 0:
        return round(10.0 ** (decade + 1), 12) if on_three else round(3 * 10.0 ** decade, 12)
    return round(10.0 ** decade, 12) if on_three else round(3 * 10.0 ** (decade - 1), 12)


def _method_of(run):
    for label, fields in METHODS.items():
        if run["norm"] == fields["norm"] and bool(run["weight_standardization"]) == fields.get(
                "weight_standardization", False):
            return label
    return None


def best_rates(source="results", *, seeds=None):
    """Each method's rate by the rule of the module docstring.

    Args:
        source: a results folder or a frame from `utils.results.load_runs`.
        seeds: the seeds that count (default: every seed found in the sweep).

    Returns:
        A DataFrame indexed by method with the columns "rates" (tried, in order),
        "excluded" (rates where a seed collapsed), "means" ({rate: mean val error} of the
        rates with every seed finished), "best" (the lowest of those, NaN while none),
        "edge" (the untried rate the rule still needs, or NaN) and "chosen" (the rate, or
        NaN while the choice can still change).
    """
    import pandas as pd

    from utils import results

    runs = results.as_runs(source)
    runs = runs[runs["experiment"] == RATE_SWEEP]
    if seeds is None:
        seeds = sorted(set(runs["seed"].dropna().astype(int)))
    rows = {}
    for method in METHODS:
        mine = runs[[_method_of(run) == method for _, run in runs.iterrows()]] if len(runs) else runs
        rates = sorted(set(LEARNING_RATES) | set(mine["base_learning_rate"].astype(float)))
        excluded, means, unfinished = [], {}, []
        for rate in rates:
            at_rate = mine[(mine["base_learning_rate"].astype(float) - rate).abs() < 1e-12]
            ended = at_rate[at_rate["status"].isin(["complete", "diverged"])]
            chance = 100.0 - 100.0 / ended["classes"] if len(ended) else pd.Series(dtype=float)
            collapsed = (ended["status"] == "diverged") | (ended["final_train_error"] >= chance - COLLAPSE_MARGIN)
            if collapsed.any():
                excluded.append(rate)
            elif seeds and set(ended["seed"].astype(int)) >= set(seeds):
                means[rate] = float(ended[ended["seed"].isin(seeds)]["val_error_median5"].mean())
            else:
                unfinished.append(rate)
        best = min(means, key=means.get) if means else math.nan
        edge = math.nan
        if means and not unfinished:
            tried = [rate for rate in rates if rate not in excluded]
            if best == min(tried) and min(tried) == min(rates):
                edge = next_rate(best, -1)
            elif best == max(tried) and max(tried) == max(rates):
                edge = next_rate(best, +1)
        chosen = best if means and not unfinished and math.isnan(edge) else math.nan
        rows[method] = dict(rates=tuple(rates), excluded=tuple(excluded), means=means, best=best, edge=edge,
                            chosen=chosen)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "method"
    return frame


def rate_table(source="results", *, seeds=None):
    """One row per method: its validation error at each base rate (mean ± sd over seeds;
    the mean of the finished seeds and how many while some are missing; "collapsed"
    where a seed collapsed) and the rate the rule picks so far (`best_rates`)."""
    import pandas as pd

    from utils import results

    runs = results.as_runs(source)
    if seeds is None and len(runs):
        # The profile's seeds, so that a partial cell says how many are still missing.
        from utils.profiles import profile_settings

        seeds = profile_settings(runs["profile"].iloc[0])["seeds"]
    runs = runs[(runs["experiment"] == RATE_SWEEP) & runs["status"].isin(["complete", "diverged"])]
    table = best_rates(runs, seeds=seeds)
    rates = sorted({rate for tried in table["rates"] for rate in tried})
    rows = []
    for method, row in table.iterrows():
        cells = {}
        for rate in rates:
            mine = runs[[_method_of(run) == method for _, run in runs.iterrows()]] if len(runs) else runs
            values = mine[(mine["base_learning_rate"].astype(float) - rate).abs() < 1e-12]["val_error_median5"]
            if rate in row["excluded"]:
                cells[f"{rate:g}"] = "collapsed"
            elif rate in row["means"]:
                cells[f"{rate:g}"] = f"{row['means'][rate]:.1f} ± {values.std(ddof=1):.1f}"
            elif len(values):
                # Not every seed yet: the finished seeds' mean, said to be partial.
                cells[f"{rate:g}"] = f"{values.mean():.1f} ({len(values)} of {len(seeds) if seeds else '?'} seeds)"
            else:
                cells[f"{rate:g}"] = ""
        chosen = row["chosen"]
        state = (f"{chosen:g}" if not math.isnan(chosen) else
                 f"waits for {row['edge']:g}" if not math.isnan(row["edge"]) else "not yet")
        rows.append({"method": method, **cells, "chosen rate": state})
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Rate sweep ({results.data_context(runs)}), batch 32, ÷10 at 50% and 75% of the epochs: validation error "
        "(%, median of the last 5 epochs), mean ± sd over seeds, by base learning rate. Collapsed: a seed diverged "
        f"or ended within {COLLAPSE_MARGIN:g} points of chance. Chosen rate: the lowest mean among the rates where "
        "no seed collapsed, once every seed is finished and the best is not on the edge of the rates tried "
        f"(utils.experiments.rate_sweep). Runs: results/{RATE_SWEEP}/<norm>_bs32_lr<rate>_decay50-75_seed<k>."
    )
    return frame


def chosen_rates(results_dir, seeds):
    """{method: chosen base rate} of the methods whose rate the rule has chosen, every
    seed of `seeds` counting (none without a results folder)."""
    from pathlib import Path

    if results_dir is None or not (Path(results_dir) / RATE_SWEEP).is_dir():
        return {}
    table = best_rates(results_dir, seeds=seeds)
    return {method: rate for method, rate in table["chosen"].items() if not math.isnan(rate)}


def more_runs(results_dir, seeds):
    """The runs the rules add as the sweep finishes: one more rate beyond the edge for
    each method whose best rate so far is the lowest or highest tried (rule 3), and the
    mixtures' control, the parallel mixture with s fixed at 0.5, at the rate chosen for
    the parallel mixture."""
    from pathlib import Path

    if results_dir is None or not (Path(results_dir) / RATE_SWEEP).is_dir():
        return []
    table = best_rates(results_dir, seeds=seeds)
    runs = []
    for method, row in table.iterrows():
        # The rates the rule added earlier stay in the grid while their runs train (a
        # partial run leaves the edge undecided), and the one it adds now joins them.
        added = [rate for rate in row["rates"] if rate not in LEARNING_RATES]
        if not math.isnan(row["edge"]):
            added.append(row["edge"])
        runs += [run_fields(method, rate) for rate in added]
    parallel = chosen_rates(results_dir, seeds).get("GN+BN parallel")
    if parallel is not None:
        runs.append(dict(run_fields("GN+BN parallel", parallel), norm=FIXED_MIXTURE))
    return runs


EXPERIMENTS = (
    Experiment(
        RATE_SWEEP, "fair_comparison", "every method at batch 32 and four base rates, each seed: its best rate",
        runs=tuple(run_fields(method, rate) for method in METHODS for rate in LEARNING_RATES),
        more_runs=more_runs,
        tables=(
            Table("Rate sweep: validation error by base rate, batch 32", "utils.experiments.rate_sweep:rate_table"),
            Table("Table 1 at each method's own rate", "utils.fair:table1"),
            Table("Weight Standardization at each method's own rate", "utils.fair:weight_standardization_table"),
            Table("GN+BN mixtures at each method's own rate", "utils.fair:mixtures_table"),
        ),
        measurements=("utils.mixtures:mixing_measurement",),
    ),
)
