"""Beyond the paper's two tables, on the same data, model and recipe: how many groups
(Table 3), Batch Renorm (the paper's small-batch rival) and Weight Standardization (GN's
companion in the follow-ups).

`analysis` holds their tables and findings, `figures` their figures.
"""

from utils.experiments.beyond_the_paper import batch_renorm
from utils.experiments.beyond_the_paper import group_ablation
from utils.experiments.beyond_the_paper import weight_standardization

EXPERIMENTS = (
    *group_ablation.EXPERIMENTS,
    *batch_renorm.EXPERIMENTS,
    *weight_standardization.EXPERIMENTS,
)
