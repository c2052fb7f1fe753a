"""``python -m unionfs``: the same as the ``unionfs`` console script."""

import sys

from unionfs.cli import main

sys.exit(main())
