"""``python -m netinv``: run one pipeline (see :mod:`netinv.cli`)."""

import sys

from netinv.cli import main

sys.exit(main())
