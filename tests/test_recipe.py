"""utils.recipe: the recipe sweep's table and the rule that chooses the study's rate."""

import math
from pathlib import Path

import numpy as np
import pytest

from tests import results_factory as factory
from utils import recipe
from utils.profiles import CPU_STUDY_RECIPE
from utils.experiments.recipe_sweep import DECAY_FRACTIONS as RECIPE_SWEEP_DECAY_FRACTIONS
from utils.profiles import profile_configs

NORMS = ("batch", "layer", "instance", "group")
SWEEP_SCHEDULE = (0.5, 0.75)


def write_sweep(results_dir, finals, *, collapsed=(), diverged=(), missing=()):
    """Recipe-sweep runs: finals[rate][norm] is the val error each run converges to.
    A (norm, rate) in `collapsed` ends with a training error at chance; in `diverged`
    it blew up in epoch 3; in `missing` it has not run yet."""
    for rate, by_norm in finals.items():
        for norm, final in by_norm.items():
            if (norm, rate) in missing:
                continue
            config = factory.make_config(
                "recipe_sweep", norm, 32, base_learning_rate=rate, lr_decay_fractions=SWEEP_SCHEDULE
            )
            if (norm, rate) in diverged:
                factory.write_run(results_dir, config, [90.0, 88.0], status="diverged")
            elif (norm, rate) in collapsed:
                factory.write_run(results_dir, config, [90.0] * 10, train_errors=[95.0] * 10)
            else:
                factory.write_run(results_dir, config, factory.curve(final, 10))


def median(final):
    return float(np.median(factory.curve(final, 10)[-5:]))


FINALS = {
    0.001: {"batch": 70.0, "layer": 80.0, "instance": 88.0, "group": 75.0},
    0.003: {"batch": 66.0, "layer": 78.0, "instance": 86.0, "group": 72.0},
    0.01: {"batch": 60.0, "layer": 76.0, "instance": 87.0, "group": 70.0},
}


def test_the_lowest_mean_over_the_norms_is_chosen(tmp_path):
    write_sweep(tmp_path, FINALS)
    table = recipe.recipe_table(tmp_path)
    assert list(table["base lr"]) == ["0.001", "0.003", "0.01"]
    means = {
        rate: np.mean([median(final) for final in by_norm.values()])
        for rate, by_norm in FINALS.items()
    }
    assert table["mean"].tolist() == pytest.approx([means[rate] for rate in (0.001, 0.003, 0.01)])
    assert recipe.chosen_learning_rate(tmp_path) == min(means, key=means.get) == 0.01
    assert table.loc[table["chosen"] == "yes", "base lr"].tolist() == ["0.01"]


def test_a_rate_where_any_norm_collapses_is_excluded(tmp_path):
    # IN does not learn at 0.01, so the next best rate is chosen although BN is best at 0.01.
    write_sweep(tmp_path, FINALS, collapsed={("instance", 0.01)})
    table = recipe.recipe_table(tmp_path).set_index("base lr")
    assert table.loc["0.01", "collapsed"] == "IN"
    assert recipe.chosen_learning_rate(tmp_path) == 0.003


def test_a_diverged_run_counts_as_collapsed(tmp_path):
    write_sweep(tmp_path, FINALS, diverged={("group", 0.01)})
    table = recipe.recipe_table(tmp_path).set_index("base lr")
    assert table.loc["0.01", "collapsed"] == "GN" and math.isnan(table.loc["0.01", "GN"])
    assert recipe.chosen_learning_rate(tmp_path) == 0.003


def test_nothing_is_chosen_while_a_run_is_missing(tmp_path):
    write_sweep(tmp_path, FINALS, missing={("layer", 0.001)})
    table = recipe.recipe_table(tmp_path)
    assert recipe.chosen_learning_rate(tmp_path) is None
    assert list(table["finished"]) == ["no", "yes", "yes"] and set(table["chosen"]) == {""}


def test_the_papers_schedule_is_shown_but_never_chosen(tmp_path):
    write_sweep(tmp_path, FINALS)
    for norm in NORMS:  # better than everything above: still not a candidate
        factory.write_run(
            tmp_path, factory.make_config("recipe_sweep", norm, 32), factory.curve(50.0, 10)
        )
    table = recipe.recipe_table(tmp_path)
    assert table["schedule"].tolist() == ["÷10 at 50%, 75%"] * 3 + ["÷10 at 30%, 60%, 90%"]
    assert recipe.chosen_learning_rate(tmp_path) == 0.01


def test_a_collapsed_rate_need_not_finish_before_the_choice(tmp_path):
    # IN collapsed at 0.01, so LN still running there cannot change the choice.
    write_sweep(tmp_path, FINALS, collapsed={("instance", 0.01)}, missing={("layer", 0.01)})
    assert recipe.chosen_learning_rate(tmp_path) == 0.003


def test_the_cpu_study_uses_the_rate_the_committed_sweep_chose():
    folder = Path(__file__).resolve().parent.parent / "results"
    if not (folder / recipe.RECIPE_SWEEP).is_dir():
        pytest.skip("no recipe sweep in results/")
    assert recipe.chosen_learning_rate(folder) == CPU_STUDY_RECIPE["base_learning_rate"]
    assert CPU_STUDY_RECIPE["lr_decay_fractions"] == RECIPE_SWEEP_DECAY_FRACTIONS
    assert {config.base_learning_rate for config in profile_configs("cpu")} == {
        CPU_STUDY_RECIPE["base_learning_rate"]
    }
