"""The rule that picks each method's base learning rate from a sweep, written before the
sweep's runs finish.

A `RateRule` names a sweep (its experiment, its methods as RunConfig fields, the base
rates it starts from and the fields every run shares) and picks, per method:

1. a rate is excluded when any seed collapses there: the run diverges, or its
   last-epoch training error is within `COLLAPSE_MARGIN` points of chance;
2. among the others, the rate with the lowest mean over seeds of the validation error
   (median of the last 5 epochs);
3. when that rate is the lowest or the highest tried, the rule adds the next rate beyond
   it (about 3x further: `next_rate`) and the choice waits for it, so a best rate is
   never on the edge of what was tried;
4. the choice is made once it cannot change: every rate not excluded has all its seeds
   finished and none is an untried edge.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from utils import run_frame
from utils.config import PROFILE_SEEDS

# Points of training error from chance within which a run counts as not learning (as
# in the recipe sweep).
COLLAPSE_MARGIN = 5.0
_FINISHED = ("complete", "diverged")


def next_rate(rate, direction):
    """The rate one step beyond `rate` on the grid {1, 3} x 10^k (x3 or x3.33
    alternately, as 0.001, 0.003, 0.01, 0.03): direction +1 up, -1 down."""
    exponent = math.log10(rate)
    decade, fraction = math.floor(exponent + 1e-9), exponent - math.floor(exponent + 1e-9)
    on_three = fraction > 0.25
    if direction > 0:
        return round(10.0 ** (decade + 1), 12) if on_three else round(3 * 10.0**decade, 12)
    return round(10.0**decade, 12) if on_three else round(3 * 10.0 ** (decade - 1), 12)


def _at_rate(runs, rate):
    return runs[(runs["base_learning_rate"].astype(float) - rate).abs() < 1e-12]


@dataclasses.dataclass(frozen=True)
class RateRule:
    """A sweep and its rule (module docstring).

    Args:
        experiment: the experiment holding the sweep's runs.
        methods: {label: RunConfig fields} of each method; a run is a method's when its
            norm and weight standardization are the method's.
        rates: the base rates every method starts with.
        shared: the RunConfig fields of every run (batch size, schedule, model).
    """

    experiment: str
    methods: MappingProxyType
    rates: tuple[float, ...]
    shared: MappingProxyType

    def run_fields(self, method, rate) -> dict:
        """The RunConfig fields of one method at one base rate."""
        return dict(self.methods[method], **self.shared, base_learning_rate=rate)

    def method_of(self, run):
        """The label of the method a run (a row of `utils.run_frame.load_runs`) belongs to, or None."""
        for label, fields in self.methods.items():
            if run["norm"] == fields["norm"] and bool(run["weight_standardization"]) == fields.get(
                "weight_standardization", False
            ):
                return label
        return None

    def _runs_of(self, runs, method):
        return (
            runs[[self.method_of(run) == method for _, run in runs.iterrows()]]
            if len(runs)
            else runs
        )

    def best_rates(self, source="results", *, seeds=None):
        """Each method's rate by the rule.

        Args:
            source: a results folder or a frame from `utils.run_frame.load_runs`.
            seeds: the seeds that count (default: every seed found in the sweep).

        Returns:
            A DataFrame indexed by method with the columns "rates" (tried, in order),
            "excluded" (rates where a seed collapsed), "means" ({rate: mean val error}
            of the rates with every seed finished), "best" (the lowest of those, NaN
            while none), "edge" (the untried rate the rule still needs, or NaN) and
            "chosen" (the rate, or NaN while the choice can still change) and "mixed"
            ({rate: why} of the rates whose runs differ in more than the seed: the choice
            waits until they are taken apart).
        """
        runs = run_frame.as_runs(source)
        runs = runs[runs["experiment"] == self.experiment]
        if seeds is None:
            seeds = sorted(set(runs["seed"].dropna().astype(int)))
        rows = {}
        for method in self.methods:
            mine = self._runs_of(runs, method)
            rates = sorted(set(self.rates) | set(mine["base_learning_rate"].astype(float)))
            excluded, means, unfinished, mixed = [], {}, [], {}
            for rate in rates:
                ended = _at_rate(mine, rate)
                ended = ended[ended["status"].isin(_FINISHED)]
                differing = run_frame.differing_settings(ended)
                if differing:
                    # Runs of other settings at this rate are not its seeds: no choice
                    # rests on them, and no rate is added because of them.
                    mixed[rate] = run_frame.not_averaged_text(differing)
                    unfinished.append(rate)
                    continue
                chance = 100.0 - 100.0 / ended["classes"] if len(ended) else pd.Series(dtype=float)
                collapsed = (ended["status"] == "diverged") | (
                    ended["final_train_error"] >= chance - COLLAPSE_MARGIN
                )
                if collapsed.any():
                    excluded.append(rate)
                elif seeds and set(ended["seed"].astype(int)) >= set(seeds):
                    means[rate] = float(
                        ended[ended["seed"].isin(seeds)]["val_error_median5"].mean()
                    )
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
            rows[method] = dict(
                rates=tuple(rates),
                excluded=tuple(excluded),
                means=means,
                best=best,
                edge=edge,
                chosen=chosen,
                mixed=mixed,
            )
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "method"
        return frame

    def table(self, source="results", *, seeds=None, caption=""):
        """One row per method: its validation error at each base rate (mean ± sd over
        seeds; the mean of the finished seeds and how many while some are missing;
        "collapsed" where a seed collapsed) and the rate the rule picks so far.

        Args:
            source: a results folder or a frame from `utils.run_frame.load_runs`.
            seeds: the seeds that count (default: the runs' profile's).
            caption: the text before the rule's own note in ``attrs["caption"]``.
        """
        runs = run_frame.as_runs(source)
        if seeds is None and len(runs):
            # The profile's seeds, so that a partial cell says how many are still missing.
            seeds = PROFILE_SEEDS.get(runs["profile"].iloc[0])
        # The results folder's data and profile, which its other runs give while the sweep has none.
        context = run_frame.data_context(runs)
        runs = runs[(runs["experiment"] == self.experiment) & runs["status"].isin(_FINISHED)]
        table = self.best_rates(runs, seeds=seeds)
        rates = sorted({rate for tried in table["rates"] for rate in tried})
        rows = []
        for method, row in table.iterrows():
            cells = {}
            for rate in rates:
                values = _at_rate(self._runs_of(runs, method), rate)["val_error_median5"]
                if rate in row["mixed"]:
                    cells[f"{rate:g}"] = row["mixed"][rate]
                elif rate in row["excluded"]:
                    cells[f"{rate:g}"] = "collapsed"
                elif rate in row["means"]:
                    # One seed (a sweep of seed 0 alone) has no spread to give.
                    spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
                    cells[f"{rate:g}"] = f"{row['means'][rate]:.1f}{spread}"
                elif len(values):
                    # Not every seed yet: the finished seeds' mean, said to be partial.
                    total = len(seeds) if seeds else "?"
                    cells[f"{rate:g}"] = f"{values.mean():.1f} ({len(values)} of {total} seeds)"
                else:
                    cells[f"{rate:g}"] = ""
            chosen = row["chosen"]
            state = (
                f"{chosen:g}"
                if not math.isnan(chosen)
                else f"waits for {row['edge']:g}"
                if not math.isnan(row["edge"])
                else "not yet"
            )
            rows.append({"method": method, **cells, "chosen rate": state})
        frame = pd.DataFrame(rows)
        frame.attrs["caption"] = caption.format(context=context) + (
            " Collapsed: a seed diverged "
            f"or ended within {COLLAPSE_MARGIN:g} points of chance. Chosen rate: the lowest mean among the rates where "
            "no seed collapsed, once every seed is finished and the best is not on the edge of the rates tried "
            f"(utils.rates). Runs: results/{self.experiment}/."
        )
        return frame

    def chosen_rates(self, results_dir, seeds) -> dict:
        """{method: chosen base rate} of the methods whose rate the rule has chosen, every
        seed of `seeds` counting (none without a results folder)."""
        if results_dir is None or not (Path(results_dir) / self.experiment).is_dir():
            return {}
        table = self.best_rates(results_dir, seeds=seeds)
        return {method: rate for method, rate in table["chosen"].items() if not math.isnan(rate)}

    def added_runs(self, results_dir, seeds) -> list[dict]:
        """The runs the rule adds beyond `rates`: for each method, the rates it added
        earlier (they stay in the grid while their runs train: a partial run leaves the
        edge undecided) and the edge it adds now (rule 3)."""
        if results_dir is None or not (Path(results_dir) / self.experiment).is_dir():
            return []
        table = self.best_rates(results_dir, seeds=seeds)
        runs = []
        for method, row in table.iterrows():
            added = [rate for rate in row["rates"] if rate not in self.rates]
            if not math.isnan(row["edge"]):
                added.append(row["edge"])
            runs += [self.run_fields(method, rate) for rate in added]
        return runs
