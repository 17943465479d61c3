"""The README's results blocks, generated from a results folder."""

from pathlib import Path

import pytest

from tests import results_factory
from utils import report
from utils import results
from utils import runs as runs_module

REPOSITORY = Path(__file__).resolve().parents[1]


def test_block_has_setup_tables_conclusions_and_figures(tmp_path):
    results_dir = results_factory.make_results(tmp_path / "results")
    text = report.results_markdown(results_dir)
    assert "Profile `" in text
    # 8 complete trainings of 10 epochs at 1.5 s: 0.033 hours, half of it with two workers.
    assert "Training time: 0.0 hours summed over the 8 trainings behind the complete runs (seed 0: 0.0)" in text
    assert "Table 1 analogue" in text and "Table 2 analogue" in text
    assert "gn_g32_bs32_seed0" in text  # the run behind each number is named
    assert "missing" in text and "diverged at epoch 4" in text
    assert "partial (3/10 epochs)" in text
    assert "![" in text and "figures/batch_size_sensitivity.png" in text


def test_update_rewrites_only_the_block(tmp_path):
    results_dir = results_factory.make_results(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{report.BEGIN}\nold numbers\n{report.END}\n\nbetween\n\n"
                      f"{report.BEYOND_BEGIN}\nold too\n{report.BEYOND_END}\n\n"
                      f"{report.UNDERSTANDING_BEGIN}\nold as well\n{report.UNDERSTANDING_END}\n\nafter\n")
    assert report.update_readme(readme, results_dir)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "\n\nbetween\n\n" in text
    assert "old numbers" not in text and "old too" not in text and "old as well" not in text
    assert report.readme_block(readme) == report.results_markdown(results_dir)
    # No runs of the further experiments in this folder: the block says how to train them.
    assert "--experiment beyond_the_paper" in report.readme_block(readme, "beyond")
    assert "--experiment understanding_gn" in report.readme_block(readme, "understanding")
    assert not report.update_readme(readme, results_dir)


def test_update_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# No block here\n")
    with pytest.raises(ValueError, match="has no block for results_markdown"):
        report.update_readme(readme, tmp_path)
    readme.write_text(f"{report.BEGIN}\n{report.END}\n")
    with pytest.raises(ValueError, match="beyond:begin"):
        report.update_readme(readme, tmp_path)


def test_beyond_block_has_the_three_tables_findings_and_figures(tmp_path):
    text = report.beyond_markdown(results_factory.make_ablation_results(tmp_path / "results"))
    assert "Profile `smoke`" in text and "Runs complete:" in text
    assert "Table 3 analogue" in text and "Batch Renorm beside BN and GN" in text
    assert "**Weight Standardization**" in text and "GN+WS minus BN" in text
    assert "C/G = 2: missing" in text
    assert "figures/group_ablation.png" in text and "figures/weight_standardization.png" in text


def test_readme_numbers_are_the_ones_the_results_folder_gives():
    results_dir = REPOSITORY / "results"
    if not any(results_dir.glob("*/*/summary.json")):
        pytest.skip("results/ holds no runs yet")
    block = report.readme_block(REPOSITORY / "README.md")
    assert block is not None, "README.md has no results block"
    expected = report.results_markdown(results_dir)
    assert block == expected, "README.md's results are stale: run python -m utils.report --update README.md"
    for block, (_, _, write) in report.BLOCKS.items():
        assert report.readme_block(REPOSITORY / "README.md", block) == write(results_dir), (
            f"README.md's {block} block is stale: run python -m utils.report --update README.md")
    for name, _ in report.FIGURES:
        figure = REPOSITORY / "figures" / f"{name}.png"
        assert figure.exists() and figure.stat().st_size > 0, f"{figure} is missing"


def test_understanding_block_has_the_three_tables_claims_and_figures(tmp_path):
    text = report.understanding_markdown(results_factory.make_understanding_results(tmp_path / "results"))
    assert "**Loss landscape**" in text and "effective beta-smoothness, epoch 1" in text
    assert "stopped learning with noise" in text and "GN+BN, GN first minus GN" in text
    assert "Claim: GN is more sensitive than BN to noise" in text and "**Computed from these runs**" in text
    assert "figures/landscape.png" in text and "figures/mixtures.png" in text


def test_every_committed_epoch_steps_through_the_training_images_once():
    # A batch-size sweep that never changed the batch size took batch-32 steps at every batch size.
    folders = list(runs_module.run_folders(REPOSITORY / "results"))
    if not folders:
        pytest.skip("results/ holds no runs yet")
    for folder in folders:
        run = runs_module.read_run(folder)
        if run.history.empty:
            continue
        images = run.config.classes * run.config.images_per_class
        expected = images // run.config.batch_size
        assert (run.history["steps"] == expected).all(), (
            f"{folder}: steps per epoch {sorted(set(run.history['steps']))}, expected {images} // "
            f"{run.config.batch_size} = {expected}")


def test_setup_lines_name_the_runs_still_to_come_and_the_time_of_the_own_trainings(tmp_path):
    # The factory's study folder lacks LN at batch 32, a partial and a diverged run, and
    # the batch-size sweep's batch-32 runs are copies of the comparison's.
    text = report.results_markdown(results_factory.make_results(tmp_path / "results"))
    assert "- Not complete yet: 14 runs: norm_comparison 1 (seed 0); batch_size_sweep 13 (seed 0)." in text
    # 8 trainings, each once, of which 8 done here: no clause about reused runs' time.
    assert "of those hours are the" not in text
    # The beyond folder's runs without WS are copies of the batch-renorm experiment's.
    beyond = report.beyond_markdown(results_factory.make_ablation_results(tmp_path / "beyond"))
    assert "- Not complete yet: 1 run: group_ablation 1 (seed 0)." in beyond
    assert "reused runs'" not in beyond  # the copies' sources are among its runs: one training each


def test_time_line_tells_the_reused_runs_time_from_the_own_trainings(tmp_path):
    runs = results.load_runs(results_factory.make_results(tmp_path / "results"))
    sweep = runs[runs["experiment"] == "batch_size_sweep"]
    # The sweep alone: 5 complete trainings of its own and 2 copies of comparison runs, 10
    # epochs each at EPOCH_SECONDS.
    own_hours = 5 * 10 * results_factory.EPOCH_SECONDS / 3600
    assert (f"; {own_hours:.1f} of those hours are the 5 trainings done for these experiments, the rest the "
            "reused runs'") in report._time_line(sweep)
    copies = sweep[sweep["reused_from"].notna()]
    assert len(copies) == 2
    assert report._time_line(copies).startswith("- Training time: 0.0 hours summed over the 2 trainings")
    assert ", all of them reused runs'." in report._time_line(copies)
