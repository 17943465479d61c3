"""The 2021 study's explanation of GN's lag ("Understanding and Improving Group
Normalization", Gunawan, Yin and Zhang), tested on the study's data, model and recipe:
the loss landscape along the gradient (`landscape`), BN's noise added to GN and weight
decay (`distortion`), and the GN+BN mixture layers (`mixtures`).

`analysis` holds their tables and findings, `figures` their figures.
"""

from utils.experiments.understanding_gn import distortion
from utils.experiments.understanding_gn import landscape
from utils.experiments.understanding_gn import mixtures

EXPERIMENTS = (*landscape.EXPERIMENTS, *distortion.EXPERIMENTS, *mixtures.EXPERIMENTS)
