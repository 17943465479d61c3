"""How many groups: GN by number of groups G and by channels per group C/G (Table 3).

G = 1 is Layer Norm and C/G = 1 is Instance Norm: the same computation (utils.layers
defines LN and IN as GN with those groups), so those cells are the LN and IN runs,
shared with the study's comparison.
"""

from utils.experiment import Experiment
from utils.experiment import Figure
from utils.experiment import Table

GROUP_ABLATION = "group_ablation"
# Table 3's values of G and of C/G.
SIZES = (64, 32, 16, 8, 4, 2, 1)

EXPERIMENTS = (
    Experiment(
        GROUP_ABLATION,
        "beyond_the_paper",
        "GN at batch 32 by G and by C/G (Table 3)",
        runs=tuple(
            dict(norm="group", groups=size, batch_size=32)
            if size > 1
            else dict(norm="layer", batch_size=32)
            for size in SIZES
        )
        + tuple(
            dict(norm="group", channels_per_group=size, batch_size=32)
            if size > 1
            else dict(norm="instance", batch_size=32)
            for size in SIZES
        ),
        epochs={"paper": 100},
        figures=(
            Figure(
                "utils.experiments.beyond_the_paper.figures:plot_group_ablation",
                "GN by number of groups G and by channels per group C/G at batch 32, mean and ±1 sd over "
                "seeds, beside the paper's Table 3",
            ),
        ),
        tables=(
            Table(
                "Table 3 analogue: how many groups (batch 32)",
                "utils.experiments.beyond_the_paper.analysis:table3",
            ),
        ),
        findings="utils.experiments.beyond_the_paper.analysis:conclusions",
    ),
)
