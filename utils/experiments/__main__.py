"""`python -m utils.experiments`: the command line (utils.cli)."""

import sys

from utils.quiet import without_jax

without_jax()  # before TensorFlow is imported: the grid never uses JAX

from utils import cli  # noqa: E402

sys.exit(cli.main())
