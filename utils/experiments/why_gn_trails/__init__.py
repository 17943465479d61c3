"""Why GN trails BN at batch 32 here while the paper has them level.

Every comparison of the study, the fair comparison and the depth experiment has GN behind
BN at batch 32 by 5 to 14 times the paper's +0.5 points, and GN's training error above
BN's where the paper's Figure 4 has it below. These experiments separate the candidate
causes on ResNet-10 at batch 32, every run recording its fit in inference mode
(utils.measurements.inference_fit: fit.csv) and the percentiles of its last
convolution's responses (utils.measurements.late_layer_responses: responses.csv):

- `shared_rate`: BN, GN, BN+WS and GN+WS at one base rate, ResNet-10's BN rate (0.1, the
  rate the depth sweep chose for BN), with the paper's schedule shape (÷10 at 30%, 60%
  and 90% of `EPOCHS`): optimization at one rate, with and without Weight
  Standardization, trained three times as long as the depth experiment.
- `scale_augmentation`: BN and GN as in `shared_rate`, with random resized crops (the
  paper's kind of scale augmentation, utils.data) instead of flips alone: the regime.
- `no_norm`: the same network without normalization, seed 0, for the Figure 6 analogue:
  at the shared rate if it trains there, else at the highest rate below that does
  (`no_norm_runs`).

Predicted cost, before the runs: 19 runs of 45 epochs at batch 32, 855 epochs. ResNet-10's
median epoch at batch 32 in the depth experiment took 53 s with a second training beside
it (benchmarks/README.md), which predicts 855 x 53 s / 2 workers, about 6.3 hours of wall
time (7.3 with the depth sweep's LN and IN runs). Each run records the stretches in which
it trained (summary.json's trained_during), so the report gives the wall time measured.
"""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table
from utils.experiments.why_gn_trails import plan

GROUP = "why_gn_trails"
MEASUREMENTS = ("utils.measurements:inference_fit", "utils.measurements:late_layer_responses")
_ANALYSIS = "utils.experiments.why_gn_trails.analysis"
_FIGURES = "utils.experiments.why_gn_trails.figures"

EXPERIMENTS = (
    Experiment(
        plan.SHARED_RATE,
        GROUP,
        "ResNet-10 at batch 32: BN, GN, BN+WS and GN+WS at one base rate (0.1), 45 epochs",
        runs=tuple(plan.run_fields(fields) for fields in plan.SHARED_RATE_METHODS.values()),
        epochs={"cpu": plan.EPOCHS, "paper": plan.EPOCHS},
        measurements=MEASUREMENTS,
        tables=(
            Table(
                "Every method: validation error, fit in inference mode, training-mode running error",
                f"{_ANALYSIS}:methods_table",
            ),
            Table(
                "GN minus BN at batch 32 in each arm and each measure", f"{_ANALYSIS}:gaps_table"
            ),
            Table(
                "The small CNN at shared rates: GN minus BN, with and without WS",
                f"{_ANALYSIS}:small_cnn_table",
            ),
        ),
        findings=f"{_ANALYSIS}:conclusions",
        figures=(
            Figure(
                f"{_FIGURES}:plot_shared_rate_fit",
                "ResNet-10 at batch 32, one base rate (0.1), 45 epochs: BN and GN in each arm (one shared rate, "
                "with WS, scale augmentation), validation error, and training error as the fit in inference mode "
                "(solid) beside the training-mode running average (dashed), mean and ±1 sd over seeds",
            ),
            Figure(
                f"{_FIGURES}:plot_late_responses",
                "The 1st, 20th, 80th and 99th percentiles of the last convolution's responses before "
                "normalization, by epoch, seed 0: BN and GN at the shared rate and ResNet-10 without "
                "normalization (analogue of the paper's Figure 6)",
            ),
        ),
    ),
    Experiment(
        plan.SCALE_AUGMENTATION,
        GROUP,
        "ResNet-10 at batch 32: BN and GN with random resized crops, as in shared_rate",
        runs=tuple(
            plan.run_fields(fields, augmentation="scale")
            for fields in plan.SCALE_AUGMENTATION_METHODS.values()
        ),
        epochs={"cpu": plan.EPOCHS, "paper": plan.EPOCHS},
        measurements=MEASUREMENTS,
    ),
    Experiment(
        plan.NO_NORM,
        GROUP,
        "ResNet-10 without normalization, seed 0: the shared rate, or the highest below it that trains",
        runs=(),
        seeds=plan.NO_NORM_SEEDS,
        epochs={"cpu": plan.EPOCHS, "paper": plan.EPOCHS},
        more_runs=plan.no_norm_runs,
        measurements=MEASUREMENTS,
    ),
)
