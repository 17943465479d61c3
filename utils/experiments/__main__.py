"""`python -m utils.experiments`: the command line (utils.cli)."""

import sys

from utils import cli

sys.exit(cli.main())
