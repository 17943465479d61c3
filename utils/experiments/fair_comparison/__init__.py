"""The fair comparison: every method at its own learning rate, and trained three times as
long.

- `rate_sweep`: each method (BN, LN, IN, GN, GN+WS, the mixtures) at batch 32 over four
  base rates; a rule written before its runs finished picks each one's rate
  (utils.rates).
- `long_training`: BN and GN (and GN+WS, the BN-first mixture, BN and GN without weight
  decay) for 30 epochs at their own rates.

`analysis` reads both back beside the study in three regimes (shared rate, own rate, own
rate for 30 epochs) and puts each of the README's claims to them; `figures` draws the long
training.
"""

from utils.experiments.fair_comparison import long_training
from utils.experiments.fair_comparison import rate_sweep

EXPERIMENTS = (*rate_sweep.EXPERIMENTS, *long_training.EXPERIMENTS)
