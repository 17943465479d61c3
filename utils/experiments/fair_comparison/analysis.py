"""The fair comparison read back: every method at the shared rate and at its own, and
trained three times as long.

A *regime* says which runs stand for a method at a batch size:

- "shared rate, 10 epochs": the study's runs, every method at the one base rate the
  recipe sweep chose for BN, LN, IN and GN together (batch-size sweep, Weight
  Standardization, mixtures and distortion experiments);
- "own rate, 10 epochs": the rate sweep's runs at the rate its rule chose for the method
  (utils.experiments.fair_comparison.rate_sweep); at other batch sizes than 32 the shared-rate runs,
  when the method's own rate is the shared one (they are then the same config), else
  none;
- "own rate, 30 epochs": the long-training runs (utils.experiments.fair_comparison.long_training).

A `Claim` is a statement of the README or the report written as a sum of cells with a
direction ("GN at 2 minus BN at 2 is below 0"); `claims_table` says, in each regime,
its mean ± sd over seeds and in how many seeds it holds.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from utils import paper
from utils import results
from utils import runs as runs_module
from utils.config import RunConfig
from utils.config import learning_rate_for_epoch
from utils.experiment import TRAINING_MODE
from utils.experiments.understanding_gn import distortion as distortion_experiment
from utils.experiments.fair_comparison import long_training
from utils.experiments.understanding_gn import mixtures as mixtures_experiment
from utils.experiments.fair_comparison import rate_sweep
from utils.experiments import study
from utils.experiments.beyond_the_paper import (
    weight_standardization as weight_standardization_experiment,
)
from utils.results import Cell
from utils.results import PerSeed

SHARED = "shared rate, 10 epochs"
OWN = "own rate, 10 epochs"
LONG = "own rate, 30 epochs"
REGIMES = (SHARED, OWN, LONG)
VALIDATION = "val_error_median5"
TRAINING = "train_error_median5"
_RECIPE = RunConfig()
FIXED_MIXTURE = "GN+BN parallel, s = 0.5"
# Every method of the comparison and the RunConfig fields that make it; the fields not
# named take the recipe's values (so that runs without weight decay are never averaged
# with runs with it).
METHODS = {
    **rate_sweep.METHODS,
    FIXED_MIXTURE: dict(norm=rate_sweep.FIXED_MIXTURE),
    "BN, no weight decay": dict(norm="batch", weight_decay=0.0),
    "GN, no weight decay": dict(norm="group", weight_decay=0.0),
}
# The experiment holding each method's runs at the shared rate (none for the control,
# which only the rate sweep trains).
SHARED_EXPERIMENTS = {
    **{label: study.BATCH_SIZE_SWEEP for label in ("BN", "LN", "IN", "GN")},
    "BN+WS": weight_standardization_experiment.WEIGHT_STANDARDIZATION,
    "GN+WS": weight_standardization_experiment.WEIGHT_STANDARDIZATION,
    "GN+BN parallel": mixtures_experiment.MIXTURES,
    "GN+BN BN-first": mixtures_experiment.MIXTURES,
    "BN, no weight decay": distortion_experiment.DISTORTION,
    "GN, no weight decay": distortion_experiment.DISTORTION,
}
# The method whose chosen rate a method trains at, where it is not its own.
_RATE_OF = {
    FIXED_MIXTURE: "GN+BN parallel",
    "BN, no weight decay": "BN",
    "GN, no weight decay": "GN",
}


def selection(method) -> dict:
    """The `results.find_runs` fields of a method (every field the recipe fixes)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; valid methods are {list(METHODS)}.")
    return dict(
        dict(weight_standardization=False, weight_decay=_RECIPE.weight_decay), **METHODS[method]
    )


def own_rates(source="results") -> dict:
    """{method: base rate} of every method whose rate the rate sweep's rule has chosen
    (every seed of the runs' profile counting); the control and the runs without weight
    decay take the rate of the method they vary."""
    runs = results.as_runs(source)
    sweep = runs[runs["experiment"] == rate_sweep.RATE_SWEEP]
    if sweep.empty:
        return {}
    from utils.profiles import profile_settings

    seeds = profile_settings(sweep["profile"].iloc[0])["seeds"]
    chosen = {
        method: float(rate)
        for method, rate in rate_sweep.best_rates(sweep, seeds=seeds)["chosen"].items()
        if not math.isnan(rate)
    }
    return {**chosen, **{method: chosen[of] for method, of in _RATE_OF.items() if of in chosen}}


def regime_cell(runs, regime, method, batch_size, *, rates, statistic=VALIDATION) -> Cell:
    """The cell that stands for `method` at `batch_size` in `regime` (see the module
    docstring); a Cell without values, whose status says why, when no run does.

    Args:
        runs: a frame from `results.load_runs`.
        regime: one of `REGIMES`.
        method: a key of `METHODS`.
        batch_size: images per step.
        rates: `own_rates` of the runs.
        statistic: "val_error_median5" or "train_error_median5".
    """
    fields = selection(method)
    if regime == SHARED:
        if method not in SHARED_EXPERIMENTS:
            return Cell(status="not trained at the shared rate")
        return results.statistic_cell(
            runs, statistic, experiment=SHARED_EXPERIMENTS[method], batch_size=batch_size, **fields
        )
    if regime == LONG:
        if not any(
            batch_size in sizes and fields == dict(selection(planned), **extra)
            for planned, sizes, extra in long_training.PLAN
        ):
            return Cell(status=f"not in the {long_training.EPOCHS}-epoch runs")
        return results.statistic_cell(
            runs, statistic, experiment=long_training.LONG_TRAINING, batch_size=batch_size, **fields
        )
    if regime != OWN:
        raise ValueError(f"Unknown regime {regime!r}; valid regimes are {list(REGIMES)}.")
    if method not in rates:
        return Cell(status="own rate not chosen yet")
    rate = rates[method]
    if (batch_size == 32 and method in rate_sweep.METHODS) or method == FIXED_MIXTURE:
        return results.statistic_cell(
            runs,
            statistic,
            experiment=rate_sweep.RATE_SWEEP,
            batch_size=batch_size,
            base_learning_rate=rate,
            **fields,
        )
    shared = results.find_runs(
        runs, experiment=SHARED_EXPERIMENTS.get(method), batch_size=batch_size, **fields
    )
    if (
        method in SHARED_EXPERIMENTS
        and not shared.empty
        and (shared["base_learning_rate"] == rate).all()
    ):
        # The method's own rate is the shared one: its shared-rate runs are the same configs.
        return regime_cell(runs, SHARED, method, batch_size, rates=rates, statistic=statistic)
    return Cell(status=f"not trained at its own rate ({rate:g}) at batch {batch_size}")


def regime_table(source, methods, differences, *, batch_size=32, extra_columns=None, caption=""):
    """One row per regime: each method's mean ± sd at `batch_size`, paired differences
    and in how many seeds each is below 0.

    Args:
        source: a results folder or a frame from `results.load_runs`.
        methods: keys of `METHODS`, the columns.
        differences: (first, second) method pairs.
        batch_size: images per step.
        extra_columns: {column: value} added to every row (e.g. the paper's numbers).
        caption: the table's caption, to which the rates used are added.
    """
    runs = results.as_runs(source)
    rates = own_rates(runs)

    def cells(regime):
        return {
            method: regime_cell(runs, regime, method, batch_size, rates=rates) for method in methods
        }

    frame = results.by_batch_table(
        cells,
        REGIMES,
        differences,
        lambda regime: extra_columns or {},
        caption,
        row_name="regime",
        directions=True,
    )
    used = ", ".join(f"{method} {rates[method]:g}" for method in methods if method in rates)
    frame.attrs["caption"] += f" Own base rates: {used or 'none chosen yet'}."
    return frame


def table1(source="results"):
    """Table 1 (BN, LN, IN, GN at batch 32) in each regime."""
    runs = results.as_runs(source)
    published = {
        f"paper {paper.NORM_LABELS[norm]} minus BN": paper.TABLE1_DIFFERENCE_TO_BN[norm]
        for norm in ("group", "layer", "instance")
    }
    return regime_table(
        runs,
        ("BN", "LN", "IN", "GN"),
        [("GN", "BN"), ("LN", "BN"), ("IN", "BN")],
        extra_columns=published,
        caption=f"Table 1 at the shared rate and at each method's own, batch 32 ({results.data_context(runs)}). "
        f"{_REGIME_NOTE}",
    )


def weight_standardization_table(source="results"):
    """The Weight Standardization table at batch 32 in each regime."""
    runs = results.as_runs(source)
    return regime_table(
        runs,
        ("BN", "BN+WS", "GN", "GN+WS"),
        [("BN+WS", "BN"), ("GN+WS", "GN"), ("GN+WS", "BN")],
        caption=f"Weight Standardization at the shared rate and at each method's own, batch 32 "
        f"({results.data_context(runs)}). {_REGIME_NOTE}",
    )


def mixtures_table(source="results"):
    """The GN+BN mixtures (and the parallel one with s fixed at 0.5) at batch 32 in each regime."""
    runs = results.as_runs(source)
    mixtures = ("GN+BN parallel", "GN+BN BN-first")
    return regime_table(
        runs,
        ("BN", "GN", *mixtures, FIXED_MIXTURE),
        [
            *((mixture, "BN") for mixture in mixtures),
            *((mixture, "GN") for mixture in mixtures),
            ("GN+BN parallel", FIXED_MIXTURE),
        ],
        caption=f"GN+BN mixtures at the shared rate and at each method's own, batch 32 "
        f"({results.data_context(runs)}). {_REGIME_NOTE} The control, the parallel mixture with s fixed at "
        "0.5, is trained at the parallel mixture's rate only.",
    )


def table2(source="results"):
    """Table 2 for BN and GN at 30 epochs and each one's own rate, training and
    validation error, beside the study's 10 epochs at the shared rate."""
    runs = results.as_runs(source)
    rates = own_rates(runs)

    def cells(batch_size):
        found = {}
        for method in ("BN", "GN"):
            found[method] = regime_cell(runs, LONG, method, batch_size, rates=rates)
            found[f"{method} train"] = regime_cell(
                runs, LONG, method, batch_size, rates=rates, statistic=TRAINING
            )
        for method in ("BN", "GN"):
            found[f"{method}, 10 epochs"] = regime_cell(
                runs, SHARED, method, batch_size, rates=rates
            )
        return found

    def published(batch_size):
        return {"paper GN minus BN": paper.TABLE2_GN_MINUS_BN[batch_size]}

    frame = results.by_batch_table(
        cells,
        long_training.BATCH_SIZES,
        [("GN", "BN"), ("GN train", "BN train"), ("GN, 10 epochs", "BN, 10 epochs")],
        published,
        f"Table 2 trained three times as long: BN and GN, {long_training.EPOCHS} epochs at each one's own base rate "
        f"(scaled by batch/32), validation and training error, beside the study's 10 epochs at the shared rate "
        f"({results.data_context(runs)}); {TRAINING_MODE}, the same median as validation error's. "
        f"{results.OURS_NOTE}; {results.SPREAD_NOTE}. Runs: results/{long_training.LONG_TRAINING}/.",
        directions=True,
    )
    used = ", ".join(f"{method} {rates[method]:g}" for method in ("BN", "GN") if method in rates)
    frame.attrs["caption"] += f" Own base rates: {used or 'none chosen yet'}."
    return frame


_REGIME_NOTE = (
    f"Rows: {SHARED} (the study's runs), {OWN} (the rate sweep's runs at the rate its rule chose), {LONG} "
    f'(results/{long_training.LONG_TRAINING}/). {results.OURS_NOTE}; {results.SPREAD_NOTE}; "lower in": in how '
    "many seeds the difference is below 0."
)


def weight_kept(config) -> float:
    """The fraction of a weight that the weight decay alone leaves after the whole run:
    exp(-weight_decay x the sum over steps of the learning rate / (1 - momentum)).

    Coupled L2 adds `weight_decay * w` to every gradient, and momentum carries a steady
    gradient 1 / (1 - momentum) times as far, so this is how hard the decay pulls over a
    run; near 1 the decay cannot change what a run ends at, whatever the normalization.
    The steps of an epoch are floor(images / batch), as in training.
    """
    steps = config.classes * config.images_per_class // config.batch_size
    travelled = sum(
        learning_rate_for_epoch(config, epoch) * steps for epoch in range(config.epochs)
    )
    return math.exp(-config.weight_decay * travelled / (1.0 - config.momentum))


def weight_decay_table(source="results"):
    """How hard the weight decay pulls in each regime: BN's and GN's weight kept by the
    decay alone over a run at batch 32 (`weight_kept`), from the configs of the runs
    behind each cell."""
    runs = results.as_runs(source)
    rates = own_rates(runs)
    rows = []
    for regime in REGIMES:
        row = {"regime": regime}
        for method in ("BN", "GN"):
            cell = regime_cell(runs, regime, method, 32, rates=rates)
            experiment = {
                SHARED: SHARED_EXPERIMENTS.get(method),
                OWN: rate_sweep.RATE_SWEEP,
                LONG: long_training.LONG_TRAINING,
            }[regime]
            found = runs[
                (runs["experiment"] == experiment) & runs["run_name"].isin(cell.run.split(", "))
            ]
            kept = sorted(
                {
                    round(100 * weight_kept(runs_module.read_run(path).config), 1)
                    for path in found["path"]
                }
            )
            row[f"{method} weight kept (%)"] = kept[0] if len(kept) == 1 else math.nan
        rows.append(row)
    return results.captioned(
        rows,
        (
            f"The weight decay's pull at batch 32 ({results.data_context(runs)}): the share of a weight that the decay "
            "alone leaves after the whole run, exp(-decay x the summed learning rate / (1 - momentum)) "
            "(utils.experiments.fair_comparison.analysis.weight_kept), from each cell's configs. Near 100% the decay cannot change what a run ends at, "
            "so a claim about it is not testable there."
        ),
    )


@dataclasses.dataclass(frozen=True)
class Claim:
    """A statement as a signed sum of cells and a direction.

    Args:
        text: the statement.
        terms: (coefficient, method, batch size) triples; per seed the claim's value is
            the sum of coefficient x the method's number at that batch size.
        above: True when the claim holds in a seed whose value is above `bound`, False
            when below.
        bound: the threshold (points).
        statistic: "val_error_median5" or "train_error_median5".
        where: where the statement is made ("README" or a report section's anchor).
    """

    text: str
    terms: tuple[tuple[float, str, int], ...]
    above: bool
    bound: float = 0.0
    statistic: str = VALIDATION
    where: str = "README"

    def value(self, runs, regime, rates) -> tuple[PerSeed, str]:
        """The claim's value per seed in `regime` (the seeds every term has, from complete
        runs only), or no value and why: the terms without a complete run, by status."""
        cells = [
            (
                coefficient,
                regime_cell(
                    runs, regime, method, batch_size, rates=rates, statistic=self.statistic
                ),
                method,
                batch_size,
            )
            for coefficient, method, batch_size in self.terms
        ]
        by_status = {}
        for _, cell, method, batch_size in cells:
            # A verdict stands on finished runs only: a partial run's number may still move.
            if not cell.n or not cell.status.startswith("complete"):
                by_status.setdefault(cell.status, []).append(f"{method} at {batch_size}")
        if by_status:
            return PerSeed(), "; ".join(
                f"{', '.join(terms)}: {status}" for status, terms in by_status.items()
            )
        seeds = [
            seed for seed in cells[0][1].seeds if all(seed in cell.seeds for _, cell, _, _ in cells)
        ]
        values = [
            sum(
                coefficient * dict(zip(cell.seeds, cell.values))[seed]
                for coefficient, cell, _, _ in cells
            )
            for seed in seeds
        ]
        return PerSeed(values=tuple(values), seeds=tuple(seeds)), ""

    def verdict(self, runs, regime, rates) -> str:
        """ "+2.4 ± 0.7: holds (3 of 3 seeds)", "... does not hold ...", "... holds in
        part (2 of 3 seeds)", or, without any seed, "no number: " and why."""
        value, lacking = self.value(runs, regime, rates)
        if not value.n:
            return f"no number: {lacking or 'no seed has every run'}"
        held = sum(
            (number > self.bound) if self.above else (number < self.bound)
            for number in value.values
        )
        word = "holds" if held == value.n else "does not hold" if held == 0 else "holds in part"
        return f"{results.format_points(value.mean, value.sd)}: {word} ({results.seeds_text(held, value.n)})"


def _difference(first, second, batch_size, above, text, bound=0.0, **options) -> Claim:
    return Claim(
        text, ((1.0, first, batch_size), (-1.0, second, batch_size)), above, bound, **options
    )


def _change(method, large, small, above, text) -> Claim:
    return Claim(text, ((1.0, method, small), (-1.0, method, large)), above)


CLAIMS = (
    _change("BN", 32, 2, True, "BN's error rises from batch 32 to batch 2"),
    _change("GN", 32, 2, False, "GN's error does not rise from batch 32 to batch 2"),
    _difference("GN", "BN", 2, False, "At batch 2 GN is below BN"),
    _difference("GN", "BN", 32, True, "At batch 32 BN is below GN"),
    _difference("GN", "LN", 32, False, "At batch 32 GN is below LN"),
    _difference("LN", "IN", 32, False, "At batch 32 LN is below IN"),
    _difference(
        "GN", "BN", 32, True, "At batch 32 GN minus BN is larger than the paper's +0.5", bound=0.5
    ),
    _difference("GN", "BN", 8, True, "At batch 8 GN is above BN (the sign changes below 8)"),
    _difference(
        "GN",
        "BN",
        32,
        False,
        "At batch 32 GN's training error is below BN's (the paper's Figure 4)",
        statistic=TRAINING,
        where="fair-comparison",
    ),
    _difference(
        "GN+WS", "GN", 32, False, "At batch 32 WS lowers GN's error", where="beyond-the-paper"
    ),
    _difference(
        "BN+WS", "BN", 32, False, "At batch 32 WS lowers BN's error", where="beyond-the-paper"
    ),
    _difference(
        "GN+WS",
        "BN",
        32,
        False,
        "At batch 32 GN+WS is below BN (WS more than closes GN's gap)",
        where="beyond-the-paper",
    ),
    _difference(
        "GN+BN parallel",
        "BN",
        32,
        False,
        "At batch 32 the parallel mixture is below BN",
        where="understanding-gn",
    ),
    _difference(
        "GN+BN BN-first",
        "BN",
        32,
        False,
        "At batch 32 the BN-first mixture is below BN",
        where="understanding-gn",
    ),
    _difference(
        "GN+BN parallel",
        FIXED_MIXTURE,
        32,
        False,
        "At batch 32 the parallel mixture is below the same layer with s fixed at 0.5 (learning s helps)",
        where="understanding-gn",
    ),
    Claim(
        "At batch 32 weight decay costs GN more than BN",
        (
            (1.0, "GN", 32),
            (-1.0, "GN, no weight decay", 32),
            (-1.0, "BN", 32),
            (1.0, "BN, no weight decay", 32),
        ),
        above=True,
        where="understanding-gn",
    ),
)


def claims_table(source="results") -> pd.DataFrame:
    """Every claim of `CLAIMS` in every regime: its value per seed as mean ± sd and the
    verdict ("holds", "does not hold", "holds in part", with k of n seeds; "no number"
    and why where a regime has no run for it)."""
    runs = results.as_runs(source)
    rates = own_rates(runs)
    rows = [
        {
            "claim": claim.text,
            "made in": claim.where,
            **{regime: claim.verdict(runs, regime, rates) for regime in REGIMES},
        }
        for claim in CLAIMS
    ]
    return results.captioned(
        rows,
        (
            f"Each claim at the shared rate and at each method's own ({results.data_context(runs)}): the claim's "
            "value in points (a difference of validation errors, or of training errors where it says so, paired by "
            "seed; the cost of weight decay is GN's change minus BN's), mean ± sd over seeds, and in how many seeds "
            f"it goes the claimed way. {_REGIME_NOTE.split(' ours:')[0]} Claims: utils.experiments.fair_comparison.analysis.CLAIMS."
        ),
    )


def conclusions(source="results") -> list[str]:
    """Each claim of `claims_table` as a sentence, for the report and the notebooks."""
    table = claims_table(source)
    return [
        f"{row['claim']}: " + "; ".join(f"{regime} {row[regime]}" for regime in REGIMES) + "."
        for _, row in table.iterrows()
    ]
