"""The generated report (results/README.md), the README's headline block and the readings."""

from pathlib import Path

import pytest

from tests import checks
from tests import results_factory
from utils import experiments
from utils import figures
from utils import paths
from utils import report
from utils import results
from utils import runs as runs_module

REPOSITORY = Path(__file__).resolve().parents[1]


def test_block_has_setup_tables_conclusions_and_figures(tmp_path):
    results_dir = results_factory.make_results(tmp_path / "results")
    text = report.section_markdown("study", results_dir)
    assert "Profile `" in text
    # 8 complete trainings of 10 epochs at 1.5 s: 0.033 hours, half of it with two workers.
    assert (
        "Training time: 0.0 hours summed over the 8 trainings behind the complete runs (seed 0: 0.0)"
        in text
    )
    assert "Table 1 analogue" in text and "Table 2 analogue" in text
    assert "gn_g32_bs32_seed0" in text  # the run behind each number is named
    assert "missing" in text and "diverged at epoch 4" in text
    assert "partial (3/10 epochs)" in text
    assert "![" in text and "figures/batch_size_sensitivity.png" in text


def test_write_report_writes_the_report_and_only_the_headline_block(tmp_path):
    results_dir = results_factory.make_results(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\nbefore\n\n{report.HEADLINE_BEGIN}\nold numbers\n{report.HEADLINE_END}\n\nafter\n"
    )
    assert report.stale(results_dir, readme) == [
        str(results_dir / "README.md"),
        f"{readme} headline",
    ]
    assert report.write_report(results_dir, readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old numbers" not in text and report.headline_block(readme) == report.headline_markdown(
        results_dir
    )
    generated = (results_dir / "README.md").read_text()
    assert generated == report.report_markdown(results_dir)
    # Every section is there; those without runs say how to train them.
    for section in experiments.SECTIONS:
        assert f'<a id="{section.anchor}"></a>\n## {section.title}' in generated
    assert (
        "--experiment beyond_the_paper" in generated and "--experiment fair_comparison" in generated
    )
    # The notes every table shares are stated once.
    assert generated.count(results.OURS_NOTE) == 1 and generated.count(results.SPREAD_NOTE) == 1
    assert report.stale(results_dir, readme) == [] and not report.write_report(results_dir, readme)


def test_write_report_needs_the_headline_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# No block here\n")
    with pytest.raises(ValueError, match="headline:begin"):
        report.write_report(results_factory.make_results(tmp_path / "results"), readme)


def test_a_reading_number_the_tables_do_not_give_is_caught():
    generated = "| GN | 78.1 ± 0.3 | 2.965 | -6.7 ± 0.9 |"
    assert checks.unbacked_numbers(
        "GN is at 78.1, 6.7 below BN; norm 2.965 (2.97 rounded).", generated
    ) == ["2.97"]
    assert checks.unbacked_numbers("+2.4 points", generated) == ["+2.4"]
    assert checks.unbacked_numbers("seeds 0, 1 and 2 at batch 32", generated) == []


def test_every_decimal_of_a_reading_is_a_generated_number():
    results_dir = REPOSITORY / "results"
    if not any(results_dir.glob("*/*/summary.json")):
        pytest.skip("results/ holds no runs yet")
    written = report.readings()
    # The sections the report is made of, so that the report below reuses them.
    for section, generated in zip(experiments.SECTIONS, report.section_texts(results_dir)):
        if section.anchor in written:
            missing = checks.unbacked_numbers(written[section.anchor], generated)
            assert not missing, (
                f"utils/readings.md, section {section.anchor}: {missing} appear in no table or finding"
            )
    readme = (REPOSITORY / "README.md").read_text()
    reading = readme.split("<!-- reading:begin -->")[1].split("<!-- reading:end -->")[0]
    missing = checks.unbacked_numbers(reading, report.report_markdown(results_dir))
    assert not missing, (
        f"README.md's reading: {missing} appear in no table or finding of results/README.md"
    )


def test_beyond_block_has_the_three_tables_findings_and_figures(tmp_path):
    text = report.section_markdown(
        "beyond_the_paper", results_factory.make_ablation_results(tmp_path / "results")
    )
    assert "Profile `smoke`" in text and "Runs complete:" in text
    assert "Table 3 analogue" in text and "Batch Renorm beside BN and GN" in text
    assert "**Weight Standardization**" in text and "GN+WS minus BN" in text
    assert "C/G = 2: missing" in text
    assert "figures/group_ablation.png" in text and "figures/weight_standardization.png" in text


def test_the_report_and_the_headline_are_what_the_results_folder_gives():
    results_dir = REPOSITORY / "results"
    if not any(results_dir.glob("*/*/summary.json")):
        pytest.skip("results/ holds no runs yet")
    stale = report.stale(results_dir, REPOSITORY / "README.md")
    assert not stale, f"stale: {stale}; run python -m utils.report"
    # Figures are drawn for the experiments that have a complete run (figures.draw_figures).
    runs = results.load_runs(results_dir)
    complete = set(runs.loc[runs["status"] == "complete", "experiment"])
    drawn = [
        declared.name
        for name in experiments.NAMES
        if name in complete
        for declared in experiments.get(name).figures
    ]
    assert drawn and set(drawn) <= set(figures.names())
    for name in drawn:
        figure = REPOSITORY / "figures" / f"{name}.png"
        assert figure.exists() and figure.stat().st_size > 0, f"{figure} is missing"


def test_no_caption_keeps_a_gap_where_a_shared_note_was_taken_out():
    # The shared notes stand once at the top; a caption that said more after one of them
    # would keep a double space and a dangling remark.
    results_dir = REPOSITORY / "results"
    if not any(results_dir.glob("*/*/summary.json")):
        pytest.skip("results/ holds no runs yet")
    prose = [
        line
        for line in report.report_markdown(results_dir).splitlines()
        if not line.startswith("|")
    ]
    assert [line for line in prose if "  " in line.strip()] == []


def test_the_readme_is_short_and_narrow():
    lines = (REPOSITORY / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    in_code, wide = False, []
    for number, line in enumerate(lines, start=1):
        in_code ^= line.startswith("```")
        if not in_code and len(line) > 100 and not line.startswith(("|", "![")):
            wide.append(number)
    assert not wide, f"README.md lines over 100 characters: {wide}"


def test_understanding_block_has_the_three_tables_claims_and_figures(tmp_path):
    text = report.section_markdown(
        "understanding_gn", results_factory.make_understanding_results(tmp_path / "results")
    )
    assert "**Loss landscape**" in text and "effective beta-smoothness, epoch 1" in text
    assert "near chance with noise" in text and "GN+BN, GN first minus GN" in text
    assert (
        "Claim: GN is more sensitive than BN to noise" in text
        and "**Computed from these runs**" in text
    )
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
            f"{run.config.batch_size} = {expected}"
        )


def test_setup_lines_name_the_runs_still_to_come_and_the_time_of_the_own_trainings(tmp_path):
    # The factory's study folder lacks LN at batch 32, a partial and a diverged run, and
    # the batch-size sweep's batch-32 runs are copies of the comparison's.
    text = report.section_markdown("study", results_factory.make_results(tmp_path / "results"))
    assert (
        "- Not complete yet: 14 runs: norm_comparison 1 (seed 0); batch_size_sweep 13 (seed 0)."
        in text
    )
    # 8 trainings, each once, of which 8 done here: no clause about reused runs' time.
    assert "of those hours are the" not in text
    # The beyond folder's runs without WS are copies of the batch-renorm experiment's.
    beyond = report.section_markdown(
        "beyond_the_paper", results_factory.make_ablation_results(tmp_path / "beyond")
    )
    assert "- Not complete yet: 1 run: group_ablation 1 (seed 0)." in beyond
    assert "reused runs'" not in beyond  # the copies' sources are among its runs: one training each


def test_time_line_tells_the_reused_runs_time_from_the_own_trainings(tmp_path):
    runs = results.load_runs(results_factory.make_results(tmp_path / "results"))
    sweep = runs[runs["experiment"] == "batch_size_sweep"]
    # The sweep alone: 5 complete trainings of its own and 2 copies of comparison runs, 10
    # epochs each at EPOCH_SECONDS.
    own_hours = 5 * 10 * results_factory.EPOCH_SECONDS / 3600
    assert (
        f"; {own_hours:.1f} of those hours are the 5 trainings done for these experiments, the rest the "
        "reused runs'"
    ) in report.time_line(sweep)
    copies = sweep[sweep["reused_from"].notna()]
    assert len(copies) == 2
    assert report.time_line(copies).startswith(
        "- Training time: 0.0 hours summed over the 2 trainings"
    )
    assert ", all of them reused runs'." in report.time_line(copies)


def test_the_compute_table_counts_each_training_once_and_halves_it_for_two_workers(tmp_path):
    runs = results.load_runs(results_factory.make_results(tmp_path / "results"))
    table = results.compute_table(runs).set_index("experiment")
    hours = 10 * results_factory.EPOCH_SECONDS / 3600  # one training: 10 epochs
    # The sweep's two batch-32 runs are copies of the comparison's: trained once, there.
    assert table.loc["norm_comparison", ["complete runs", "trained for it"]].tolist() == [3, 3]
    assert table.loc["batch_size_sweep", ["complete runs", "trained for it"]].tolist() == [7, 5]
    assert table.loc["all", "trained for it"] == 8
    assert table.loc["all", "training hours"] == pytest.approx(8 * hours)
    assert table.loc["all", "wall hours with 2 workers"] == pytest.approx(4 * hours)
    assert "Compute: training hours by experiment" in report.report_markdown(tmp_path / "results")


def test_another_results_folder_never_writes_the_readme_headline(tmp_path, monkeypatch):
    root = tmp_path / "repository"
    (root / "results").mkdir(parents=True)
    readme = root / "README.md"
    readme.write_text((REPOSITORY / "README.md").read_text())
    before = readme.read_bytes()
    monkeypatch.setattr(paths, "REPOSITORY_ROOT", root)
    monkeypatch.chdir(root)
    other = results_factory.make_results(tmp_path / "other")
    assert report.main(["--results", str(other)]) == 0
    assert readme.read_bytes() == before
    text = (other / report.REPORT).read_text()
    # Its report links its own figures folder, not the repository's.
    assert "](figures/" in text and "](../figures/" not in text
    # The repository's own results folder still writes the headline.
    results_factory.make_results(root / "results")
    assert report.main(["--results", str(root / "results")]) == 0
    assert readme.read_bytes() != before
    assert report.headline_block(readme) == report.headline_markdown(root / "results")
