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
"""

from utils.experiment import Experiment
from utils.experiments.why_gn_trails import plan

GROUP = "why_gn_trails"
MEASUREMENTS = ("utils.measurements:inference_fit", "utils.measurements:late_layer_responses")

EXPERIMENTS = (
    Experiment(
        plan.SHARED_RATE, GROUP,
        "ResNet-10 at batch 32: BN, GN, BN+WS and GN+WS at one base rate (0.1), 45 epochs",
        runs=tuple(plan.run_fields(fields) for fields in plan.SHARED_RATE_METHODS.values()),
        epochs={"cpu": plan.EPOCHS, "paper": plan.EPOCHS},
        measurements=MEASUREMENTS,
    ),
    Experiment(
        plan.SCALE_AUGMENTATION, GROUP,
        "ResNet-10 at batch 32: BN and GN with random resized crops, as in shared_rate",
        runs=tuple(plan.run_fields(fields, augmentation="scale")
                   for fields in plan.SCALE_AUGMENTATION_METHODS.values()),
        epochs={"cpu": plan.EPOCHS, "paper": plan.EPOCHS},
        measurements=MEASUREMENTS,
    ),
    Experiment(
        plan.NO_NORM, GROUP,
        "ResNet-10 without normalization, seed 0: the shared rate, or the highest below it that trains",
        runs=(),
        seeds=plan.NO_NORM_SEEDS,
        epochs={"cpu": plan.EPOCHS, "paper": plan.EPOCHS},
        more_runs=plan.no_norm_runs,
        measurements=MEASUREMENTS,
    ),
)
