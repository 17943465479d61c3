"""The fair comparison read back (utils.experiments.fair_comparison.analysis): which runs stand for a method in each
regime, the tables at each method's own rate and the claims' verdicts, on handmade run
folders (no training)."""

import math
import re
import shutil

import pytest

from tests import results_factory as factory
from utils.experiments.fair_comparison import analysis as fair
from utils import report
from utils import results
from utils.experiments.fair_comparison import long_training
from utils.experiments.fair_comparison import rate_sweep

SEEDS = (0, 1, 2)
PROFILE = "cpu"  # three seeds, so that the sweep's rule waits for all of them
SHARED_RATE = 0.003
# Final val error (%) by method and rate in the sweep: BN is best at 0.01, GN at the shared rate.
SWEEP = {
    "BN": {0.001: 72.0, 0.003: 70.0, 0.01: 66.0, 0.03: 68.0},
    "GN": {0.001: 74.0, 0.003: 69.0, 0.01: 71.0, 0.03: 80.0},
}
# Per-seed offsets, so that paired differences differ between seeds.
OFFSETS = {0: 0.0, 1: 1.0, 2: -0.5}


def config(experiment, method, batch_size, seed, rate=SHARED_RATE, **fields):
    return factory.make_config(
        experiment,
        seed=seed,
        profile=PROFILE,
        **dict(rate_sweep.run_fields(method, rate), batch_size=batch_size, **fields),
    )


def write(results_dir, run_config, final, *, train=None):
    curve = factory.curve(final, run_config.epochs)
    factory.write_run(
        results_dir,
        run_config,
        curve,
        train_errors=factory.curve(train, run_config.epochs) if train is not None else None,
    )


def expected(final, epochs=factory.EPOCHS):
    return factory.curve_median(final, epochs)


@pytest.fixture
def folder(tmp_path):
    """The study at the shared rate, the rate sweep and BN's and GN's 30-epoch runs."""
    for seed in SEEDS:
        offset = OFFSETS[seed]
        for method, finals in SWEEP.items():
            for rate, final in finals.items():
                write(
                    tmp_path, config(rate_sweep.RATE_SWEEP, method, 32, seed, rate), final + offset
                )
            norm = rate_sweep.METHODS[method]["norm"]
            for batch_size, rise in ((32, 0.0), (8, 1.0), (2, 6.0 if method == "BN" else -1.0)):
                write(
                    tmp_path,
                    factory.make_config(
                        "batch_size_sweep",
                        norm,
                        batch_size,
                        seed=seed,
                        profile=PROFILE,
                        base_learning_rate=SHARED_RATE,
                        lr_decay_fractions=rate_sweep.DECAY_FRACTIONS,
                    ),
                    finals[SHARED_RATE] + rise + offset,
                )
        for method, rate in (("BN", 0.01), ("GN", SHARED_RATE)):
            for batch_size in long_training.BATCH_SIZES:
                final = (
                    SWEEP[method][rate]
                    - 5.0
                    + offset
                    + (3.0 if method == "BN" and batch_size == 2 else 0.0)
                )
                # GN ends with a lower training error than BN.
                train = final - (12.0 if method == "GN" else 8.0)
                write(
                    tmp_path,
                    config(
                        long_training.LONG_TRAINING,
                        method,
                        batch_size,
                        seed,
                        rate,
                        epochs=long_training.EPOCHS,
                    ),
                    final,
                    train=train,
                )
        # BN without weight decay, 30 epochs: far off, so that mixing it in would show.
        write(
            tmp_path,
            config(
                long_training.LONG_TRAINING,
                "BN",
                32,
                seed,
                0.01,
                epochs=long_training.EPOCHS,
                weight_decay=0.0,
            ),
            90.0,
        )
    return tmp_path


def test_each_method_gets_the_rate_the_sweep_chose(folder):
    rates = fair.own_rates(folder)
    assert rates["BN"] == 0.01 and rates["GN"] == SHARED_RATE
    # The runs without weight decay train at the rate of the method they vary.
    assert rates["BN, no weight decay"] == 0.01 and rates["GN, no weight decay"] == SHARED_RATE
    assert "LN" not in rates and fair.FIXED_MIXTURE not in rates


def test_regime_cells_come_from_the_right_runs(folder):
    runs = results.load_runs(folder)
    rates = fair.own_rates(runs)
    own_bn = fair.regime_cell(runs, fair.OWN, "BN", 32, rates=rates)
    assert own_bn.values == pytest.approx([expected(66.0 + OFFSETS[seed]) for seed in SEEDS])
    assert "lr0.01" in own_bn.run
    shared_bn = fair.regime_cell(runs, fair.SHARED, "BN", 32, rates=rates)
    assert shared_bn.values == pytest.approx([expected(70.0 + OFFSETS[seed]) for seed in SEEDS])
    # GN's own rate is the shared one: at batch 8 its shared-rate runs are the same configs.
    own_gn_8 = fair.regime_cell(runs, fair.OWN, "GN", 8, rates=rates)
    assert own_gn_8.values == pytest.approx([expected(70.0 + OFFSETS[seed]) for seed in SEEDS])
    # BN's is not, and the sweep trains only batch 32.
    own_bn_8 = fair.regime_cell(runs, fair.OWN, "BN", 8, rates=rates)
    assert own_bn_8.n == 0 and own_bn_8.status == "not trained at its own rate (0.01) at batch 8"
    long_bn = fair.regime_cell(runs, fair.LONG, "BN", 32, rates=rates)
    assert long_bn.values == pytest.approx(
        [expected(61.0 + OFFSETS[seed], long_training.EPOCHS) for seed in SEEDS]
    )
    without_decay = fair.regime_cell(runs, fair.LONG, "BN, no weight decay", 32, rates=rates)
    assert without_decay.values == pytest.approx([expected(90.0, long_training.EPOCHS)] * 3)
    assert (
        fair.regime_cell(runs, fair.LONG, "LN", 32, rates=rates).status
        == "not in the 30-epoch runs"
    )
    assert (
        fair.regime_cell(runs, fair.OWN, "LN", 32, rates=rates).status == "own rate not chosen yet"
    )


def test_bad_methods_and_regimes_are_refused(folder):
    runs = results.load_runs(folder)
    with pytest.raises(ValueError, match="Unknown method 'BatchNorm'.*'BN'"):
        fair.regime_cell(runs, fair.SHARED, "BatchNorm", 32, rates={})
    with pytest.raises(ValueError, match="Unknown regime 'tuned'"):
        fair.regime_cell(runs, "tuned", "BN", 32, rates={})


def test_table1_by_regime(folder):
    table = fair.table1(folder).set_index("regime")
    assert table.loc[fair.SHARED, "GN minus BN"] == pytest.approx(
        expected(69.0) - expected(70.0), abs=0.01
    )
    assert table.loc[fair.OWN, "BN"] == pytest.approx(
        sum(expected(66.0 + OFFSETS[seed]) for seed in SEEDS) / 3
    )
    # At their own rates GN is above BN in every seed; at the shared rate below.
    assert table.loc[fair.OWN, "GN minus BN lower in"] == "0/3"
    assert table.loc[fair.SHARED, "GN minus BN lower in"] == "3/3"
    assert table.loc[fair.SHARED, "paper GN minus BN"] == 0.5
    assert "BN 0.01, GN 0.003" in table.attrs["caption"]


def test_table2_sets_training_error_beside_validation(folder):
    table = fair.table2(folder).set_index("batch size")
    assert list(table.index) == list(long_training.BATCH_SIZES)
    assert table.loc[32, "GN train minus BN train lower in"] == "3/3"
    assert table.loc[2, "GN minus BN"] == pytest.approx(
        expected(64.0, long_training.EPOCHS) - expected(64.0, long_training.EPOCHS), abs=0.2
    )
    assert table.loc[2, "GN, 10 epochs minus BN, 10 epochs"] < 0
    assert table.loc[2, "paper GN minus BN"] == -10.6


def test_claims_say_how_many_seeds_hold_in_each_regime(folder):
    table = fair.claims_table(folder).set_index("claim")
    rises = table.loc["BN's error rises from batch 32 to batch 2"]
    assert rises[fair.SHARED].endswith("holds (3 of 3 seeds)")
    assert rises[fair.OWN].startswith(
        "no number: BN at 2: not trained at its own rate (0.01) at batch 2"
    )
    assert rises[fair.LONG].endswith("holds (3 of 3 seeds)")
    # GN at its own rate is the shared one, so the own-rate verdict has numbers at batch 2.
    assert table.loc["GN's error does not rise from batch 32 to batch 2", fair.OWN].endswith(
        "holds (3 of 3 seeds)"
    )
    figure_4 = table.loc[
        "At batch 32 GN's training error is below BN's (the paper's Figure 4)", fair.LONG
    ]
    assert figure_4.endswith("holds (3 of 3 seeds)")
    gap = table.loc["At batch 32 BN is below GN"]
    assert gap[fair.SHARED].endswith("does not hold (0 of 3 seeds)") and gap[fair.OWN].endswith(
        "holds (3 of 3 seeds)"
    )
    assert table.loc["At batch 32 GN is below LN", fair.SHARED].startswith(
        "no number: LN at 32: missing"
    )


def test_a_claim_that_holds_in_some_seeds_says_so(folder):
    # GN above BN at batch 8 in seeds 0 and 1 only.
    for seed, rise in ((0, 3.0), (1, 3.0), (2, 0.0)):
        write(
            folder,
            factory.make_config(
                "batch_size_sweep",
                "group",
                8,
                seed=seed,
                profile=PROFILE,
                base_learning_rate=SHARED_RATE,
                lr_decay_fractions=rate_sweep.DECAY_FRACTIONS,
            ),
            SWEEP["GN"][SHARED_RATE] + rise + OFFSETS[seed],
        )
    verdict = (
        fair.claims_table(folder)
        .set_index("claim")
        .loc["At batch 8 GN is above BN (the sign changes below 8)", fair.SHARED]
    )
    assert verdict.endswith("holds in part (2 of 3 seeds)")


def test_weight_kept_is_the_decays_pull_over_the_run():
    from utils.config import RunConfig

    config = RunConfig(
        classes=40,
        images_per_class=500,
        batch_size=32,
        epochs=10,
        base_learning_rate=0.003,
        lr_decay_fractions=(0.5, 0.75),
        weight_decay=1e-4,
        momentum=0.9,
    )
    # 625 steps an epoch: 5 epochs at 0.003, 3 at 0.0003 (the second cut rounds 7.5 up), 2 at 0.00003.
    travelled = 625 * (5 * 0.003 + 3 * 0.0003 + 2 * 0.00003)
    assert fair.weight_kept(config) == pytest.approx(math.exp(-1e-4 * travelled / 0.1))
    assert fair.weight_kept(RunConfig(weight_decay=0.0)) == 1.0


def test_weight_decay_table_reads_each_cells_configs(folder):
    table = fair.weight_decay_table(folder).set_index("regime")
    steps = factory.CLASSES * factory.IMAGES_PER_CLASS // 32
    # BN's 30-epoch runs at 0.01: 15 epochs at the rate, then ÷10 from epoch 23 (22.5 rounded up), ÷100.
    travelled = steps * 0.01 * (15 + 8 * 0.1 + 7 * 0.01)
    expected = round(100 * math.exp(-1e-4 * travelled / 0.1), 1)
    assert table.loc[fair.LONG, "BN weight kept (%)"] == expected
    own = steps * 0.01 * (5 + 3 * 0.1 + 2 * 0.01)
    assert table.loc[fair.OWN, "BN weight kept (%)"] == round(100 * math.exp(-1e-4 * own / 0.1), 1)


def test_a_verdict_waits_for_complete_runs(folder):
    # GN's 30-epoch run of seed 0 at batch 32 is only half trained.
    run_config = config(
        long_training.LONG_TRAINING, "GN", 32, 0, SHARED_RATE, epochs=long_training.EPOCHS
    )
    factory.write_run(
        folder, run_config, factory.curve(60.0, long_training.EPOCHS)[:12], status="running"
    )
    for seed in (1, 2):
        shutil.rmtree(
            folder
            / long_training.LONG_TRAINING
            / run_config.run_name.replace("seed0", f"seed{seed}")
        )
    verdict = (
        fair.claims_table(folder).set_index("claim").loc["At batch 32 BN is below GN", fair.LONG]
    )
    assert verdict.startswith("no number: GN at 32: partial (12/30 epochs)")


def test_the_setup_line_counts_the_runs_a_chosen_rate_adds_among_the_planned(folder):
    # The 30-epoch runs are planned only once the sweep has chosen the rates; the count of
    # planned runs must include them, or more runs read as complete than were planned.
    runs = results.load_runs(folder)
    group = runs[runs["experiment"].isin((rate_sweep.RATE_SWEEP, long_training.LONG_TRAINING))]
    assert (group["experiment"] == long_training.LONG_TRAINING).any()
    text = report.section_markdown("fair_comparison", runs)
    match = re.search(r"- Runs complete: (\d+) of the profile's (\d+);", text)
    assert match, text[:600]
    complete, planned = map(int, match.groups())
    assert complete == len(group) and planned >= complete
    # GN without weight decay is planned at GN's chosen rate but not in the folder.
    pending = next(line for line in text.splitlines() if line.startswith("- Not complete yet:"))
    assert "long_training 3 (seeds 0, 1, 2)" in pending, pending
